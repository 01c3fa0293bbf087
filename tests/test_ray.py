"""LAB_EXECUTOR=ray: jobs run as Ray tasks on a local Ray instance, end to end, a killed Ray
worker's job is re-queued by the reaper, and a Ray address that does not answer is a clear
message with nothing written."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import ray_executor as rx
from engine.cli import main
from engine.submit import submit
from engine.toolkit.config import LabError
from storage import jobs as store
from storage.db import session_scope
from storage.models import Worker
from tests.conftest import ROOT

QUICK_EVAL = ["max_length=16", "batch_sizes=[1]", "warmup=0", "latency_runs=2", "test_limit=4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resources_fit_the_cluster() -> None:
    total = {"CPU": 2.0}
    assert rx.fit_to_cluster({"num_cpus": 8}, total) == {"num_cpus": 2.0, "num_gpus": 0.0}
    assert rx.fit_to_cluster({"num_cpus": 1}, {"CPU": 4, "GPU": 1}) == \
        {"num_cpus": 1.0, "num_gpus": 0.0}
    assert rx.fit_to_cluster({"num_gpus": 1}, {"CPU": 4, "GPU": 1})["num_gpus"] == 1.0
    with pytest.raises(LabError, match="needs 1 GPU"):
        rx.fit_to_cluster({"num_gpus": 1}, total)


def test_capacity_counts_thread_sets_and_gpus(monkeypatch) -> None:
    monkeypatch.setenv("LAB_THREADS", "2")
    assert rx.capacity({"CPU": 8.0}) == 4
    assert rx.capacity({"CPU": 1.0}) == 1
    assert rx.capacity({"CPU": 16.0, "GPU": 2.0}) == 10


def test_default_resources_are_lab_threads(monkeypatch, tiny_model_dir, tiny_csv) -> None:
    monkeypatch.setenv("LAB_THREADS", "3")
    jid = submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                 sets=QUICK_EVAL)
    assert rx.requested_resources(store.get_job(jid)) == {"num_cpus": 3.0}


@pytest.mark.parametrize("address,words", [
    ("127.0.0.1:{port}", "does not answer"), ("ray://127.0.0.1:{port}", "does not answer"),
    ("no-port-here", "not HOST:PORT")])
def test_ray_address_that_does_not_answer(monkeypatch, capsys, address, words) -> None:
    monkeypatch.setenv("LAB_EXECUTOR", "ray")
    monkeypatch.setenv("LAB_RAY_ADDRESS", address.format(port=free_port()))
    started = time.monotonic()
    assert main(["worker", "--once"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err
    assert "LAB_RAY_ADDRESS" in err
    assert time.monotonic() - started < 30
    with session_scope() as s:  # nothing written: no worker row
        assert s.query(Worker).count() == 0


def ray_job_pids() -> list[int]:
    """Ray worker processes running a lab job (Ray titles them "ray::lab_job")."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::lab_job"):
                pids.append(int(proc.name))
    return pids


def wait_until(predicate, timeout: float = 240, poll: float = 0.5) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def test_jobs_run_as_ray_tasks_and_a_killed_ray_worker_is_requeued(tiny_model_dir, tiny_csv,
                                                                   lab_home) -> None:
    """One local Ray instance: a tiny evaluate runs end to end (executor "ray"); a long
    finetune's Ray worker is SIGKILLed mid-job and the reaper re-queues it; cancel ends it."""
    pytest.importorskip("ray")
    quick = submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                   sets=QUICK_EVAL)
    env = {**os.environ, "LAB_EXECUTOR": "ray", "LAB_THREADS": "1",
           "LAB_HEARTBEAT_TIMEOUT_S": "8", "LAB_MAX_ATTEMPTS": "3", "RAY_AUTH_MODE": "disabled"}
    env.pop("LAB_RAY_ADDRESS", None)
    log = (lab_home.parent / "dispatcher.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "engine", "worker"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_until(lambda: store.get_job(quick).status in ("done", "failed")), \
            store.job_as_dict(store.get_job(quick))
        job = store.job_as_dict(store.get_job(quick))
        assert job["status"] == "done", job["error"]
        assert job["executor"] == "ray" and job["metrics"]["accuracy"] is not None
        assert wait_until(lambda: not ray_job_pids(), timeout=30)

        long_job = submit("finetune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                          sets=["max_steps=100000", "batch_size=8", "max_length=16"])
        assert wait_until(lambda: "step" in (store.get_job(long_job).message or ""))
        pids = ray_job_pids()
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)  # the Ray worker process, mid-job
        assert wait_until(lambda: store.get_job(long_job).attempts >= 2, timeout=120), \
            store.job_as_dict(store.get_job(long_job))
        again = store.get_job(long_job)
        assert again.status in ("queued", "running") and again.executor == "ray"
        assert store.request_cancel(long_job) in ("running", "cancelled")
        assert wait_until(lambda: store.get_job(long_job).status == "cancelled", timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.returncode == 0, (lab_home.parent / "dispatcher.log").read_text()[-3000:]
