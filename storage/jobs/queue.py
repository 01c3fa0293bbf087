"""The queue's verbs: enqueue, claim (fair share between owners), progress and curves,
finish / complete / fail / cancel, and the reaper.

Each verb is one short transaction. Every write to a running job may name its claim
(`attempt`, the job's `attempts` value when it was claimed): it is then a compare-and-set
(status running AND the same attempts), refused with StaleClaim when the claim was lost.
Time-dependent verbs take `now` so tests can drive the clock without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from storage.db import lock_for_write, session_scope
from storage.jobs.catalogue import upsert_model
from storage.jobs.errors import JobNotFound, QueueFull, StaleClaim
from storage.jobs.guard import guarded_update
from storage.jobs.results import write_results
from storage.models import CANCELLED, DONE, FAILED, FINISHED, QUEUED, RUNNING, Job, utcnow

FAIR_SHARE_WINDOW_S = 3600.0  # worker time counted for fair share: the last hour


def enqueue(method: str, config: dict[str, Any], model: str, dataset: str,
            parent_id: int | None = None, alias: str | None = None, owner: str = "",
            work_key: str | None = None, waits_on: int | None = None, reuse: bool = False,
            max_queued: int = 0, now: datetime | None = None) -> int:
    """Add a queued job and return its id. `config` is the serialised {type, version, data};
    `work_key` identifies its work (reuse); `waits_on` is the id of an identical queued or
    running job whose result will answer this one (stored as `reused_from`).

    With `reuse`, the identical job is looked up here (find_identical): a done one answers the
    new job at once (status done, its results copied), a queued or running one becomes its
    `waits_on`. With `max_queued` > 0, QueueFull is raised when `owner` already has that many
    queued jobs (a job answered at once does not queue, so it is never refused). The look-ups
    and the insert are one atomic step (lock_for_write on the owner and the work key): of
    submits racing at the same moment, only `max_queued` queue and only one runs the work."""
    from storage.jobs.reuse import answer_from, identical_in

    with session_scope() as s:
        names = ([f"queue-of:{owner}"] if max_queued else []) + (
            [f"work:{work_key}"] if reuse and work_key else [])
        if names:
            lock_for_write(s, *names)
        same = identical_in(s, work_key) if reuse and work_key else None
        answered = same is not None and same[1] == DONE
        if max_queued and not answered and _queued_of(s, owner) >= max_queued:
            raise QueueFull(owner, max_queued)
        waits_on = same[0] if same else waits_on
        job = Job(method=method, config=config, model=model, dataset=dataset,
                  parent_id=parent_id, alias=alias, status=QUEUED, owner=owner,
                  work_key=work_key, reused_from=waits_on,
                  message=f"waiting for identical job {waits_on}" if waits_on else "queued")
        s.add(job)
        s.flush()
        if answered:
            answer_from(s, job.id, same[0], now or utcnow())
        return job.id


def _queued_of(s: Session, owner: str) -> int:
    return s.scalar(select(func.count()).select_from(Job).where(
        Job.owner == owner, Job.status == QUEUED)) or 0


def count_queued(owner: str) -> int:
    """Queued jobs of one owner (what LAB_MAX_QUEUED_PER_OWNER caps)."""
    with session_scope() as s:
        return _queued_of(s, owner)


def _fail_orphans(s: Session, now: datetime) -> None:
    """A queued job whose input job failed or was cancelled can never run: fail it."""
    parent = Job.__table__.alias("parent")
    rows = s.execute(
        select(Job.id, parent.c.id, parent.c.status)
        .join(parent, parent.c.id == Job.parent_id)
        .where(Job.status == QUEUED, parent.c.status.in_((FAILED, CANCELLED)))
    ).all()
    for job_id, parent_id, parent_status in rows:
        s.execute(update(Job).where(Job.id == job_id, Job.status == QUEUED).values(
            status=FAILED, finished_at=now, message="input job did not finish",
            error=f"its input job {parent_id} {parent_status}; resubmit once that job is done"))


def owner_usage(now: datetime, window_s: float = FAIR_SHARE_WINDOW_S) -> dict[str, float]:
    """Worker seconds each owner used in the last `window_s` before `now`: the part of each
    started job's run (started_at .. finished_at, or .. now while running) inside the window.
    A pure function of `now` and the rows."""
    start = now - timedelta(seconds=window_s)
    with session_scope() as s:
        rows = s.execute(select(Job.owner, Job.status, Job.started_at, Job.finished_at).where(
            Job.started_at.is_not(None), Job.status.in_((RUNNING, *FINISHED)),
            or_(Job.finished_at.is_(None), Job.finished_at >= start))).all()
    usage: dict[str, float] = {}
    for owner, status, started, finished in rows:
        end = now if status == RUNNING or finished is None else min(finished, now)
        seconds = (end - max(started, start)).total_seconds()
        if seconds > 0:
            usage[owner or ""] = usage.get(owner or "", 0.0) + seconds
    return usage


def claim(worker_id: int | None, now: datetime | None = None,
          job_id: int | None = None, executor: str = "local") -> Job | None:
    """Atomically take the next runnable queued job (or `job_id`) and mark it running.

    Runnable: queued, its input job (if any) is done, and it waits on no identical job.
    Next: the job of the owner with the least worker time in the last hour
    (`owner_usage`), ties broken by the oldest job. The UPDATE ... WHERE status='queued' is
    a compare-and-set: of two claimers racing for the same row, exactly one changes it.
    The claim's `attempts` value (returned on the job) is what its writes pass as `attempt`;
    `executor` (local | ray) is recorded on the row."""
    from storage.jobs.reading import load_job
    from storage.jobs.reuse import answer_waiters

    now = now or utcnow()
    answer_waiters(now)
    with session_scope() as s:
        _fail_orphans(s, now)
        parent = Job.__table__.alias("parent")
        q = (select(Job.id, Job.owner).outerjoin(parent, parent.c.id == Job.parent_id)
             .where(Job.status == QUEUED, Job.reused_from.is_(None),
                    or_(Job.parent_id.is_(None), parent.c.status == DONE))
             .order_by(Job.id).limit(500))
        if job_id is not None:
            q = q.where(Job.id == job_id)
        candidates = s.execute(q).all()
    if not candidates:
        return None
    usage = owner_usage(now)
    ordered = sorted(candidates, key=lambda r: (usage.get(r.owner or "", 0.0), r.id))
    for cid, _owner in ordered[:20]:
        with session_scope() as s:
            won = s.execute(
                update(Job).where(Job.id == cid, Job.status == QUEUED).values(
                    status=RUNNING, worker_id=worker_id, started_at=now, heartbeat_at=now,
                    attempts=Job.attempts + 1, progress=0.0, message="starting",
                    finished_at=None, executor=executor)
            ).rowcount
        if won == 1:
            return load_job(cid)
    return None


def report_progress(job_id: int, progress: float | None = None, message: str | None = None,
                    now: datetime | None = None, device: str | None = None,
                    stage: str | None = None, stage_progress: float | None = None,
                    attempt: int | None = None) -> bool:
    """Record progress (0..1) and a heartbeat; return True when a cancel was requested.

    `stage` names the current stage (training, evaluating, timing...); a new name restarts
    the stage clock (`stage_started_at`), so the Jobs page can give the ETA of the stage
    from `stage_progress` (0..1 within it). With `attempt`, a job no longer held by that
    claim raises StaleClaim and is left alone; without, only a running job is written."""
    now = now or utcnow()
    values: dict[str, Any] = {"heartbeat_at": now}
    if stage_progress is not None:
        values["stage_progress"] = max(0.0, min(1.0, float(stage_progress)))
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    if message is not None:
        values["message"] = message[:500]
    if device is not None:
        values["device"] = device
    with session_scope() as s:
        if stage is not None:
            current = s.scalar(select(Job.stage).where(Job.id == job_id))
            if current != stage:
                values.update(stage=stage[:80], stage_started_at=now)
        if attempt is not None:
            guarded_update(s, job_id, attempt, **values)
        else:
            s.execute(update(Job).where(Job.id == job_id, Job.status == RUNNING)
                      .values(**values))
        return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def add_curve_points(job_id: int, points: dict[str, tuple[float, float]],
                     attempt: int | None = None) -> None:
    """Append (step, value) points to named curves (training loss, validation accuracy...).
    With `attempt`, a lost claim raises StaleClaim and the curves are left alone."""
    with session_scope() as s:
        job = s.get(Job, job_id, with_for_update=True)
        if job is None:
            return
        if attempt is not None and (job.status != RUNNING or job.attempts != attempt):
            raise StaleClaim(job_id, attempt)
        curves = {k: list(v) for k, v in (job.curves or {}).items()}
        for name, point in points.items():
            curves.setdefault(name, []).append([float(point[0]), float(point[1])])
        job.curves = curves


def finish(job_id: int, output_model: str | None = None, now: datetime | None = None,
           attempt: int | None = None) -> None:
    """Mark the job done (see `complete` for results, model and status in one step)."""
    now = now or utcnow()
    with session_scope() as s:
        guarded_update(s, job_id, attempt, status=DONE, progress=1.0, message="done",
                       output_model=output_model, finished_at=now, heartbeat_at=now)


def complete(job_id: int, attempt: int | None, metrics: dict[str, Any],
             latencies: list[dict[str, Any]], preds: list[tuple[int, int, int, float]],
             model: dict[str, Any] | None = None, now: datetime | None = None,
             publish: Callable[[], None] | None = None) -> None:
    """Store a job's results, register its model and mark it done, in ONE guarded
    transaction: all of it, or (StaleClaim, a database error) none of it.

    `model`: register_model's keyword arguments ({name, path, source, job_id, alias,
    ...fields}) or None; its `name` becomes the job's output_model. `publish`, when given,
    runs inside the transaction after the claim was verified and before the commit (the
    runner moves its partial folder to the final one there), so only the claim that
    completes the job ever publishes files."""
    now = now or utcnow()
    with session_scope() as s:
        guarded_update(s, job_id, attempt, status=DONE, progress=1.0, message="done",
                       output_model=model["name"] if model else None, finished_at=now,
                       heartbeat_at=now)
        write_results(s, job_id, metrics, latencies, preds)
        if model:
            upsert_model(s, **model)
        if publish is not None:
            publish()


def fail(job_id: int, error: str, attempt: int | None = None, detail: str | None = None,
         now: datetime | None = None) -> None:
    """Mark the job failed with a one-line `error` (what happened, what to do) and, for an
    unexpected failure, the traceback in `detail` (error_detail)."""
    with session_scope() as s:
        guarded_update(s, job_id, attempt, status=FAILED, error=error, error_detail=detail,
                       message=error.splitlines()[0][:200] if error else "failed",
                       finished_at=now or utcnow())


def mark_cancelled(job_id: int, attempt: int | None = None, message: str = "cancelled",
                   now: datetime | None = None) -> None:
    with session_scope() as s:
        guarded_update(s, job_id, attempt, status=CANCELLED, message=message[:500],
                       finished_at=now or utcnow())


def request_cancel(job_id: int, now: datetime | None = None) -> str:
    """Cancel a queued job at once, or ask a running one to stop; return the new status."""
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        if job.status == QUEUED:
            job.status, job.message, job.finished_at = CANCELLED, "cancelled", now or utcnow()
        elif job.status == RUNNING:
            job.cancel_requested, job.message = True, "cancel requested"
        return job.status


def reap_stale(now: datetime, timeout_s: float, max_attempts: int) -> list[int]:
    """Running jobs with no heartbeat for `timeout_s`: re-queue them, or fail them after
    `max_attempts` starts. Returns the ids touched. A pure function of `now` and the rows.
    Each change is a compare-and-set on (running, attempts, heartbeat), so a heartbeat that
    lands meanwhile wins."""
    cutoff = now - timedelta(seconds=timeout_s)
    touched = []
    with session_scope() as s:
        stale = list(s.execute(select(Job.id, Job.attempts, Job.cancel_requested).where(
            Job.status == RUNNING, Job.heartbeat_at < cutoff)))
    for job_id, attempts, cancel in stale:
        if cancel:
            values: dict[str, Any] = dict(status=CANCELLED, message="cancelled", finished_at=now)
        elif attempts < max_attempts:
            values = dict(status=QUEUED, worker_id=None, message=(
                f"re-queued: its worker stopped responding (attempt {attempts} of "
                f"{max_attempts})"))
        else:
            values = dict(status=FAILED, finished_at=now, message="worker died", error=(
                f"the worker running this job died or stopped responding (no heartbeat for "
                f"{timeout_s:.0f} s, {attempts} attempts); resubmit it"))
        with session_scope() as s:
            won = s.execute(update(Job).where(
                Job.id == job_id, Job.status == RUNNING, Job.attempts == attempts,
                Job.heartbeat_at < cutoff).values(**values)).rowcount
        if won:
            touched.append(job_id)
    return touched
