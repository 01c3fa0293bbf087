"""The job queue's verbs. Each is one short transaction; all row writes go through this module.

Time-dependent verbs take `now` as an argument so tests can drive the clock without sleeping.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from storage.db import session_scope
from storage.models import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    LATENCY_FIELDS,
    QUEUED,
    RUNNING,
    Job,
    Latency,
    Metrics,
    ModelRecord,
    Prediction,
    Worker,
    utcnow,
)


class JobNotFound(LookupError):
    pass


# --------------------------------------------------------------------------- submit / read


def enqueue(method: str, config: dict[str, Any], model: str, dataset: str,
            parent_id: int | None = None, alias: str | None = None) -> int:
    """Add a queued job and return its id. `config` is the serialised {type, version, data}."""
    with session_scope() as s:
        job = Job(method=method, config=config, model=model, dataset=dataset,
                  parent_id=parent_id, alias=alias, status=QUEUED, message="queued")
        s.add(job)
        s.flush()
        return job.id


def get_job(job_id: int) -> Job:
    with session_scope() as s:
        job = s.get(Job, job_id, options=[selectinload(Job.metrics), selectinload(Job.latencies)])
        if job is None:
            raise JobNotFound(f"no job {job_id}; `python -m engine jobs` lists them")
        return job


def list_jobs(limit: int | None = None, statuses: tuple[str, ...] | None = None,
              method: str | None = None) -> list[Job]:
    """Newest first, with metrics and latencies loaded."""
    with session_scope() as s:
        q = (select(Job).options(selectinload(Job.metrics), selectinload(Job.latencies))
             .order_by(Job.id.desc()))
        if statuses:
            q = q.where(Job.status.in_(statuses))
        if method:
            q = q.where(Job.method == method)
        if limit:
            q = q.limit(limit)
        return list(s.scalars(q))


def count_jobs() -> dict[str, int]:
    with session_scope() as s:
        return dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())


def head_score_jobs(limit: int | None = None) -> list[dict[str, Any]]:
    """Done prune jobs that stored head importance scores (`metrics["head_importance"]`),
    newest first, as `job_as_dict` dicts: what the Heads and Attention pages read."""
    done = [job_as_dict(j) for j in list_jobs(limit=limit, statuses=(DONE,), method="prune")]
    return [d for d in done if d["metrics"].get("head_importance")]


def pending_alias_job(alias: str) -> int | None:
    """The id of a queued or running job that will produce the model `alias`, if any."""
    with session_scope() as s:
        return s.scalar(select(Job.id).where(Job.alias == alias,
                                             Job.status.in_((QUEUED, RUNNING)))
                        .order_by(Job.id.desc()).limit(1))


def predictions(job_id: int) -> list[Prediction]:
    with session_scope() as s:
        return list(s.scalars(select(Prediction).where(Prediction.job_id == job_id)
                              .order_by(Prediction.idx)))


# --------------------------------------------------------------------------- worker side


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


def claim(worker_id: int | None, now: datetime | None = None,
          job_id: int | None = None) -> Job | None:
    """Atomically take the oldest runnable queued job (or `job_id`) and mark it running.

    Runnable: queued, and its input job (if any) is done. The UPDATE ... WHERE status='queued'
    is a compare-and-set: of two claimers racing for the same row, exactly one changes it.
    """
    now = now or utcnow()
    with session_scope() as s:
        _fail_orphans(s, now)
        parent = Job.__table__.alias("parent")
        q = (select(Job.id).outerjoin(parent, parent.c.id == Job.parent_id)
             .where(Job.status == QUEUED, or_(Job.parent_id.is_(None), parent.c.status == DONE))
             .order_by(Job.id).limit(20))
        if job_id is not None:
            q = q.where(Job.id == job_id)
        candidates = list(s.scalars(q))
    for cid in candidates:
        with session_scope() as s:
            won = s.execute(
                update(Job).where(Job.id == cid, Job.status == QUEUED).values(
                    status=RUNNING, worker_id=worker_id, started_at=now, heartbeat_at=now,
                    attempts=Job.attempts + 1, progress=0.0, message="starting")
            ).rowcount
        if won == 1:
            return get_job(cid)
    return None


def report_progress(job_id: int, progress: float | None = None, message: str | None = None,
                    now: datetime | None = None, device: str | None = None,
                    stage: str | None = None, stage_progress: float | None = None) -> bool:
    """Record progress (0..1) and a heartbeat; return True when a cancel was requested.

    `stage` names the current stage (training, evaluating, timing...); a new name restarts
    the stage clock (`stage_started_at`), so the Jobs page can give the ETA of the stage
    from `stage_progress` (0..1 within it) instead of mixing stages of different speeds."""
    now = now or utcnow()
    values: dict[str, Any] = {"heartbeat_at": now}
    if stage is not None:
        with session_scope() as s:
            current = s.scalar(select(Job.stage).where(Job.id == job_id))
        if current != stage:
            values.update(stage=stage[:80], stage_started_at=now)
    if stage_progress is not None:
        values["stage_progress"] = max(0.0, min(1.0, float(stage_progress)))
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    if message is not None:
        values["message"] = message[:500]
    if device is not None:
        values["device"] = device
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.status == RUNNING).values(**values))
        return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def add_curve_points(job_id: int, points: dict[str, tuple[float, float]]) -> None:
    """Append (step, value) points to named curves (training loss, validation accuracy...)."""
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None:
            return
        curves = {k: list(v) for k, v in (job.curves or {}).items()}
        for name, point in points.items():
            curves.setdefault(name, []).append([float(point[0]), float(point[1])])
        job.curves = curves


def finish(job_id: int, output_model: str | None = None, now: datetime | None = None) -> None:
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(
            status=DONE, progress=1.0, message="done", output_model=output_model,
            finished_at=now or utcnow(), heartbeat_at=now or utcnow()))


def fail(job_id: int, error: str, now: datetime | None = None) -> None:
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(
            status=FAILED, error=error, message=error.splitlines()[0][:200] if error else "failed",
            finished_at=now or utcnow()))


def mark_cancelled(job_id: int, now: datetime | None = None,
                   message: str = "cancelled") -> None:
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(
            status=CANCELLED, message=message[:500], finished_at=now or utcnow()))


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
    `max_attempts` starts. Returns the ids touched. A pure function of `now` and the rows."""
    cutoff = now - timedelta(seconds=timeout_s)
    touched = []
    with session_scope() as s:
        stale = s.scalars(select(Job).where(Job.status == RUNNING, Job.heartbeat_at < cutoff))
        for job in stale:
            touched.append(job.id)
            if job.cancel_requested:
                job.status, job.message, job.finished_at = CANCELLED, "cancelled", now
            elif job.attempts < max_attempts:
                job.status, job.worker_id = QUEUED, None
                job.message = (f"re-queued: its worker stopped responding (attempt "
                               f"{job.attempts} of {max_attempts})")
            else:
                job.status, job.finished_at = FAILED, now
                job.error = (f"the worker running this job died or stopped responding (no "
                             f"heartbeat for {timeout_s:.0f} s, {job.attempts} attempts); "
                             f"resubmit it")
                job.message = "worker died"
    return touched


