"""LAB_EXECUTOR=ray: a dispatcher claims queued jobs and runs each one as a Ray task.

The dispatcher is a worker like the local one (a `workers` row, a heartbeat, it reaps): it
claims jobs through the storage verbs (`store.claim`), asks the method's spec for the job's
resources (`resources(cfg)`; default `{"num_cpus": LAB_THREADS}`, a GPU scheme asks
`{"num_gpus": 1}`) and submits `lab_job(job_id)`, whose body is `engine.worker.run_claimed`:
run_job with a heartbeat thread, so progress, cancel and results work exactly as with the local
worker. It claims no more jobs than the cluster can start at once, and keeps the heartbeat of a
claimed job that waits in Ray for resources. A Ray worker that dies mid-job stops that heartbeat:
the reaper re-queues the job (LAB_HEARTBEAT_TIMEOUT_S, LAB_MAX_ATTEMPTS), as for a dead local
worker. Tasks are never retried by Ray itself (max_retries=0): the reaper counts the attempts.

LAB_RAY_ADDRESS: the cluster to join (`HOST:PORT` of its head, or `ray://HOST:PORT`); unset
starts a local Ray instance with this machine's cores. A cluster needs every node to see the same
database (LAB_DATABASE_URL: PostgreSQL) and the same LAB_HOME folder (shared storage), with the
lab's code and virtual environment at the same path (README, "A cluster").
Importing this module is cheap: ray is imported when the dispatcher starts.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import update

from engine.toolkit.config import LabError
from engine.worker import reap
from storage import jobs as store
from storage import settings
from storage.db import session_scope
from storage.models import RUNNING, Job, Worker, utcnow

log = logging.getLogger("engine.ray")
CONNECT_TIMEOUT_S = 5.0  # a Ray head that does not accept a TCP connection in this long is down
QUEUED_HEARTBEAT_S = 5.0  # how often the dispatcher heartbeats jobs waiting in Ray
# environment a task needs (local instance: inherited anyway; a cluster: passed on)
PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS")


def _setting(name: str) -> str | None:
    """A declared setting (storage/settings.py); read from the environment until it is."""
    if name in settings._DEFAULTS:
        return settings._get(name)
    return os.environ.get(name, "").strip() or None


def selected() -> bool:
    """LAB_EXECUTOR=ray: the worker process runs this dispatcher instead of its own loop."""
    return (_setting("LAB_EXECUTOR") or "local").lower() == "ray"


def ray_address() -> str | None:
    return _setting("LAB_RAY_ADDRESS")


def lab_env() -> dict[str, str]:
    """The settings a task must see (LAB_* and the offline switches)."""
    return {k: v for k, v in os.environ.items() if k.startswith("LAB_") or k in PASSED_ENV}


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise LabError unless something accepts a TCP connection at the Ray address."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise LabError(f"LAB_RAY_ADDRESS={address!r} is not HOST:PORT (or ray://HOST:PORT); "
                       "unset it to start a local Ray instance")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise LabError(f"the Ray cluster at LAB_RAY_ADDRESS={address} does not answer ({exc}); "
                       "start it (`ray start --head` on its head node) or unset "
                       "LAB_RAY_ADDRESS to run jobs on a local Ray instance") from None


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at `address` (default LAB_RAY_ADDRESS), or start a local instance
    with `num_cpus` (default: this machine's cores, at least LAB_THREADS). Returns True when it
    started a local instance (the caller shuts it down). Raises LabError when Ray is missing or
    the address does not answer."""
    try:
        import ray
    except ImportError:
        raise LabError("LAB_EXECUTOR=ray needs Ray: pip install -r requirements.txt") from None
    if ray.is_initialized():
        return False
    address = address if address is not None else ray_address()
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False,
                              "runtime_env": {"env_vars": lab_env()}}
    if address:
        check_reachable(address)
        kwargs["address"] = address
    else:
        kwargs.update(include_dashboard=False,
                      num_cpus=num_cpus or max(os.cpu_count() or 1, settings.threads()))
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f"the Ray cluster at LAB_RAY_ADDRESS={address}" if address else "a local Ray"
        raise LabError(f"could not start or join {where}: {exc}") from None
    return not address


def lab_job(job_id: int, env: dict[str, str]) -> str:
    """The Ray task's body: one claimed job, run as the local worker runs it."""
    os.environ.update(env)
    from engine.worker import run_claimed  # the queue helper's name for "run one claimed job"

    return run_claimed(job_id)


def requested_resources(job: Job) -> dict[str, float]:
    """What the job asks of Ray: its method's `resources(cfg)` hook, else LAB_THREADS CPUs."""
    from engine.methods.registry import config_from_json, get_method

    spec = get_method(job.method)
    if spec.resources is not None:
        return dict(spec.resources(config_from_json(job.method, job.config)))
    return {"num_cpus": float(settings.threads())}


