"""Readers of job rows. Every reader a user sees through (`jobs`, `show`, `submit` on the
CLI, the Jobs and Home pages) refreshes first: stale running jobs are reaped and jobs waiting
on identical work are answered, so nothing reads as running when its worker is gone."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from storage import settings
from storage.db import DatabaseUnavailable, session_scope
from storage.jobs.errors import JobNotFound
from storage.models import DONE, QUEUED, RUNNING, Job, utcnow

log = logging.getLogger("storage.jobs")


def refresh(now: datetime | None = None) -> list[int]:
    """Reap stale running jobs (LAB_HEARTBEAT_TIMEOUT_S, LAB_MAX_ATTEMPTS) and answer jobs
    waiting on identical finished work; return the reaped ids. Never raises: a reader shows
    the rows even when this write fails (e.g. a read-only database); a database that cannot
    be reached at all is the reader's own clear error, raised as it is."""
    from storage.jobs.queue import reap_stale
    from storage.jobs.reuse import answer_waiters

    now = now or utcnow()
    try:
        reaped = reap_stale(now, settings.heartbeat_timeout_s(), settings.max_attempts())
        answer_waiters(now)
        return reaped
    except DatabaseUnavailable:
        raise  # the read that follows would fail the same way: one clear message, no trace
    except Exception:
        log.warning("could not reap stale jobs", exc_info=True)
        return []


def load_job(job_id: int) -> Job:
    """The job row with metrics and latencies, as stored (no refresh: for the runner)."""
    with session_scope() as s:
        job = s.get(Job, job_id, options=[selectinload(Job.metrics), selectinload(Job.latencies)])
        if job is None:
            raise JobNotFound(f"no job {job_id}; `python -m engine jobs` lists them")
        return job


def get_job(job_id: int, refresh_first: bool = True) -> Job:
    """The job row with metrics and latencies, after `refresh`."""
    if refresh_first:
        refresh()
    return load_job(job_id)


def list_jobs(limit: int | None = None, statuses: tuple[str, ...] | None = None,
              method: str | None = None, owner: str | None = None,
              refresh_first: bool = True) -> list[Job]:
    """Newest first, with metrics and latencies loaded, after `refresh`; only `owner`'s jobs
    when given."""
    if refresh_first:
        refresh()
    with session_scope() as s:
        q = (select(Job).options(selectinload(Job.metrics), selectinload(Job.latencies))
             .order_by(Job.id.desc()))
        if statuses:
            q = q.where(Job.status.in_(statuses))
        if method:
            q = q.where(Job.method == method)
        if owner is not None:
            q = q.where(Job.owner == owner)
        if limit:
            q = q.limit(limit)
        return list(s.scalars(q))


def count_jobs() -> dict[str, int]:
    """{status: number of jobs}."""
    with session_scope() as s:
        return dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())


def head_score_jobs(limit: int | None = None) -> list[dict[str, Any]]:
    """Done prune jobs that stored head importance scores (`metrics["head_importance"]`),
    newest first, as `job_as_dict` dicts: what the Heads and Attention pages read."""
    from storage.jobs.views import job_as_dict

    done = [job_as_dict(j) for j in list_jobs(limit=limit, statuses=(DONE,), method="prune")]
    return [d for d in done if d["metrics"].get("head_importance")]


def pending_alias_job(alias: str) -> int | None:
    """The id of a queued or running job that will produce the model `alias`, if any."""
    with session_scope() as s:
        return s.scalar(select(Job.id).where(Job.alias == alias,
                                             Job.status.in_((QUEUED, RUNNING)))
                        .order_by(Job.id.desc()).limit(1))
