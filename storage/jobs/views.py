"""The JSON view of a job: the contract of `python -m engine show --json` (DESIGN.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.models import LATENCY_FIELDS, Job, Latency, Metrics


def job_as_dict(job: Job) -> dict[str, Any]:
    """The job as plain JSON-ready data: its row, metrics (with `latency` and
    `parent_latency` lists of LATENCY_FIELDS dicts) and ISO-8601 UTC timestamps."""
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
        "work_key": job.work_key,
        "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at), "heartbeat_at": _iso(job.heartbeat_at),
    }


def _latency_dict(row: Latency) -> dict[str, Any]:
    return {name: getattr(row, name) for name in LATENCY_FIELDS}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