def fit_to_cluster(wanted: dict[str, float], total: dict[str, float]) -> dict[str, float]:
    """The task's Ray options: GPUs as asked (LabError when the cluster has too few), CPUs at
    most what the cluster has (a job asking 8 threads still runs on a 2-core cluster)."""
    gpus, cpus = float(wanted.get("num_gpus", 0)), float(wanted.get("num_cpus", 1))
    if gpus > total.get("GPU", 0):
        raise LabError(f"this job needs {gpus:g} GPU(s) and the Ray cluster has "
                       f"{total.get('GPU', 0):g}; add a GPU node or choose a CPU scheme")
    return {"num_cpus": min(cpus, max(total.get("CPU", 1), 1.0)), "num_gpus": gpus}


def capacity(total: dict[str, float]) -> int:
    """How many jobs the cluster can run at once: its CPUs in LAB_THREADS sets, plus its GPUs."""
    return max(1, int(total.get("CPU", 1) // settings.threads()) + int(total.get("GPU", 0)))


def _record_executor(job_id: int | None = None, worker_id: int | None = None) -> None:
    """executor = "ray" on the claimed job's row (guarded: only while it runs) and on the
    dispatcher's worker row. (To move into the queue's verbs: claim(..., executor=).)"""
    with session_scope() as s:
        if job_id is not None:
            s.execute(update(Job).where(Job.id == job_id, Job.status == RUNNING)
                      .values(executor="ray"))
        if worker_id is not None:
            s.execute(update(Worker).where(Worker.id == worker_id).values(executor="ray"))


def dispatch_loop(once: bool = False, poll_s: float = 1.0, max_jobs: int | None = None,
                  clock: Callable[[], datetime] = utcnow, address: str | None = None) -> int:
    """Claim jobs and run them as Ray tasks until stopped (SIGTERM/SIGINT: after the jobs in
    flight), or, with `once`, until the queue is empty and every task has ended. Returns the
    number of tasks that ended (done, failed or cancelled)."""
    import ray

    from engine.worker import Heartbeat

    started_local = connect(address)
    remote = ray.remote(max_retries=0)(lab_job)  # its process is titled "ray::lab_job"
    total = {k: float(v) for k, v in ray.cluster_resources().items()}
    slots = capacity(total)
    worker_id = store.register_worker(
        device=f"ray ({total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs)", now=clock())
    _record_executor(worker_id=worker_id)
    stopping = {"flag": False}

    def stop(signum, _frame) -> None:
        log.info("ray dispatcher: signal %s, stopping after the jobs in flight", signum)
        stopping["flag"] = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    inflight: dict[Any, int] = {}
    claimed = ended = 0
    last_beat = 0.0
    try:
        with Heartbeat(worker_id=worker_id):
            while True:
                reap(clock())
                drained = False
                while (not stopping["flag"] and len(inflight) < slots
                       and (max_jobs is None or claimed < max_jobs)):
                    job = store.claim(worker_id, clock())
                    if job is None:
                        drained = True
                        break
                    claimed += 1
                    try:
                        options = fit_to_cluster(requested_resources(job), total)
                    except LabError as exc:
                        store.fail(job.id, str(exc))
                        ended += 1
                        continue
                    _record_executor(job_id=job.id)
                    log.info("ray dispatcher: job %s (%s) -> task %s", job.id, job.method, options)
                    inflight[remote.options(**options).remote(job.id, lab_env())] = job.id
                if not inflight:
                    if stopping["flag"] or (once and drained) or \
                            (max_jobs is not None and claimed >= max_jobs):
                        break
                    time.sleep(poll_s)
                    continue
                if time.monotonic() - last_beat > QUEUED_HEARTBEAT_S:
                    for jid in inflight.values():  # a job still waiting for Ray's resources
                        store.report_progress(jid)
                    last_beat = time.monotonic()
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=poll_s)
                for ref in ready:
                    jid = inflight.pop(ref)
                    ended += 1
                    try:
                        log.info("ray dispatcher: job %s %s", jid, ray.get(ref))
                    except ray.exceptions.RayError as exc:
                        # its worker process died: no more heartbeats, the reaper re-queues it
                        log.warning("ray dispatcher: job %s lost its Ray worker (%s); it is "
                                    "re-queued when its heartbeat times out", jid,
                                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    finally:
        store.worker_stopped(worker_id, clock())
        for s, handler in previous.items():
            signal.signal(s, handler)
        if started_local:
            ray.shutdown()
    return ended
