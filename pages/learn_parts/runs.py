"""What the lessons read: every finished run (cached until a run is added) and the jobs still
queued or running; and whose runs to show when packs were imported."""

from typing import Any

import streamlit as st

from engine.reports import lessons as L
from pages.results_parts.data import load_runs
from pages.ui import plain
from storage import jobs as store
from storage import queries, settings
from storage.models import QUEUED, RUNNING


def everything() -> list[dict[str, Any]]:
    """Done runs with their metrics, then queued and running jobs (empty metrics)."""
    done = load_runs(settings.database_url(), queries.runs_version())
    waiting = [store.job_as_dict(j) for j in store.list_jobs(statuses=(QUEUED, RUNNING))]
    return done + waiting


def source(runs: list[dict[str, Any]]) -> str | None:
    """None for this machine's runs, or the origin of an imported pack the user picked (a
    choice only when some pack answers a lesson: figures of two origins are never mixed)."""
    options = L.sources(runs)
    if len(options) == 1:
        return None
    here = L.answers(L.by_origin(runs)[None])  # a fresh lab with a pack: the pack first
    return st.radio("Whose runs", options, key="learn_source", horizontal=True,
                    index=0 if here else 1,
                    format_func=lambda o: "measured on this machine" if o is None else plain(o),
                    help="Runs imported from a pack were measured on another machine: each "
                         "lesson reads one machine's runs at a time.")
