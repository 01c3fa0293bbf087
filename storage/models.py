"""SQLAlchemy 2.0 typed tables: models, jobs, metrics, latencies, per-example predictions, workers.

Changing a table means adding an Alembic revision under storage/migrations/versions, so a user's
database survives the upgrade (a test compares these tables with the migrated schema).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import DateTime, TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive ones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


# Job states; a job only ever moves forward along queued -> running -> done|failed|cancelled
# (a running job whose worker died may go back to queued, see jobs.reap_stale).
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class ModelRecord(Base):
    """A checkpoint the lab knows: embedded, produced by a job, or a local/hub reference."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)  # model id: default, job:7, ...
    path: Mapped[str] = mapped_column(Text)  # Hugging Face directory on disk
    source: Mapped[str] = mapped_column(String(20))  # embedded | job | local | hub
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    alias: Mapped[str | None] = mapped_column(String(50), unique=True)  # "default" for the teacher
    method: Mapped[str | None] = mapped_column(String(30))
    layers: Mapped[int | None]
    heads: Mapped[int | None]  # total attention heads kept, over all layers
    hidden: Mapped[int | None]
    params: Mapped[int | None]
    size_mb: Mapped[float | None] = mapped_column(Float)  # on disk
    num_labels: Mapped[int | None]
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)  # config summary, label names
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """One unit of work; the single source of truth for its state and progress."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    method: Mapped[str] = mapped_column(String(30))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {type, version, data}
    status: Mapped[str] = mapped_column(String(12), default=QUEUED, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(500))  # input model id as the user gave it
    dataset: Mapped[str] = mapped_column(String(500))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    output_model: Mapped[str | None] = mapped_column(String(300))  # model id, e.g. job:7
    alias: Mapped[str | None] = mapped_column(String(50))  # output registered under this alias
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[int | None] = mapped_column(Integer)
    device: Mapped[str | None] = mapped_column(String(40))
    curves: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {name: [[step, value], ...]}
    # the traceback of an unexpected failure, kept apart from the one-line `error`
    error_detail: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(100), default="", index=True)  # who submitted it
    executor: Mapped[str | None] = mapped_column(String(20))  # local | ray: what ran it
    # identical work (method, config, input and dataset content, lab version, device kind)
    work_key: Mapped[str | None] = mapped_column(String(64), index=True)
    reused_from: Mapped[int | None] = mapped_column(Integer)  # answered from this job's result
    origin: Mapped[str | None] = mapped_column(Text)  # imported from a pack: where, on what
    stage: Mapped[str | None] = mapped_column(String(80))  # current stage (training, timing..)
    stage_started_at: Mapped[datetime | None]
    stage_progress: Mapped[float | None] = mapped_column(Float)  # 0..1 within the stage
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    metrics: Mapped[Metrics | None] = relationship(back_populates="job", uselist=False,
                                                   cascade="all, delete-orphan")
    latencies: Mapped[list[Latency]] = relationship(back_populates="job",
                                                    cascade="all, delete-orphan")


class Metrics(Base):
    """What evaluating a job's model measured (one row per job)."""

    __tablename__ = "metrics"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    model: Mapped[str] = mapped_column(String(300))
    dataset: Mapped[str] = mapped_column(String(500))
    accuracy: Mapped[float | None] = mapped_column(Float)  # 0..1 on the test split
    macro_f1: Mapped[float | None] = mapped_column(Float)
    size_mb: Mapped[float | None] = mapped_column(Float)
    params: Mapped[int | None]
    layers: Mapped[int | None]
    heads: Mapped[int | None]
    device: Mapped[str | None] = mapped_column(String(40))
    seq_len: Mapped[int | None]
    accuracy_meaningful: Mapped[bool] = mapped_column(default=True)  # False for random presets
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)  # versions, paired ratios, notes

    job: Mapped[Job] = relationship(back_populates="metrics")


# The fields of one latency row, as measured, stored and shown (storage, queries, analysis).
LATENCY_FIELDS = ("batch_size", "seq_len", "p50_ms", "p95_ms", "iqr_ms", "runs",
                  "throughput_per_s", "device", "runtime", "threads")


class Latency(Base):
    """One latency measurement: a model (the job's own, or its parent timed alongside)."""

    __tablename__ = "latencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(10))  # self | parent
    batch_size: Mapped[int]
    seq_len: Mapped[int]
    p50_ms: Mapped[float] = mapped_column(Float)
    p95_ms: Mapped[float] = mapped_column(Float)
    throughput_per_s: Mapped[float] = mapped_column(Float)  # examples per second
    device: Mapped[str] = mapped_column(String(40))
    runtime: Mapped[str] = mapped_column(String(20), default="eager")  # eager|compiled|onnxruntime
    threads: Mapped[int | None]
    iqr_ms: Mapped[float | None] = mapped_column(Float)  # inter-quartile range of the samples
    runs: Mapped[int | None]  # timed runs behind p50/p95/iqr

    job: Mapped[Job] = relationship(back_populates="latencies")


class Prediction(Base):
    """One test example's prediction, kept so that runs can be compared example by example."""

    __tablename__ = "predictions"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    idx: Mapped[int] = mapped_column(primary_key=True)  # index into the dataset's test split
    label: Mapped[int]
    pred: Mapped[int]
    confidence: Mapped[float] = mapped_column(Float)  # softmax probability of `pred`


class Worker(Base):
    """A worker process, alive while its heartbeat is recent."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    pid: Mapped[int]
    hostname: Mapped[str] = mapped_column(String(200))
    device: Mapped[str] = mapped_column(String(100), default="cpu")  # "cuda:NAME (sm90)"
    name: Mapped[str | None] = mapped_column(String(100))  # e.g. "host:pid" or "gpu0"
    executor: Mapped[str] = mapped_column(String(20), default="local")  # local | ray
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]
