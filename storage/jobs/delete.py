"""Deleting a finished job's rows (its files are removed by engine.submit.delete_run)."""

from __future__ import annotations

from sqlalchemy import delete, or_, select

from storage.db import session_scope
from storage.jobs.errors import JobNotFound
from storage.models import FINISHED, Job, Latency, Metrics, ModelRecord, Prediction


def dependents(job_id: int) -> list[int]:
    """Jobs that took this job's output as their input, or were answered from its result."""
    with session_scope() as s:
        return list(s.scalars(select(Job.id).where(
            or_(Job.parent_id == job_id, Job.reused_from == job_id), Job.id != job_id)
            .order_by(Job.id)))


def delete_job(job_id: int) -> list[str]:
    """Delete a finished job, its metrics, latencies, predictions and model row; return the
    model folders the caller must remove (files are not rows: engine.submit.delete_run
    removes them, with storage.artifacts.job_paths).

    Refuses a queued or running job (cancel it first) and a job whose output or result other
    jobs use (delete those first), so no row is left pointing at nothing."""
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        if job.status not in FINISHED:
            raise ValueError(f"job {job_id} is {job.status}; cancel it before deleting it")
        children = dependents(job_id)
        if children:
            raise ValueError(f"job {job_id}'s model or result is used by job(s) "
                             f"{', '.join(map(str, children))}; delete those first")
        paths = list(s.scalars(select(ModelRecord.path).where(ModelRecord.job_id == job_id)))
        s.execute(delete(ModelRecord).where(or_(
            ModelRecord.job_id == job_id,
            (ModelRecord.name == f"job:{job_id}") & (ModelRecord.source == "reused"))))
        s.execute(delete(Prediction).where(Prediction.job_id == job_id))
        s.execute(delete(Latency).where(Latency.job_id == job_id))
        s.execute(delete(Metrics).where(Metrics.job_id == job_id))
        s.execute(delete(Job).where(Job.id == job_id))
    return paths
