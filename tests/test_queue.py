"""The queue: fair share between owners, guarded writes (StaleClaim), readers that reap,
owners, the per-owner cap, permissions, worker slots, the runner's one-line errors."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from engine.submit import can_touch, cancel_job, check_owner, delete_run, submit
from engine.toolkit.config import LabError
from storage import jobs as store
from storage.db import session_scope
from storage.models import Job, utcnow

CFG = {"type": "EvaluateConfig", "version": 1, "data": {}}


def _job(owner: str = "", **kw) -> int:
    return store.enqueue("evaluate", CFG, "default", "rotten-tomatoes", owner=owner, **kw)


def _set(job_id: int, **values) -> None:
    with session_scope() as s:
        job = s.get(Job, job_id)
        for k, v in values.items():
            setattr(job, k, v)


# --------------------------------------------------------------------------- fair share


def test_claim_goes_to_the_owner_with_least_recent_worker_time() -> None:
    now = utcnow()
    # greedy used 40 min of the last hour, modest 5 min; a run of 3 h ago no longer counts
    old = _job("greedy")
    _set(old, status="done", started_at=now - timedelta(minutes=45),
         finished_at=now - timedelta(minutes=5))
    ancient = _job("modest")
    _set(ancient, status="done", started_at=now - timedelta(hours=3),
         finished_at=now - timedelta(hours=2, minutes=1))
    recent = _job("modest")
    _set(recent, status="done", started_at=now - timedelta(minutes=10),
         finished_at=now - timedelta(minutes=5))
    g1, g2 = _job("greedy"), _job("greedy")
    m1 = _job("modest")
    n1 = _job("newcomer")
    usage = store.owner_usage(now)
    assert usage["greedy"] == pytest.approx(40 * 60) and usage["modest"] == pytest.approx(300)
    # newcomer (0 s) first although its job is the newest, then modest, then greedy's oldest
    assert store.claim(1, now=now).id == n1
    assert store.claim(1, now=now).id == m1
    t = now + timedelta(minutes=1)
    assert store.claim(1, now=t).id == g1
    assert store.claim(1, now=t).id == g2
    assert store.claim(1, now=t) is None


def test_running_time_counts_and_ties_go_to_the_oldest_job() -> None:
    now = utcnow()
    a1, b1, a2, b2 = _job("a"), _job("b"), _job("a"), _job("b")
    assert store.claim(1, now=now).id == a1, "a tie: the oldest job"
    # a1 has run for 2 minutes: b is next, although a2 is older than b2
    t = now + timedelta(minutes=2)
    store.report_progress(a1, now=t)
    assert store.claim(2, now=t).id == b1
    # a minute later a1 has run 3 min, b1 1 min: b again, then a
    assert store.claim(3, now=t + timedelta(minutes=1)).id == b2
    assert store.claim(3, now=t + timedelta(minutes=1)).id == a2


# --------------------------------------------------------------------------- guarded writes


def test_a_lost_claim_cannot_write_anything() -> None:
    jid = _job()
    t0 = utcnow()
    first = store.claim(1, now=t0)
    assert first.attempts == 1
    assert store.reap_stale(t0 + timedelta(seconds=61), 60, 3) == [jid]
    second = store.claim(2, now=t0 + timedelta(seconds=62))
    assert second.id == jid and second.attempts == 2
    store.report_progress(jid, 0.3, "second worker", attempt=2)
    for write in (
        lambda: store.report_progress(jid, 0.9, "stale", attempt=1),
        lambda: store.add_curve_points(jid, {"loss": (1, 0.5)}, attempt=1),
        lambda: store.finish(jid, "job:1", attempt=1),
        lambda: store.fail(jid, "stale failure", attempt=1),
        lambda: store.mark_cancelled(jid, attempt=1),
        lambda: store.save_results(jid, {"model": "x", "dataset": "y"}, [], [], attempt=1),
        lambda: store.complete(jid, 1, {"model": "x", "dataset": "y", "accuracy": 0.1}, [], [],
                               model={"name": f"job:{jid}", "path": "/nowhere",
                                      "source": "job", "job_id": jid}),
    ):
        with pytest.raises(store.StaleClaim):
            write()
    job = store.get_job(jid)
    assert (job.status, job.message, job.progress, job.worker_id) == \
        ("running", "second worker", pytest.approx(0.3), 2)
    assert job.metrics is None and job.curves == {} and store.list_models() == []
    store.complete(jid, 2, {"model": "default", "dataset": "rotten-tomatoes", "accuracy": 0.7},
                   [], [(0, 1, 1, 0.9)])
    done = store.job_as_dict(store.get_job(jid))
    assert done["status"] == "done" and done["metrics"]["accuracy"] == 0.7
    with pytest.raises(store.StaleClaim):
        store.finish(jid, attempt=2)  # done: no claim holds it any more


def test_a_heartbeat_after_its_own_finish_is_not_a_lost_claim(caplog) -> None:
    """The heartbeat thread can beat once between the job's last write and its stop: that
    attempt finished the job, so no "lost its claim" warning; a claim another worker took
    still warns."""
    import logging

    from engine.worker import Heartbeat

    t0 = utcnow()
    mine, theirs = _job(), _job()
    for jid in (mine, theirs):
        store.claim(1, job_id=jid, now=t0)
    store.finish(mine, attempt=1)
    assert store.reap_stale(t0 + timedelta(seconds=61), 60, 3) == [theirs]
    store.claim(2, job_id=theirs, now=t0 + timedelta(seconds=62))
    with caplog.at_level(logging.WARNING, logger="engine.worker"):
        for jid in (mine, theirs):
            beat = Heartbeat(job_id=jid, attempt=1, interval_s=0.01)
            with beat:
                deadline = time.monotonic() + 10
                while beat.job_id is not None and time.monotonic() < deadline:
                    time.sleep(0.01)
            assert beat.job_id is None, "the beat saw the claim end"
    lost = [r.getMessage() for r in caplog.records if "lost its claim" in r.getMessage()]
    assert lost == [f"job {theirs}: this worker lost its claim (attempt 1)"]


def test_complete_publishes_only_for_the_live_claim(tmp_path) -> None:
    jid = _job()
    store.claim(1)
    published = []
    with pytest.raises(store.StaleClaim):
        store.complete(jid, 5, {"model": "m", "dataset": "d"}, [], [],
                       publish=lambda: published.append("stale"))
    store.complete(jid, 1, {"model": "m", "dataset": "d"}, [], [],
                   model={"name": f"job:{jid}", "path": str(tmp_path), "source": "job",
                          "job_id": jid}, publish=lambda: published.append("live"))
    assert published == ["live"]
    assert store.get_job(jid).output_model == f"job:{jid}"
    assert store.find_model(f"job:{jid}").path == str(tmp_path)


# --------------------------------------------------------------------------- readers reap


def test_readers_reap_first(monkeypatch) -> None:
    monkeypatch.setenv("LAB_HEARTBEAT_TIMEOUT_S", "60")
    monkeypatch.setenv("LAB_MAX_ATTEMPTS", "1")
    jid = _job()
    store.claim(1, now=utcnow() - timedelta(seconds=120))  # its worker went silent 2 min ago
    job = store.list_jobs()[0]
    assert job.status == "failed" and "stopped responding" in job.error
    assert store.get_job(jid).status == "failed"


def test_show_on_the_cli_reaps(monkeypatch) -> None:
    from engine.cli import main

    monkeypatch.setenv("LAB_MAX_ATTEMPTS", "2")
    jid = _job()
    store.claim(1, now=utcnow() - timedelta(seconds=120))
    assert main(["show", str(jid), "--json"]) == 0
    job = store.load_job(jid)
    assert job.status == "queued" and "re-queued" in job.message


# --------------------------------------------------------------------------- owners


def test_owner_names_are_checked() -> None:
    assert check_owner("  Ada   Lovelace ") == "Ada Lovelace"
    assert check_owner(None)  # the OS user
    for bad, words in [("", "empty"), ("   ", "empty"), ("<b>" * 167, "100"),
                       ("<script>alert(1)</script>", "plain text"), ("a&b", "plain text")]:
        with pytest.raises(LabError, match=words):
            check_owner(bad)


def test_submit_stores_the_owner_and_caps_the_queue(tiny_csv, monkeypatch, tiny_model_dir) -> None:
    monkeypatch.setenv("LAB_MAX_QUEUED_PER_OWNER", "2")
    ids = [submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", owner="ada",
                  fresh=True) for _ in range(2)]
    assert [store.get_job(i).owner for i in ids] == ["ada", "ada"]
    with pytest.raises(LabError, match="LAB_MAX_QUEUED_PER_OWNER=2"):
        submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", owner="ada")
    assert submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", owner="bob")
    with pytest.raises(LabError, match="plain text"):
        submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", owner="<i>x</i>")
    assert len(store.list_jobs()) == 3 and len(store.list_jobs(owner="ada")) == 2


def test_attendees_touch_only_their_own_jobs(tiny_csv, monkeypatch, tiny_model_dir) -> None:
    monkeypatch.setenv("LAB_INSTRUCTOR_TOKEN", "s3cret")
    ada = submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", owner="ada")
    bob = submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", owner="bob",
                 fresh=True)
    job = store.get_job(ada)
    assert can_touch(job, "ada") and not can_touch(job, "bob")
    assert not can_touch(job, "bob", "wrong") and can_touch(job, "bob", "s3cret")
    with pytest.raises(LabError, match="belongs to ada"):
        cancel_job(ada, owner="bob")
    assert cancel_job(ada, owner="ada") == "cancelled"
    with pytest.raises(LabError, match="belongs to ada"):
        delete_run(ada, owner="bob")
    delete_run(ada, owner="bob", token="s3cret")
    assert cancel_job(bob, owner="eve", token="s3cret") == "cancelled"
    assert [j.id for j in store.list_jobs()] == [bob]


def test_without_a_token_setting_no_token_works(monkeypatch) -> None:
    monkeypatch.delenv("LAB_INSTRUCTOR_TOKEN", raising=False)
    job = store.load_job(_job("ada"))
    assert not can_touch(job, "bob", "unset") and not can_touch(job, "bob", "")


# --------------------------------------------------------------------------- workers


def test_worker_slots(monkeypatch) -> None:
    from engine import worker
    from storage import settings

    monkeypatch.setenv("LAB_WORKERS", "3")
    monkeypatch.setattr(settings, "gpu_count", lambda: 0)
    assert [n.rsplit("/", 1)[1] for n, env in worker.worker_slots()] == ["cpu0", "cpu1", "cpu2"]
    monkeypatch.setenv("LAB_WORKERS", "auto")
    monkeypatch.setenv("LAB_THREADS", "2")
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert settings.workers() == 4
    monkeypatch.setattr(settings, "gpu_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    slots = worker.worker_slots()
    assert [env for _, env in slots] == [{"CUDA_VISIBLE_DEVICES": "0"},
                                         {"CUDA_VISIBLE_DEVICES": "1"}]
    monkeypatch.setenv("LAB_WORKERS", "nope")
    with pytest.raises(ValueError, match="LAB_WORKERS"):
        settings.workers()


def test_workers_have_names_and_jobs_point_at_them() -> None:
    wid = store.register_worker("cpu (2 threads)", name="box/cpu1")
    jid = _job()
    claimed = store.claim(wid)
    assert claimed.worker_id == wid and claimed.executor == "local"
    assert store.worker_names([store.get_job(jid).worker_id]) == {wid: "box/cpu1"}


# --------------------------------------------------------------------------- errors


def test_unexpected_failure_is_one_plain_line_with_the_traceback_apart(monkeypatch) -> None:
    import engine.runner as runner
    from engine.worker import run_claimed

    def broken(*_args, **_kw):
        raise KeyError("x")

    monkeypatch.setattr(runner, "_run", broken)
    jid = _job()
    store.claim(None, job_id=jid)
    assert run_claimed(jid) == "failed"
    d = store.job_as_dict(store.get_job(jid))
    assert d["error"] == ("unexpected error in the evaluate job: KeyError 'x'. This is a bug in "
                          "the lab: the details are kept with the job (Jobs page, `show`); "
                          "resubmit, or report it with them")
    assert "\n" not in d["error"] and "Traceback" in d["error_detail"]
    assert "KeyError" in d["error_detail"]


# --------------------------------------------------------------------------- concurrent submits


def _race(n: int, submit_one) -> tuple[list[int], list[str]]:
    """`n` threads call `submit_one(i)` at the same moment (a barrier); returns the ids made and
    the messages of the LabErrors raised. Any other exception fails the test."""
    barrier = threading.Barrier(n)
    ids: list[int] = []
    refused: list[str] = []
    others: list[str] = []

    def one(i: int) -> None:
        barrier.wait()
        try:
            ids.append(submit_one(i))
        except LabError as exc:
            refused.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - reported below
            others.append(repr(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not others, others
    return ids, refused


def test_the_queue_cap_holds_under_concurrent_submits(tiny_csv, monkeypatch,
                                                      tiny_model_dir) -> None:
    """Eight submits of one owner at the same moment, cap 3: exactly 3 queue (the count and
    the insert are one atomic step), the rest get the cap's message; rounds repeat the race."""
    monkeypatch.setenv("LAB_MAX_QUEUED_PER_OWNER", "3")
    args = dict(model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", fresh=True)
    for round_ in range(4):
        owner = f"attendee {round_}"
        ids, refused = _race(8, lambda i, owner=owner: submit("evaluate", owner=owner,
                                                 sets=[f"max_length={16 + i}"], **args))
        assert len(ids) == 3 and len(refused) == 5, (round_, ids, refused)
        assert all("LAB_MAX_QUEUED_PER_OWNER=3" in m for m in refused)
        assert store.count_queued(owner) == 3


def test_identical_concurrent_submits_run_once(tiny_csv, tiny_model_dir) -> None:
    """Eight attendees submit the same work at the same moment: one job runs, the other seven
    wait on it (the look-up of identical work and the insert are one atomic step)."""
    args = dict(model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}")
    for round_ in range(3):
        sets = [f"max_length={16 + round_}"]
        ids, refused = _race(8, lambda i, sets=sets: submit("evaluate", owner=f"a{i}",
                                                            sets=sets, **args))
        assert len(ids) == 8 and not refused
        runs = [i for i in ids if store.get_job(i).reused_from is None]
        assert len(runs) == 1, (round_, [(i, store.get_job(i).reused_from) for i in ids])
