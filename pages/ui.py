"""Helpers shared by the pages (not a page itself): start-up, formatting, tables of runs."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from engine.toolkit.config import LabError
from storage import settings
from storage.models import utcnow

DATASETS = ["rotten-tomatoes", "bbc-news"]


def start_background_work() -> None:
    """Queue the default teacher's finetune on first start and keep a worker alive."""
    from engine.submit import ensure_teacher
    from engine.worker import ensure_worker, reap

    try:
        reap()  # a job whose worker died says so, even before a new worker starts
        if settings.build_teacher() and not st.session_state.get("teacher_checked"):
            job_id = ensure_teacher()
            st.session_state["teacher_checked"] = True
            if job_id is not None:
                st.toast(f"Preparing the default teacher (job {job_id}); see the Jobs page.")
        st.session_state["worker_state"] = ensure_worker()
    except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
        st.error(f"The lab could not start its background work: {exc}")


def elapsed(start: datetime | None, end: datetime | None = None) -> float | None:
    if start is None:
        return None
    return ((end or utcnow()) - start).total_seconds()


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def eta(job) -> float | None:
    """Seconds left, from the elapsed time and the progress so far (linear)."""
    spent = elapsed(job.started_at)
    if job.status != "running" or not spent or job.progress < 0.02:
        return None
    return spent * (1 - job.progress) / job.progress


def show_error(exc: Exception) -> None:
    """A user-facing error: the message, never a traceback."""
    if isinstance(exc, LabError):
        st.error(str(exc), icon=":material/error:")
    else:
        st.error(f"{type(exc).__name__}: {exc}", icon=":material/error:")
