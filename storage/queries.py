"""Bulk reads for the Results page: every finished run in a fixed number of queries.

`jobs.list_jobs` + `jobs.job_as_dict` builds ORM objects per job, which is fine for a list of
twenty but too slow for a thousand runs. These reads select plain columns instead and return
the same dict shape as `job_as_dict` (the `python -m engine show --json` contract), so analysis
code takes either. Read-only: nothing here writes a row.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from storage.db import session_scope
from storage.models import (
    DONE,
    LATENCY_FIELDS,
    Job,
    Latency,
    Metrics,
    ModelRecord,
    Prediction,
)

_JOB_COLUMNS = (Job.id, Job.method, Job.status, Job.config, Job.model, Job.dataset,
                Job.parent_id, Job.output_model, Job.alias, Job.finished_at, Job.owner,
                Job.reused_from, Job.origin, Job.executor)
# Metrics.model and .dataset would clash with the job's own columns of those names: labelled.
_METRIC_COLUMNS = tuple(c.label(f"metrics_{c.name}") if c.name in ("model", "dataset") else c
                        for c in Metrics.__table__.columns if c.name != "job_id")
_LATENCY_COLUMNS = (Latency.job_id, Latency.role,
                    *(getattr(Latency, name) for name in LATENCY_FIELDS))


def runs_version(statuses: tuple[str, ...] = (DONE,)) -> tuple[int, int | None, str | None]:
    """A cheap fingerprint of the runs (count, newest id, newest finish time): a cache key
    that changes whenever a run is added or finishes."""
    with session_scope() as s:
        count, newest, finished = s.execute(
            select(func.count(Job.id), func.max(Job.id), func.max(Job.finished_at))
            .where(Job.status.in_(statuses))).one()
    return int(count), newest, str(finished) if finished is not None else None


def runs_table(statuses: tuple[str, ...] = (DONE,)) -> list[dict[str, Any]]:
    """Every job in `statuses` that has metrics, oldest first, as `job_as_dict`-shaped dicts:
    `{id, method, status, config, model, dataset, parent_id, output_model, alias, finished_at,
    metrics}` where `metrics` holds the metric columns, the extras, `latency` and
    `parent_latency`. Two queries, whatever the number of runs."""
    with session_scope() as s:
        rows = s.execute(select(*_JOB_COLUMNS, *_METRIC_COLUMNS).join(Metrics)
                         .where(Job.status.in_(statuses)).order_by(Job.id)).all()
        lat_rows = s.execute(select(*_LATENCY_COLUMNS).join(Job, Job.id == Latency.job_id)
                             .where(Job.status.in_(statuses))
                             .order_by(Latency.job_id, Latency.batch_size)).all()
    latencies: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for row in lat_rows:
        entry = row._asdict()
        job_id, role = entry.pop("job_id"), entry.pop("role")
        latencies[(job_id, role)].append(entry)
    runs = []
    for row in rows:
        data = row._asdict()
        run = {c.key: data.pop(c.key) for c in _JOB_COLUMNS}
        extra = data.pop("extra") or {}
        metrics = {k.removeprefix("metrics_"): v for k, v in data.items()} | extra
        for key, role in (("latency", "self"), ("parent_latency", "parent")):
            if (run["id"], role) in latencies:
                metrics[key] = latencies[(run["id"], role)]
        finished = run["finished_at"]
        run["finished_at"] = finished.isoformat() if finished is not None else None
        run["metrics"] = metrics
        runs.append(run)
    return runs


def prediction_arrays(job_ids: list[int]) -> dict[int, dict[str, list]]:
    """Per-example predictions of a few jobs in one query:
    `{job_id: {"idx": [...], "label": [...], "pred": [...], "confidence": [...]}}`, by idx."""
    out: dict[int, dict[str, list]] = {
        j: {"idx": [], "label": [], "pred": [], "confidence": []} for j in job_ids}
    if not job_ids:
        return out
    with session_scope() as s:
        rows = s.execute(select(Prediction.job_id, Prediction.idx, Prediction.label,
                                Prediction.pred, Prediction.confidence)
                         .where(Prediction.job_id.in_(job_ids))
                         .order_by(Prediction.job_id, Prediction.idx)).all()
    for job_id, idx, label, pred, confidence in rows:
        arrays = out[job_id]
        arrays["idx"].append(idx)
        arrays["label"].append(label)
        arrays["pred"].append(pred)
        arrays["confidence"].append(confidence)
    return out


def model_paths(names: list[str]) -> dict[str, str]:
    """Artifact directories of the given model ids (`job:7`, ...) that the lab registered."""
    if not names:
        return {}
    with session_scope() as s:
        return dict(s.execute(select(ModelRecord.name, ModelRecord.path)
                              .where(ModelRecord.name.in_(names))).all())
