"""Faults and load: a killed worker, concurrent submitters and workers, restart, delete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.submit import delete_run, submit
from engine.toolkit.config import LabError
from storage import jobs as store
from tests.conftest import ROOT

QUICK_EVAL = ["max_length=16", "batch_sizes=[1]", "warmup=0", "latency_runs=2", "test_limit=4"]


def start_worker(log: Path | None = None, **env: str) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "engine", "worker"], cwd=ROOT,
                            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)


def wait_until(predicate, timeout: float = 120, poll: float = 0.3) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def test_killed_worker_fails_its_job_and_a_new_worker_goes_on(tiny_model_dir, tiny_csv,
                                                               lab_home) -> None:
    env = {"LAB_HEARTBEAT_TIMEOUT_S": "4", "LAB_MAX_ATTEMPTS": "1"}
    long_job = submit("finetune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                      sets=["max_steps=100000", "batch_size=8", "max_length=16"])
    next_job = submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                      sets=QUICK_EVAL)
    first = start_worker(**env)
    try:
        assert wait_until(lambda: "step" in (store.get_job(long_job).message or ""))
        first.kill()  # SIGKILL: no chance to clean up
        first.wait(timeout=30)
        second = start_worker(**env)
        try:
            assert wait_until(lambda: store.get_job(next_job).status == "done", timeout=180)
            assert wait_until(lambda: store.get_job(long_job).status == "failed", timeout=60)
        finally:
            assert stop(second) == 0
    finally:
        if first.poll() is None:
            first.kill()
    job = store.get_job(long_job)
    assert "worker" in job.error and "died" in job.error
    assert not list((lab_home / "artifacts").glob(f"job-{long_job}*"))


SUBMITTER = """
import json, sys
from engine.submit import submit
model, csv, n, sets = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
print(json.dumps([submit("evaluate", model=model, dataset=f"csv:{csv}", sets=sets,
                         fresh=True) for _ in range(n)]))
"""


def test_fifty_concurrent_jobs_run_exactly_once(tiny_model_dir, tiny_csv, lab_home) -> None:
    """Threads and processes submit 50 jobs while two workers run them; then a restart."""
    ids: list[int] = []
    errors: list[str] = []
    workers = [start_worker(), start_worker()]
    try:
        def from_thread() -> None:
            try:
                for _ in range(10):
                    ids.append(submit("evaluate", model=str(tiny_model_dir),
                                      dataset=f"csv:{tiny_csv}", sets=QUICK_EVAL,
                                      fresh=True))  # the queue under load, not reuse
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

        # Clean interpreters (not multiprocessing's spawn, which re-imports __main__).
        procs = [subprocess.Popen([sys.executable, "-c", SUBMITTER, str(tiny_model_dir),
                                   str(tiny_csv), "10", *QUICK_EVAL], cwd=ROOT, env=os.environ,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        threads = [threading.Thread(target=from_thread) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in procs:
            out, err = p.communicate(timeout=300)
            if p.returncode == 0:
                ids.extend(json.loads(out.strip().splitlines()[-1]))
            else:
                errors.append(err[-2000:])
        assert not errors, errors
        assert len(ids) == len(set(ids)) == 50

        # Restart half-way: stop one worker gracefully; nothing queued may be lost.
        assert wait_until(lambda: store.count_jobs().get("done", 0) >= 10, timeout=900)
        assert stop(workers[0]) == 0
        workers[0] = start_worker()
        assert wait_until(lambda: store.count_jobs().get("done", 0) == 50, timeout=1200), \
            store.count_jobs()
    finally:
        for w in workers:
            stop(w)
    jobs = [store.get_job(i) for i in ids]
    assert all(j.status == "done" and j.attempts == 1 for j in jobs), \
        [(j.id, j.status, j.attempts, j.error) for j in jobs if j.status != "done"]


def test_delete_removes_rows_and_artifacts(tiny_model_dir, tiny_csv, lab_home) -> None:
    from engine.worker import run_claimed

    job_id = submit("finetune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                    sets=["max_steps=2", "batch_size=8", "max_length=16"])
    store.claim(None, job_id=job_id)
    run_claimed(job_id)
    child = submit("evaluate", model=f"job:{job_id}", dataset=f"csv:{tiny_csv}", sets=QUICK_EVAL)
    store.claim(None, job_id=child)
    run_claimed(child)
    with pytest.raises(LabError, match="delete those first"):
        delete_run(job_id)
    delete_run(child)
    delete_run(job_id)
    assert store.list_jobs() == [] and store.list_models() == []
    assert store.predictions(job_id) == []
    assert list((lab_home / "artifacts").iterdir()) == []


def test_running_job_cannot_be_deleted(tiny_csv, tiny_model_dir) -> None:
    job_id = submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}")
    store.claim(None, job_id=job_id)
    with pytest.raises(LabError, match="cancel it"):
        delete_run(job_id)


def test_delete_never_touches_files_outside_artifacts(tmp_path: Path, tiny_csv,
                                                      tiny_model_dir) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    job_id = submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}")
    store.claim(None, job_id=job_id)
    store.finish(job_id, output_model=f"job:{job_id}")
    store.register_model(f"job:{job_id}", str(outside), "job", job_id=job_id)
    delete_run(job_id)
    assert outside.is_dir()


def test_a_stalled_worker_cannot_overwrite_the_job(tiny_model_dir, tiny_csv, lab_home,
                                                   tmp_path, monkeypatch) -> None:
    """Worker A claims a quantize job and is stopped (SIGSTOP) past the heartbeat timeout;
    worker B takes the job and finishes it; A resumes: its writes are refused (StaleClaim),
    it discards its partial folder, and the job is done once, with B's output."""
    # 6 s, not 3: on a loaded 2-core CI box worker B's own beats (1 s apart at 3 s) once went
    # stale mid-job and B re-claimed it (a third attempt); A is stopped for as long as it takes
    env = {"LAB_HEARTBEAT_TIMEOUT_S": "6", "LAB_MAX_ATTEMPTS": "3"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    job_id = submit("quantize", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                    sets=["max_length=16", "runtime=eager"])
    a = start_worker(log=tmp_path / "a.log", **env)
    b = None
    try:
        assert wait_until(lambda: store.load_job(job_id).status == "running", timeout=120)
        a_worker = store.load_job(job_id).worker_id
        a.send_signal(signal.SIGSTOP)
        assert wait_until(lambda: store.get_job(job_id).status == "queued", timeout=60)
        b = start_worker(log=tmp_path / "b.log", **env)
        assert wait_until(lambda: store.get_job(job_id).status in ("done", "failed"),
                          timeout=300), store.get_job(job_id).message
        done = store.job_as_dict(store.get_job(job_id))
        a.send_signal(signal.SIGCONT)
        assert wait_until(lambda: "lost its claim" in (tmp_path / "a.log").read_text(),
                          timeout=120), (tmp_path / "a.log").read_text()[-3000:]
        time.sleep(2)
    finally:
        if a.poll() is None:
            a.send_signal(signal.SIGCONT)
        assert stop(a) == 0
        if b is not None:
            assert stop(b) == 0
    after = store.job_as_dict(store.get_job(job_id))
    assert done["status"] == "done", done["error"]
    assert after["status"] == "done" and after["attempts"] == 2
    assert after["worker_id"] != a_worker
    assert after["metrics"] == done["metrics"] and after["output_model"] == f"job:{job_id}"
    assert store.find_model(f"job:{job_id}").path == str(lab_home / "artifacts" / f"job-{job_id}")
    assert sorted(p.name for p in (lab_home / "artifacts").iterdir()) == [f"job-{job_id}"]
