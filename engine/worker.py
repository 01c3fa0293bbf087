"""The background worker: claims queued jobs one at a time and runs them with `run_job`.

`ensure_worker()` (used by the dashboard) starts one as a detached process when none is alive.
`run_claimed(job_id)` runs one claimed job with a `Heartbeat` thread around it (the worker, the
CLI's in-process `--wait` and the tests all run jobs this way).
Importing this module is cheap: torch is imported by the jobs, not here.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from storage import jobs as store
from storage import settings
from storage.models import utcnow

log = logging.getLogger("engine.worker")
WORKER_ALIVE_S = 30.0  # a worker heartbeats every 5 s; 30 s of silence means it is gone
SPAWN_GRACE_S = 60.0  # after spawning, wait this long for it to register before another


def reap(now: datetime | None = None) -> list[int]:
    """Re-queue or fail running jobs whose heartbeat is too old (see storage.jobs.reap_stale)."""
    return store.reap_stale(now or utcnow(), settings.heartbeat_timeout_s(),
                            settings.max_attempts())


class Heartbeat:
    """A daemon thread that keeps a running job's (and worker's) heartbeat fresh, even while
    a long step (compiling, a big batch) makes no progress call."""

    def __init__(self, job_id: int | None = None, worker_id: int | None = None,
                 interval_s: float = 5.0):
        self.job_id, self.worker_id, self.interval_s = job_id, worker_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.job_id is not None:
                    store.report_progress(self.job_id)
                if self.worker_id is not None:
                    store.worker_heartbeat(self.worker_id)
                    reap()  # a busy worker still reaps jobs of dead workers
            except Exception:
                log.warning("heartbeat failed", exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def run_claimed(job_id: int, worker_id: int | None = None) -> str:
    """run_job with a heartbeat thread around it."""
    from engine.runner import run_job  # here, not at the top: importing this module stays cheap

    with Heartbeat(job_id=job_id, worker_id=worker_id):
        return run_job(job_id)


def worker_loop(once: bool = False, poll_s: float = 1.0, max_jobs: int | None = None,
                clock: Callable[[], datetime] = utcnow) -> int:
    """Run jobs until stopped (SIGTERM/SIGINT), or until the queue is empty when `once`.

    `max_jobs` recycles the worker after that many jobs (a fresh process frees leaked GPU
    memory). Returns the number of jobs run. LAB_EXECUTOR=ray: the Ray dispatcher instead."""
    from engine import ray_executor

    if ray_executor.selected():
        return ray_executor.dispatch_loop(once=once, poll_s=poll_s, max_jobs=max_jobs,
                                          clock=clock)
    from engine.toolkit import device as dev

    device = dev.setup()
    worker_id = store.register_worker(device=dev.describe(device), now=clock())
    stopping = {"flag": False}

    def stop(signum, _frame) -> None:
        log.info("worker %s: signal %s, stopping after the current job", worker_id, signum)
        stopping["flag"] = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    ran = 0
    try:
        with Heartbeat(worker_id=worker_id):
            while not stopping["flag"]:
                reap(clock())
                job = store.claim(worker_id, clock())
                if job is None:
                    if once:
                        break
                    time.sleep(poll_s)
                    continue
                log.info("worker %s: job %s (%s) started", worker_id, job.id, job.method)
                # the loop's own heartbeat thread keeps the worker (and reaping) alive
                status = run_claimed(job.id)
                log.info("worker %s: job %s %s", worker_id, job.id, status)
                ran += 1
                if max_jobs is not None and ran >= max_jobs:
                    break
    finally:
        store.worker_stopped(worker_id, clock())
        for s, handler in previous.items():
            signal.signal(s, handler)
    return ran


def alive(now: datetime | None = None) -> list:
    return store.alive_workers(now or utcnow(), WORKER_ALIVE_S)


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


def ensure_worker() -> str:
    """Start a background worker unless one is alive; return what happened, in words."""
    if alive():
        return "running"
    if not settings.worker_autostart():
        return "disabled"
    stamp = settings.lab_home() / "worker.spawned"
    if stamp.exists() and time.time() - stamp.stat().st_mtime < SPAWN_GRACE_S:
        return "starting"
    stamp.touch()
    log_file = open(settings.logs_dir() / "worker.log", "ab")
    root = Path(__file__).resolve().parent.parent
    subprocess.Popen([sys.executable, "-m", "engine", "worker"], cwd=root, stdout=log_file,
                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                     start_new_session=True, env=os.environ.copy())
    return "started"