# --------------------------------------------------------------------------- results


def save_results(job_id: int, metrics: dict[str, Any], latencies: list[dict[str, Any]],
                 preds: list[tuple[int, int, int, float]]) -> None:
    """Store a job's evaluation in one transaction: metrics, latencies, predictions.

    `preds` holds (idx, label, pred, confidence) tuples.
    """
    cols = {c.name for c in Metrics.__table__.columns} - {"job_id", "extra"}
    with session_scope() as s:
        s.execute(delete(Metrics).where(Metrics.job_id == job_id))
        s.execute(delete(Latency).where(Latency.job_id == job_id))
        s.execute(delete(Prediction).where(Prediction.job_id == job_id))
        s.add(Metrics(job_id=job_id, **{k: v for k, v in metrics.items() if k in cols},
                      extra={k: v for k, v in metrics.items() if k not in cols}))
        s.add_all(Latency(job_id=job_id, **row) for row in latencies)
        if preds:
            s.execute(Prediction.__table__.insert(), [
                {"job_id": job_id, "idx": i, "label": y, "pred": p, "confidence": c}
                for i, y, p, c in preds])


def register_model(name: str, path: str, source: str, job_id: int | None = None,
                   alias: str | None = None, **fields: Any) -> None:
    """Insert or update the model row `name` (and move `alias` onto it)."""
    with session_scope() as s:
        if alias:
            s.execute(update(ModelRecord).where(ModelRecord.alias == alias).values(alias=None))
        row = s.scalar(select(ModelRecord).where(ModelRecord.name == name))
        if row is None:
            row = ModelRecord(name=name, path=path, source=source)
            s.add(row)
        row.path, row.source, row.job_id, row.alias = path, source, job_id, alias or row.alias
        for key, value in fields.items():
            setattr(row, key, value)


def find_model(name_or_alias: str) -> ModelRecord | None:
    with session_scope() as s:
        return s.scalar(select(ModelRecord).where(or_(ModelRecord.name == name_or_alias,
                                                      ModelRecord.alias == name_or_alias)))


