"""Storage verbs: queueing, atomic claims, progress and cancel, reaping, migrations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from storage import jobs as store
from storage.db import get_engine
from storage.models import Base, utcnow
from tests.conftest import ROOT


def _enqueue(n: int = 1, **kw) -> list[int]:
    return [store.enqueue("evaluate", {"type": "EvaluateConfig", "version": 1, "data": {}},
                          "default", "rotten-tomatoes", **kw) for _ in range(n)]


def test_enqueue_and_claim_oldest_first() -> None:
    a, b = _enqueue(2)
    job = store.claim(worker_id=7)
    assert job is not None and job.id == a and job.status == "running" and job.attempts == 1
    assert store.claim(worker_id=7).id == b
    assert store.claim(worker_id=7) is None


# A clean interpreter per claimer: multiprocessing's spawn re-imports the parent's __main__,
# which AppTest (earlier tests in the session) may have left pointing at a page script.
CLAIMER = """
import json, os, sys
from storage import jobs as store
got = []
while (job := store.claim(worker_id=os.getpid())) is not None:
    got.append(job.id)
print(json.dumps(got))
"""


def test_claiming_is_atomic_under_two_processes(lab_home) -> None:
    ids = _enqueue(40)
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER], cwd=ROOT, env=os.environ,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    claimed = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        claimed += json.loads(out.strip().splitlines()[-1])
    assert len(claimed) == len(set(claimed)), "no job claimed twice"
    assert set(ids) <= set(claimed), "every job claimed"


def test_child_waits_for_parent_and_fails_with_it() -> None:
    (parent,) = _enqueue()
    (child,) = _enqueue(parent_id=parent)
    assert store.claim(1).id == parent
    assert store.claim(1) is None, "child must wait while its input job runs"
    store.fail(parent, "boom")
    assert store.claim(1) is None
    job = store.get_job(child)
    assert job.status == "failed" and f"input job {parent}" in job.error


def test_child_runs_after_parent_done() -> None:
    (parent,) = _enqueue()
    (child,) = _enqueue(parent_id=parent)
    store.claim(1)
    store.finish(parent, output_model=f"job:{parent}")
    assert store.claim(1).id == child


def test_progress_and_cancel_flag() -> None:
    (jid,) = _enqueue()
    store.claim(1)
    assert store.report_progress(jid, 0.5, "halfway") is False
    assert store.request_cancel(jid) == "running"
    assert store.report_progress(jid, 0.6) is True
    job = store.get_job(jid)
    assert job.progress == pytest.approx(0.6) and job.cancel_requested


def test_cancel_queued_job_is_immediate() -> None:
    (jid,) = _enqueue()
    assert store.request_cancel(jid) == "cancelled"
    assert store.claim(1) is None


def test_reap_stale_requeues_then_fails() -> None:
    (jid,) = _enqueue()
    t0 = utcnow()
    store.claim(1, now=t0)
    assert store.reap_stale(t0 + timedelta(seconds=30), timeout_s=60, max_attempts=2) == []
    assert store.reap_stale(t0 + timedelta(seconds=61), timeout_s=60, max_attempts=2) == [jid]
    assert store.get_job(jid).status == "queued"
    t1 = t0 + timedelta(seconds=100)
    store.claim(1, now=t1)
    store.reap_stale(t1 + timedelta(seconds=61), timeout_s=60, max_attempts=2)
    job = store.get_job(jid)
    assert job.status == "failed" and "worker" in job.error


def test_workers_alive_by_heartbeat() -> None:
    t0 = utcnow()
    wid = store.register_worker("cpu (2 threads)", now=t0)
    assert [w.id for w in store.alive_workers(t0 + timedelta(seconds=10), 30)] == [wid]
    assert store.alive_workers(t0 + timedelta(seconds=31), 30) == []
    store.worker_heartbeat(wid, now=t0 + timedelta(seconds=30))
    store.worker_stopped(wid)
    assert store.alive_workers(t0 + timedelta(seconds=31), 30) == []


def test_save_results_roundtrip_into_json_contract() -> None:
    (jid,) = _enqueue()
    store.claim(1)
    store.save_results(jid, {"model": "default", "dataset": "rotten-tomatoes", "accuracy": 0.8,
                             "macro_f1": 0.79, "speedup_vs_parent": {"1": 2.0}},
                       [{"role": "self", "batch_size": 1, "seq_len": 64, "p50_ms": 5.0,
                         "p95_ms": 6.0, "throughput_per_s": 200.0, "device": "cpu"}],
                       [(0, 1, 1, 0.9), (1, 0, 1, 0.6)])
    store.finish(jid)
    d = store.job_as_dict(store.get_job(jid))
    assert d["metrics"]["accuracy"] == 0.8 and d["metrics"]["speedup_vs_parent"] == {"1": 2.0}
    assert d["metrics"]["latency"][0]["p50_ms"] == 5.0
    assert [p.pred for p in store.predictions(jid)] == [1, 1]


def test_migrations_match_the_models() -> None:
    """The Alembic head creates exactly the tables the models declare."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with get_engine().connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"add an Alembic revision for: {diff}"


def test_sqlite_uses_wal() -> None:
    if get_engine().dialect.name != "sqlite":
        pytest.skip("SQLite only (this run uses LAB_TEST_DATABASE_URL)")
    with get_engine().connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
