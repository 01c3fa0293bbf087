"""The runs the Results page reads (cached until a run is added) and the choices every
section shares: whose runs (mine by default), dataset, batch size, devices, methods, runtime,
axes."""

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from engine.reports import compare
from engine.reports import runs as runs_view
from pages.ui import only_owner, owner_filter
from storage import queries, settings


@st.cache_data(show_spinner=False, max_entries=4)
def load_runs(url: str, version: tuple) -> list[dict]:
    """Every finished run; `url` and `version` (count, newest id and finish) are the key."""
    return queries.runs_table()


@st.cache_data(show_spinner=False, max_entries=16)
def comparison(url: str, version: tuple, job_ids: tuple[int, ...], batch: int, price: float,
               runtime: str | None) -> tuple[pd.DataFrame, list[str], dict]:
    """The side-by-side table and McNemar sentences (bootstraps take a moment: cached)."""
    everything = load_runs(url, version)
    by_id = {r["id"]: r for r in everything}
    preds = queries.prediction_arrays(list(job_ids))
    table, sentences = compare.compare([by_id[j] for j in job_ids], preds, batch, price,
                                       runtime, everything)
    return table, sentences, preds


@dataclass
class View:
    """What the user chose, and the runs it leaves: `frame` has one row per shown run."""

    url: str
    version: tuple
    by_id: dict[int, dict]  # every finished run, whoever's (lineage, comparisons)
    runs: list[dict]  # the chosen dataset's runs, whoever's (a model's other runtimes)
    sizes: list
    batch: int | None
    runtime: str
    frame: pd.DataFrame


def pick_all(column, label: str, options: list, key: str) -> list:
    """A multiselect that starts with every option, and starts again with every option when
    they change (switching to everyone's runs, or another dataset, brings new methods)."""
    if st.session_state.get(f"{key}_options") != options:
        st.session_state[f"{key}_options"] = options
        st.session_state[key] = list(options)
    return column.multiselect(label, options, key=key)


def choose() -> View | None:
    """The filters row; None (with a hint) when there are no finished runs."""
    url, version = settings.database_url(), queries.runs_version()
    runs = load_runs(url, version)
    if not runs:
        st.info("No finished runs yet. The default teacher's job adds the first one; then "
                "launch compression jobs from the Compress page.")
        return None
    owner = owner_filter("results_everyone")
    mine = only_owner(runs, owner)
    if not mine:
        st.info("None of your runs has finished yet: launch one from the Compress page, or "
                "switch on Everyone's runs to see the whole lab's.")
        return None
    datasets = pd.Series([r["dataset"] for r in mine]).value_counts().index.tolist()
    c1, c2, c3, c4, c5 = st.columns(5)
    dataset = c1.selectbox("Dataset", datasets, key="results_dataset",
                           help="Accuracy is only comparable on the same test split.")
    everyone = [r for r in runs if r["dataset"] == dataset]
    shown = only_owner(everyone, owner)
    sizes = runs_view.batch_sizes(shown) or [None]
    batch = c2.selectbox("Batch size", sizes, index=sizes.index(32) if 32 in sizes else 0,
                         key="results_batch",
                         help="Latency, throughput and speedups at this batch.")
    options = runs_view.runtimes(shown, batch) + [runs_view.FASTEST]
    if st.session_state.get("results_runtime") not in options:
        st.session_state["results_runtime"] = runs_view.default_runtime(shown, batch)
    runtime = c3.selectbox("Runtime", options, key="results_runtime",
                           format_func=runs_view.RUNTIME_CHOICES.get,
                           help="Every latency and ratio is under one runtime; or each model "
                                "at its fastest (the marker's shape says which).")
    frame = runs_view.runs_frame(shown, batch, runtime)
    devices = sorted(frame["device"].dropna().unique())
    methods = sorted(frame["method"].unique())
    device_pick = pick_all(c4, "Device", devices, "results_devices")
    method_pick = pick_all(c5, "Method", methods, "results_methods")
    frame = frame[frame["device"].isin(device_pick) & frame["method"].isin(method_pick)]
    return View(url, version, {r["id"]: r for r in runs}, everyone, sizes, batch, runtime, frame)