def list_models() -> list[ModelRecord]:
    with session_scope() as s:
        return list(s.scalars(select(ModelRecord).order_by(ModelRecord.id)))


def latest_metrics_for(model: str, dataset: str) -> Job | None:
    """The newest done job that evaluated model id `model` on `dataset` (for parent accuracy)."""
    with session_scope() as s:
        return s.scalar(
            select(Job).join(Metrics).options(selectinload(Job.metrics))
            .where(Job.status == DONE, Metrics.model == model, Metrics.dataset == dataset)
            .order_by(Job.id.desc()).limit(1))


# --------------------------------------------------------------------------- workers


def register_worker(device: str = "cpu", now: datetime | None = None) -> int:
    with session_scope() as s:
        w = Worker(pid=os.getpid(), hostname=socket.gethostname(), device=device,
                   started_at=now or utcnow(), heartbeat_at=now or utcnow())
        s.add(w)
        s.flush()
        return w.id


def worker_heartbeat(worker_id: int, now: datetime | None = None) -> None:
    with session_scope() as s:
        s.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=now or utcnow()))


def worker_stopped(worker_id: int, now: datetime | None = None) -> None:
    with session_scope() as s:
        s.execute(update(Worker).where(Worker.id == worker_id).values(stopped_at=now or utcnow()))


def alive_workers(now: datetime, timeout_s: float) -> list[Worker]:
    """Workers that have not stopped and whose heartbeat is younger than `timeout_s`."""
    cutoff = now - timedelta(seconds=timeout_s)
    with session_scope() as s:
        return list(s.scalars(select(Worker).where(Worker.stopped_at.is_(None),
                                                   Worker.heartbeat_at >= cutoff)))



# --------------------------------------------------------------------------- views


def job_as_dict(job: Job) -> dict[str, Any]:
    """The JSON contract of `python -m engine show --json` (see DESIGN.md)."""
    metrics: dict[str, Any] = {}
    if job.metrics is not None:
        m = job.metrics
        metrics = {c.name: getattr(m, c.name) for c in Metrics.__table__.columns
                   if c.name not in ("job_id", "extra")}
        metrics.update(m.extra or {})
        own = [_latency_dict(r) for r in job.latencies if r.role == "self"]
        if own:
            metrics["latency"] = own
        parent = [_latency_dict(r) for r in job.latencies if r.role == "parent"]
        if parent:
            metrics["parent_latency"] = parent
    return {
        "id": job.id, "method": job.method, "status": job.status, "config": job.config,
        "model": job.model, "dataset": job.dataset, "parent_id": job.parent_id,
        "output_model": job.output_model, "error": job.error, "metrics": metrics,
        "progress": job.progress, "message": job.message, "device": job.device,
        "alias": job.alias, "attempts": job.attempts, "owner": job.owner,
        "executor": job.executor, "reused_from": job.reused_from, "origin": job.origin,
        "error_detail": job.error_detail, "worker_id": job.worker_id, "stage": job.stage,
        "stage_progress": job.stage_progress, "stage_started_at": _iso(job.stage_started_at),
        "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at), "heartbeat_at": _iso(job.heartbeat_at),
    }


def _latency_dict(row: Latency) -> dict[str, Any]:
    return {name: getattr(row, name) for name in LATENCY_FIELDS}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --------------------------------------------------------------------------- delete


def dependents(job_id: int) -> list[int]:
    """Jobs that took this job's output as their input."""
    with session_scope() as s:
        return list(s.scalars(select(Job.id).where(Job.parent_id == job_id).order_by(Job.id)))


def delete_job(job_id: int) -> list[str]:
    """Delete a finished job, its metrics, latencies, predictions and model row; return the
    artifact folders the caller must remove (files are not rows: engine.submit.delete_run
    removes them).

    Refuses a queued or running job (cancel it first) and a job whose output other jobs use
    (delete those first), so no row is left pointing at nothing."""
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        if job.status not in FINISHED:
            raise ValueError(f"job {job_id} is {job.status}; cancel it before deleting it")
        children = dependents(job_id)
        if children:
            raise ValueError(f"job {job_id}'s model is the input of job(s) "
                             f"{', '.join(map(str, children))}; delete those first")
        paths = [p for p in s.scalars(select(ModelRecord.path).where(ModelRecord.job_id == job_id))]
        s.execute(delete(ModelRecord).where(ModelRecord.job_id == job_id))
        s.execute(delete(Prediction).where(Prediction.job_id == job_id))
        s.execute(delete(Latency).where(Latency.job_id == job_id))
        s.execute(delete(Metrics).where(Metrics.job_id == job_id))
        s.execute(delete(Job).where(Job.id == job_id))
    return paths
