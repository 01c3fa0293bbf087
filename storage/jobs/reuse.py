"""Reusing identical work: a job whose `work_key` matches a done job is answered from it;
one that matches a queued or running job waits on it (`reused_from` set while queued)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.db import session_scope
from storage.jobs.catalogue import upsert_model
from storage.jobs.results import copy_results
from storage.models import DONE, QUEUED, RUNNING, Job, ModelRecord


def find_identical(work_key: str) -> tuple[int, str] | None:
    """(id, status) of the newest done job that ran with this work key, else of the oldest queued or
    running one, else None. A job that is itself waiting on another does not count."""
    with session_scope() as s:
        return identical_in(s, work_key)


def identical_in(s: Session, work_key: str) -> tuple[int, str] | None:
    """find_identical inside session `s` (enqueue looks and inserts in one transaction)."""
    # the run that did the work, not a job answered from it
    done = s.scalar(select(Job.id).where(Job.work_key == work_key, Job.status == DONE,
                                         Job.reused_from.is_(None))
                    .order_by(Job.id.desc()).limit(1))
    if done is not None:
        return done, DONE
    row = s.execute(select(Job.id, Job.status).where(
        Job.work_key == work_key, Job.status.in_((QUEUED, RUNNING)),
        Job.reused_from.is_(None)).order_by(Job.id).limit(1)).first()
    return (row[0], row[1]) if row else None


def answer_from(s, job_id: int, source_id: int, now: datetime) -> bool:
    """Mark queued job `job_id` done from done job `source_id` (results copied, same output
    model, `reused_from` = source) inside session `s`. False when the job was not queued."""
    src = s.get(Job, source_id)
    won = s.execute(update(Job).where(Job.id == job_id, Job.status == QUEUED).values(
        status=DONE, progress=1.0, reused_from=source_id, output_model=src.output_model,
        curves=dict(src.curves or {}), device=src.device, started_at=now, finished_at=now,
        message=(f"result reused from job {source_id} (run at "
                 f"{src.finished_at:%Y-%m-%d %H:%M} UTC)" if src.finished_at
                 else f"result reused from job {source_id}")))
    if won.rowcount != 1:
        return False
    copy_results(s, source_id, job_id)
    row = s.scalar(select(ModelRecord).where(ModelRecord.name == src.output_model)) \
        if src.output_model else None
    if row is not None:
        # `job:ID` of the reused job names the same model (a later job may take it as input);
        # job_id stays None so deleting this job never removes the source's files
        values = {c.name: getattr(row, c.name) for c in ModelRecord.__table__.columns
                  if c.name not in ("id", "name", "job_id", "alias", "source", "created_at")}
        upsert_model(s, f"job:{job_id}", source="reused", job_id=None, **values)
        alias = s.scalar(select(Job.alias).where(Job.id == job_id))
        if alias:  # e.g. the teacher's build answered from an identical finetune
            upsert_model(s, row.name, row.path, row.source, job_id=row.job_id, alias=alias)
    return True


def answer_waiters(now: datetime) -> list[int]:
    """Queued jobs waiting on an identical job: answer them from it once it is done; let them
    run on their own when it failed or was cancelled. Returns the ids answered."""
    answered = []
    with session_scope() as s:
        src = Job.__table__.alias("src")
        rows = s.execute(select(Job.id, src.c.id, src.c.status)
                         .join(src, src.c.id == Job.reused_from)
                         .where(Job.status == QUEUED, src.c.status.not_in((QUEUED, RUNNING))))
        rows = rows.all()
    for job_id, source_id, status in rows:
        with session_scope() as s:
            if status == DONE:
                if answer_from(s, job_id, source_id, now):
                    answered.append(job_id)
            else:
                s.execute(update(Job).where(Job.id == job_id, Job.status == QUEUED).values(
                    reused_from=None, message=f"queued (identical job {source_id} {status})"))
    # a waiter whose source row was deleted runs on its own
    with session_scope() as s:
        src = Job.__table__.alias("src")
        orphans = s.scalars(select(Job.id).outerjoin(src, src.c.id == Job.reused_from).where(
            Job.status == QUEUED, Job.reused_from.is_not(None), src.c.id.is_(None))).all()
        if orphans:
            s.execute(update(Job).where(Job.id.in_(orphans)).values(reused_from=None))
    return answered
