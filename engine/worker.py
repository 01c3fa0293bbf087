"""The background workers and the one executor step they and the CLI share.

`run_next(worker_id, clock)` claims the next runnable job (fair share between owners) and runs
it: the background worker loops on it. `run_to_end(job_id)` is the one loop that blocks until
a job ends, running it (and the jobs it waits on) through `run_next` in the caller's process:
the CLI's `--wait` when no worker is alive, a search always. `run_claimed(job_id)` runs one
already-claimed job with a `Heartbeat` thread around it (what another executor, e.g. a Ray
task, calls after `store.claim`). `ensure_workers()`
(used by the dashboard) keeps LAB_WORKERS workers alive on this machine.
Importing this module is cheap: torch is imported by the jobs, not here.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from storage import jobs as store
from storage import settings
from storage.models import DONE, FINISHED, QUEUED, utcnow

log = logging.getLogger("engine.worker")
WORKER_ALIVE_S = 30.0  # a worker heartbeats every 5 s; 30 s of silence means it is gone
SPAWN_GRACE_S = 60.0  # after spawning, wait this long for it to register before another


def reap(now: datetime | None = None) -> list[int]:
    """Re-queue or fail running jobs whose heartbeat is too old, and answer jobs waiting on
    identical finished work (see storage.jobs.reading.refresh)."""
    return store.refresh(now or utcnow())


def heartbeat_interval_s() -> float:
    """Seconds between heartbeats: 5 s, or a third of a shorter LAB_HEARTBEAT_TIMEOUT_S."""
    return max(0.2, min(5.0, settings.heartbeat_timeout_s() / 3))


class Heartbeat:
    """A daemon thread that keeps a running job's (and worker's) heartbeat fresh, even while
    a long step (compiling, a big batch) makes no progress call. With `attempt` the job's
    heartbeat is guarded by its claim: once the claim is lost it stops beating for the job
    (the job's own next write raises StaleClaim)."""

    def __init__(self, job_id: int | None = None, worker_id: int | None = None,
                 interval_s: float | None = None, attempt: int | None = None):
        self.job_id, self.worker_id, self.attempt = job_id, worker_id, attempt
        self.interval_s = interval_s if interval_s is not None else heartbeat_interval_s()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.job_id is not None:
                    store.report_progress(self.job_id, attempt=self.attempt)
            except store.StaleClaim:
                if not self._finished_by_this_attempt():
                    log.warning("job %s: this worker lost its claim (attempt %s)", self.job_id,
                                self.attempt)
                self.job_id = None
            except Exception:
                log.warning("heartbeat failed", exc_info=True)
            try:
                if self.worker_id is not None:
                    store.worker_heartbeat(self.worker_id)
                    reap()  # a busy worker still reaps jobs of dead workers
            except Exception:
                log.warning("heartbeat failed", exc_info=True)

    def _finished_by_this_attempt(self) -> bool:
        """True when the claim ended because this very attempt finished the job: a beat that
        raced the job's own last write (before __exit__ stops the thread), not a lost claim
        (the bench_search log showed such false warnings for jobs that were done, once)."""
        try:
            job = store.load_job(self.job_id)
        except store.JobNotFound:
            return False
        return job.status in FINISHED and (self.attempt is None or job.attempts == self.attempt)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def run_claimed(job_id: int, worker_id: int | None = None, attempt: int | None = None) -> str:
    """Run one already-claimed job to its end with a heartbeat thread around it; return its
    final status (done, failed, cancelled, or "stale" when its claim was lost meanwhile).

    `attempt`: the claim's `attempts` value (read from the row when None). Any executor runs
    jobs this way: claim with `store.claim(worker_id, now)`, then `run_claimed(job.id,
    attempt=job.attempts)` in the process that does the work."""
    from engine.runner import run_job  # here, not at the top: importing this module stays cheap

    if attempt is None:
        attempt = store.load_job(job_id).attempts
    with Heartbeat(job_id=job_id, worker_id=worker_id, attempt=attempt):
        status = run_job(job_id, attempt=attempt)
    if status == "done" and store.load_job(job_id).alias:
        # a teacher built here goes into the machine's cache for the next LAB_HOME
        from engine.submit import ensure_teacher

        try:
            ensure_teacher()
        except Exception:  # the cache is a convenience: never fail the job over it
            log.warning("could not cache the teacher", exc_info=True)
    return status


def run_next(worker_id: int | None, clock: Callable[[], datetime] = utcnow,
             job_id: int | None = None) -> str | None:
    """The executor step: reap, claim the next runnable job (or `job_id` only) for
    `worker_id`, run it; return its final status, or None when nothing could be claimed."""
    reap(clock())
    job = store.claim(worker_id, clock(), job_id=job_id)
    if job is None:
        return None
    log.info("worker %s: job %s (%s, owner %s) started", worker_id, job.id, job.method,
             job.owner or "-")
    status = run_claimed(job.id, attempt=job.attempts)
    log.info("worker %s: job %s %s", worker_id, job.id, status)
    return status


def pending_chain(job_id: int) -> list[int]:
    """The job and the unfinished jobs it waits on (its input job, or the identical job whose
    result will answer it), oldest first."""
    chain: list[int] = []
    current: int | None = job_id
    while current is not None and current not in chain:
        job = store.load_job(current)
        if job.status in FINISHED:
            break
        chain.append(job.id)
        waits = job.reused_from if job.status == QUEUED else None
        current = waits or job.parent_id
    return chain[::-1]


def run_to_end(job_id: int, always: bool = False, poll_s: float = 0.5,
               stop_when: Callable[[], bool] | None = None,
               on_job: Callable[[int], None] | None = None):
    """Block until `job_id` ends and return its row, running it in this process through the
    executor step (`run_next`), each unfinished job it waits on first (`pending_chain`).

    By default only while no worker is alive (else the workers run it: the CLI's `--wait`);
    with `always`, whether or not one is (a search never waits for a free worker, nor
    deadlocks with a single one; a claim is atomic, so a live worker may still take a job
    first). `stop_when()` is polled every `poll_s` on a watchdog thread: once it is true, the
    job and the one running now are asked to cancel. `on_job(id)` is told which job runs now
    (for a progress display)."""
    current = {"id": job_id}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(poll_s):
            if stop_when():
                for i in dict.fromkeys((current["id"], job_id)):
                    store.request_cancel(i)
                return

    def now_running(i: int) -> None:
        current["id"] = i
        if on_job is not None:
            on_job(i)

    watchdog = threading.Thread(target=watch, daemon=True) if stop_when else None
    if watchdog is not None:
        watchdog.start()
    try:
        while True:
            job = store.get_job(job_id)  # refreshes: reaps, answers waiters
            if job.status in FINISHED:
                return job
            if not always and alive():
                time.sleep(poll_s)
                continue
            ran = False
            for cid in pending_chain(job_id):
                now_running(cid)
                status = run_next(None, job_id=cid)
                ran = ran or status is not None
                if status not in (None, DONE):
                    break
            now_running(job_id)
            if not ran:
                time.sleep(poll_s)
    finally:
        stop.set()
        if watchdog is not None:
            watchdog.join(timeout=2)


def worker_loop(once: bool = False, poll_s: float = 1.0, max_jobs: int | None = None,
                clock: Callable[[], datetime] = utcnow, name: str | None = None) -> int:
    """Run jobs until stopped (SIGTERM/SIGINT), or until the queue is empty when `once`.

    `max_jobs` recycles the worker after that many jobs (a fresh process frees leaked GPU
    memory); `name` is what `jobs` and the Jobs page show. Returns the number of jobs run.
    LAB_EXECUTOR=ray: the Ray dispatcher runs them instead (engine/ray_executor.py)."""
    from engine import ray_executor

    if ray_executor.selected():
        return ray_executor.dispatch_loop(once=once, poll_s=poll_s, max_jobs=max_jobs,
                                          clock=clock)
    from engine.toolkit import device as dev

    device = dev.setup()
    worker_id = store.register_worker(device=dev.describe(device), now=clock(), name=name)
    stopping = {"flag": False}

    def stop(signum, _frame) -> None:
        log.info("worker %s: signal %s, stopping after the current job", worker_id, signum)
        stopping["flag"] = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    ran = 0
    try:
        # the loop's own heartbeat thread keeps the worker (and reaping) alive
        with Heartbeat(worker_id=worker_id):
            while not stopping["flag"]:
                status = run_next(worker_id, clock)
                if status is None:
                    if once:
                        break
                    time.sleep(poll_s)
                    continue
                ran += 1
                if max_jobs is not None and ran >= max_jobs:
                    break
    finally:
        store.worker_stopped(worker_id, clock())
        for s, handler in previous.items():
            signal.signal(s, handler)
    return ran


def alive(now: datetime | None = None, here: bool = False) -> list:
    """Live workers (only those on this machine with `here`)."""
    return store.alive_workers(now or utcnow(), WORKER_ALIVE_S,
                               hostname=socket.gethostname() if here else None)


def shares_cpu(now: datetime | None = None) -> bool:
    """True when more than one live worker on this machine runs on the CPU: their timings
    compete for the same cores."""
    return len([w for w in alive(now, here=True) if w.device.startswith("cpu")]) > 1


def job_device(probe: bool = False) -> str | None:
    """Where the next job would run, e.g. "cpu (2 threads)" or "cuda:NVIDIA H100 (sm90)".

    A live worker's own description when there is one. Otherwise, with `probe`, what a worker
    started on this machine would use (imports torch: 1-2 s, so the CLI does it only for methods
    whose schemes depend on the device; pages never probe), else None."""
    workers = alive()
    if workers:
        return workers[0].device
    if not probe:
        return None
    from engine.toolkit import device as dev

    return dev.describe()


def worker_slots() -> list[tuple[str, dict[str, str]]]:
    """(name, extra environment) of each worker this machine should keep alive: one per GPU
    pinned with CUDA_VISIBLE_DEVICES when CUDA is present, else cpu0, cpu1, ... (LAB_WORKERS)."""
    count, gpus = settings.workers(), settings.gpu_count()
    host = socket.gethostname()
    if gpus:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [v.strip() for v in visible.split(",")] if visible else [str(i) for i in
                                                                         range(gpus)]
        return [(f"{host}/gpu{ids[i % len(ids)]}", {"CUDA_VISIBLE_DEVICES": ids[i % len(ids)]})
                for i in range(count)]
    return [(f"{host}/cpu{i}", {}) for i in range(count)]


def ensure_workers() -> str:
    """Keep LAB_WORKERS workers alive on this machine (each named, GPU workers pinned);
    return what happened, in words ("running", "started 2", "starting", "disabled")."""
    if not settings.worker_autostart():
        return "disabled"
    live = {w.name for w in alive(here=True)}
    slots = worker_slots()
    missing = [(name, env) for name, env in slots if name not in live]
    if not missing or len(live) >= len(slots):
        return "running"
    started = 0
    root = Path(__file__).resolve().parent.parent
    for name, env in missing:
        stamp = settings.lab_home() / f"worker.spawned.{name.rsplit('/', 1)[-1]}"
        if stamp.exists() and time.time() - stamp.stat().st_mtime < SPAWN_GRACE_S:
            continue
        stamp.touch()
        log_file = open(settings.logs_dir() / "worker.log", "ab")
        subprocess.Popen([sys.executable, "-m", "engine", "worker", "--name", name], cwd=root,
                         stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, env={**os.environ, **env})
        started += 1
    return f"started {started}" if started else "starting"


def ensure_worker() -> str:
    """Kept for callers of the single-worker days: see ensure_workers."""
    return ensure_workers()
