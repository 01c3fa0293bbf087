"""Where a job's files go: the one function every part of the lab asks (runner, delete,
distill's keep-on-cancel), so the artifact layout is written down once.

Layout under `$LAB_HOME/artifacts/`:
    job-N/                    the job's published model (final), written by the claim that
                              completed the job
    job-N.attempt-K.partial/  attempt K's model while it is being made; renamed to job-N/
                              when that attempt completes, removed when it fails, is
                              cancelled or loses its claim (so a stale worker never touches
                              another attempt's files)
    job-N-best-on-cancel/     a cancelled distillation's best student so far
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from storage import settings

Kind = Literal["final", "partial", "best-on-cancel"]


def job_dir(job_id: int, kind: Kind = "final", attempt: int | None = None) -> Path:
    """The folder for one kind of a job's files (not created). `attempt` (the job's
    `attempts` value of the claim writing it) is required for "partial"."""
    root = settings.artifacts_dir()
    if kind == "final":
        return root / f"job-{job_id}"
    if kind == "partial":
        if attempt is None:
            raise ValueError("a partial folder belongs to one attempt: pass attempt=")
        return root / f"job-{job_id}.attempt-{attempt}.partial"
    if kind == "best-on-cancel":
        return root / f"job-{job_id}-best-on-cancel"
    raise ValueError(f"unknown artifact kind {kind!r}")


def job_paths(job_id: int) -> list[Path]:
    """Every folder of this job that exists now (final, any attempt's partial, kept-on-cancel):
    what deleting the job removes."""
    root = settings.artifacts_dir()
    found = [job_dir(job_id), job_dir(job_id, "best-on-cancel"),
             *root.glob(f"job-{job_id}.attempt-*.partial")]
    return [p for p in found if p.exists()]
