"""Whole runs as plain rows, out of one lab and into another: what a demo pack carries.

`runs_rows(job_ids)` reads jobs with their metrics, latencies, predictions and model rows (and
every ancestor, so the lineage is whole); `insert_runs(runs, origin)` writes them into this
lab under new ids, in ONE transaction (all or nothing), remapping parents and `job:N` model ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.db import session_scope
from storage.models import DONE, Job, Latency, Metrics, ModelRecord, Prediction, UTCDateTime

_SKIP = {"id", "job_id"}


def _row(obj: Any) -> dict[str, Any]:
    out = {}
    for col in obj.__table__.columns:
        if col.name in _SKIP:
            continue
        value = getattr(obj, col.name)
        out[col.name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def runs_rows(job_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Done jobs `job_ids` (None: every done job) and their ancestors, oldest first, each as
    {id, job, metrics, latencies, predictions [[idx, label, pred, confidence]], model}."""
    with session_scope() as s:
        if job_ids is None:
            wanted = set(s.scalars(select(Job.id).where(Job.status == DONE)))
        else:
            wanted = set(job_ids)
        todo, seen = list(wanted), set()
        while todo:  # add ancestors: a chain travels whole
            jid = todo.pop()
            if jid in seen:
                continue
            seen.add(jid)
            parent = s.scalar(select(Job.parent_id).where(Job.id == jid))
            if parent is not None:
                todo.append(parent)
        out = []
        for jid in sorted(seen):
            job = s.get(Job, jid)
            if job is None:
                raise LookupError(f"no job {jid}")
            if job.status != DONE:
                raise ValueError(f"job {jid} is {job.status}; a pack carries finished runs only")
            metrics = s.get(Metrics, jid)
            model = s.scalar(select(ModelRecord).where(ModelRecord.job_id == jid))
            out.append({
                "id": jid, "job": _row(job) | {"parent_id": job.parent_id},
                "metrics": _row(metrics) if metrics else None,
                "latencies": [_row(r) for r in s.scalars(
                    select(Latency).where(Latency.job_id == jid).order_by(Latency.id))],
                "predictions": [[p.idx, p.label, p.pred, p.confidence] for p in s.scalars(
                    select(Prediction).where(Prediction.job_id == jid)
                    .order_by(Prediction.idx))],
                "model": _row(model) if model else None})
        return out


def _parse(table, values: dict[str, Any]) -> dict[str, Any]:
    """Column values from JSON: ISO strings back to datetimes; unknown keys dropped (a pack
    from an older lab lacks new columns: they take their defaults)."""
    cols = {c.name: c for c in table.columns}
    out = {}
    for key, value in values.items():
        if key not in cols or key in _SKIP:
            continue
        if isinstance(value, str) and isinstance(cols[key].type, UTCDateTime):
            value = datetime.fromisoformat(value)
        out[key] = value
    return out


def _renumber(value: Any, ids: dict[int, int]) -> Any:
    """`job:OLD` -> `job:NEW` in a model id."""
    if isinstance(value, str) and value.startswith("job:") and value[4:].isdigit():
        old = int(value[4:])
        return f"job:{ids[old]}" if old in ids else value
    return value


def insert_runs(runs: list[dict[str, Any]], origin: str,
                paths: dict[int, str] | None = None, keep_alias: bool = True) -> dict[int, int]:
    """Write `runs` (from `runs_rows`, oldest first) as new done jobs; return {old id: new
    id}. Each row's `origin` says where it was measured. `paths` gives the model folder of
    an old job id on this machine (its files travelled); a model row without one is left
    out (its numbers travel, its files did not). An alias (the teacher's `default`) moves
    with its model only when no model here has it already and `keep_alias`."""
    ids: dict[int, int] = {}
    paths = paths or {}
    with session_scope() as s:
        taken = set(s.scalars(select(ModelRecord.alias).where(ModelRecord.alias.is_not(None))))
        for run in runs:
            job_values = _parse(Job.__table__, run["job"])
            job_values.update(
                parent_id=ids.get(run["job"].get("parent_id")), worker_id=None,
                origin=origin, model=_renumber(job_values.get("model"), ids),
                output_model=None, work_key=None, reused_from=None, executor=None)
            if job_values.get("alias") in taken or not keep_alias:
                job_values["alias"] = None
            job = Job(**job_values)
            s.add(job)
            s.flush()
            ids[run["id"]] = job.id
            if run["metrics"] is not None:
                values = _parse(Metrics.__table__, run["metrics"])
                values["model"] = _renumber(values.get("model"), ids)
                s.add(Metrics(job_id=job.id, **values))
            s.add_all(Latency(job_id=job.id, **_parse(Latency.__table__, r))
                      for r in run["latencies"])
            if run["predictions"]:
                s.execute(Prediction.__table__.insert(), [
                    {"job_id": job.id, "idx": i, "label": y, "pred": p, "confidence": c}
                    for i, y, p, c in run["predictions"]])
            model = run["model"]
            if model is not None and run["id"] in paths:
                values = _parse(ModelRecord.__table__, model)
                alias = values.get("alias")
                values.update(name=f"job:{job.id}", path=paths[run["id"]], job_id=job.id,
                              alias=alias if alias and alias not in taken and keep_alias
                              else None)
                if values["alias"]:
                    taken.add(values["alias"])
                s.add(ModelRecord(**values))
                job.output_model = values["name"]
    return ids


def move_model_path(name: str, path: str) -> None:
    """Point model row `name` at its folder's final place."""
    from sqlalchemy import update

    with session_scope() as s:
        s.execute(update(ModelRecord).where(ModelRecord.name == name).values(path=path))
