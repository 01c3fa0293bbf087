"""A job's results: its metrics row, latency rows and per-example predictions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from storage.db import session_scope
from storage.jobs.guard import guarded_update
from storage.models import DONE, Job, Latency, Metrics, Prediction


def write_results(s: Session, job_id: int, metrics: dict[str, Any],
                  latencies: list[dict[str, Any]],
                  preds: list[tuple[int, int, int, float]]) -> None:
    """Replace the job's results inside session `s` (the caller's transaction).

    `metrics`: named columns of Metrics, the rest goes to `extra`; `latencies`: dicts with
    `role` (self|parent) and LATENCY_FIELDS; `preds`: (idx, label, pred, confidence)."""
    cols = {c.name for c in Metrics.__table__.columns} - {"job_id", "extra"}
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


def save_results(job_id: int, metrics: dict[str, Any], latencies: list[dict[str, Any]],
                 preds: list[tuple[int, int, int, float]], attempt: int | None = None) -> None:
    """Store a job's evaluation in one transaction: metrics, latencies, predictions.
    With `attempt`, refused (StaleClaim, nothing written) unless that claim holds the job."""
    with session_scope() as s:
        if attempt is not None:
            guarded_update(s, job_id, attempt)  # no values: only checks the claim
        write_results(s, job_id, metrics, latencies, preds)


def copy_results(s: Session, source_id: int, target_id: int) -> None:
    """Copy a job's metrics, latencies and predictions onto another job (reuse)."""
    m = s.get(Metrics, source_id)
    if m is not None:
        values = {c.name: getattr(m, c.name) for c in Metrics.__table__.columns}
        s.add(Metrics(**{**values, "job_id": target_id, "extra": dict(m.extra or {})}))
    for row in s.scalars(select(Latency).where(Latency.job_id == source_id)):
        values = {c.name: getattr(row, c.name) for c in Latency.__table__.columns
                  if c.name not in ("id", "job_id")}
        s.add(Latency(job_id=target_id, **values))
    preds = s.execute(select(Prediction.idx, Prediction.label, Prediction.pred,
                             Prediction.confidence).where(Prediction.job_id == source_id)).all()
    if preds:
        s.execute(Prediction.__table__.insert(), [
            {"job_id": target_id, "idx": i, "label": y, "pred": p, "confidence": c}
            for i, y, p, c in preds])


def predictions(job_id: int) -> list[Prediction]:
    """The job's per-example predictions, by test-split index."""
    with session_scope() as s:
        return list(s.scalars(select(Prediction).where(Prediction.job_id == job_id)
                              .order_by(Prediction.idx)))


def latest_metrics_for(model: str, dataset: str) -> Job | None:
    """The newest done job that evaluated model id `model` on `dataset` (for parent accuracy)."""
    with session_scope() as s:
        return s.scalar(
            select(Job).join(Metrics).options(selectinload(Job.metrics))
            .where(Job.status == DONE, Metrics.model == model, Metrics.dataset == dataset)
            .order_by(Job.id.desc()).limit(1))
