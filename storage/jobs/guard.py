"""The compare-and-set every write to a running job goes through."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from storage.jobs.errors import StaleClaim
from storage.models import RUNNING, Job


def guarded_update(s: Session, job_id: int, attempt: int | None, **values: Any) -> int:
    """UPDATE the job row WHERE it is still held by this claim; return the rows changed.

    With `attempt` (the job's `attempts` value when it was claimed) the row changes only while
    status is running AND attempts == attempt; otherwise StaleClaim is raised and nothing is
    written (the caller's transaction rolls back). Without `attempt` (tests, maintenance) the
    write goes by id alone."""
    q = update(Job).where(Job.id == job_id)
    if attempt is not None:
        q = q.where(Job.status == RUNNING, Job.attempts == attempt)
    # no values: only check the claim (and hold the row until the caller's commit)
    changed = s.execute(q.values(**(values or {"attempts": Job.attempts}))).rowcount
    if attempt is not None and changed != 1:
        raise StaleClaim(job_id, attempt)
    return changed
