"""The model catalogue: every checkpoint the lab knows (embedded, produced by a job, local,
hub), by model id (`name`, e.g. job:7) and optional alias (`default` for the teacher)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from storage.db import session_scope
from storage.models import ModelRecord


def upsert_model(s: Session, name: str, path: str, source: str, job_id: int | None = None,
                 alias: str | None = None, **fields: Any) -> None:
    """Insert or update the model row `name` inside session `s` (and move `alias` onto it)."""
    if alias:
        s.execute(update(ModelRecord).where(ModelRecord.alias == alias,
                                            ModelRecord.name != name).values(alias=None))
    row = s.scalar(select(ModelRecord).where(ModelRecord.name == name))
    if row is None:
        row = ModelRecord(name=name, path=path, source=source)
        s.add(row)
    row.path, row.source, row.job_id, row.alias = path, source, job_id, alias or row.alias
    for key, value in fields.items():
        setattr(row, key, value)
    s.flush()


def release_alias(alias: str) -> None:
    """Take `alias` off whichever model has it; the model stays, under its name (job:N)."""
    with session_scope() as s:
        s.execute(update(ModelRecord).where(ModelRecord.alias == alias).values(alias=None))


def register_model(name: str, path: str, source: str, job_id: int | None = None,
                   alias: str | None = None, **fields: Any) -> None:
    """Insert or update the model row `name` (and move `alias` onto it), in its own
    transaction. A job's model is registered by `complete`, guarded by its claim."""
    with session_scope() as s:
        upsert_model(s, name, path, source, job_id=job_id, alias=alias, **fields)


def find_model(name_or_alias: str) -> ModelRecord | None:
    """The model row with that id or alias, or None."""
    with session_scope() as s:
        return s.scalar(select(ModelRecord).where(or_(ModelRecord.name == name_or_alias,
                                                      ModelRecord.alias == name_or_alias)))


def list_models() -> list[ModelRecord]:
    """Every known model, oldest first."""
    with session_scope() as s:
        return list(s.scalars(select(ModelRecord).order_by(ModelRecord.id)))
