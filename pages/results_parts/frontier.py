"""Which model to ship: the frontier of quality against cost, the runs table, the CSV, and
the gains against each run's parent."""

from functools import partial

import pandas as pd
import streamlit as st

from engine.reports import figures, files
from engine.reports.runs import COST, QUALITY, job_from_selection, pareto_mask
from pages.results_parts.data import View

NUM, TEXT = st.column_config.NumberColumn, st.column_config.TextColumn
COST_BUTTONS = {"p50_ms": "median ms", "p95_ms": "p95 ms", "size_mb": "MB", "params": "params"}


def open_clicked(chart: str, event) -> None:
    """A click on a chart opens that run below, once per new click: a chart's selection
    lasts, and must not override a run picked later in the box or on the other chart."""
    clicked = job_from_selection(event)
    if clicked is not None and clicked != st.session_state.get(f"{chart}_clicked"):
        st.session_state[f"{chart}_clicked"] = st.session_state["results_run"] = clicked


def show(view: View) -> None:
    frame = view.frame
    # Short button labels and the widest column for Cost's four buttons: a segmented control
    # does not wrap, and its last button was cut off at the column's edge (issue 13.8).
    a1, a2, a3 = st.columns([2, 4, 2])
    y = a1.segmented_control("Quality", list(QUALITY), format_func=QUALITY.get,
                             default="accuracy", key="results_y") or "accuracy"
    x = a2.segmented_control("Cost", list(COST), format_func=COST_BUTTONS.get,
                             default="p50_ms", key="results_x",
                             help="What a run costs: its median or 95th-percentile latency (ms, "
                                  "at the batch and runtime chosen above), its file size (MB) "
                                  "or its parameter count.") or "p50_ms"
    unreliable = a3.toggle("Show unreliable timings", key="results_unreliable",
                           help="Runs whose timing could not be trusted (a wide spread, or a "
                                "parent slower than its own earlier timings) are kept off the "
                                "frontier; shown, they are crosses.")
    latency = x in ("p50_ms", "p95_ms")
    at = f" at batch {view.batch}, {view.runtime}" if latency else ""
    open_clicked("results_frontier", st.plotly_chart(
        figures.frontier_figure(frame, x, y, at, unreliable), key="results_frontier",
        on_select="rerun", selection_mode="points", config=figures.PLOTLY_CONFIG))
    plotted = frame.dropna(subset=[x, y])
    flagged = int(plotted["timing_unreliable"].notna().sum())
    reliable = plotted[plotted["timing_unreliable"].isna()]
    random_weights = int((~frame["accuracy_meaningful"]).sum())
    st.caption(
        f"{len(reliable)} of {len(frame)} runs plotted; "
        f"{int(pareto_mask(reliable[x], reliable[y]).sum())} on the frontier (coloured), the "
        f"rest are beaten on both axes by some run (grey). "
        + (f"{flagged} with unreliable timing {'shown as crosses' if unreliable else 'hidden'}. "
           if flagged else "")
        + (f"Runs on random-weight presets ({random_weights}) have no meaningful accuracy and "
           f"are left off. " if random_weights else "") + "Click a point to open its run.")
    st.dataframe(frame.drop(columns=["label", "accuracy_meaningful", "speedup_ci_low",
                                     "speedup_ci_high"]), hide_index=True, key="results_table",
                 column_config={
                     "accuracy": NUM(format="%.3f"), "macro_f1": NUM(format="%.3f"),
                     "size_mb": NUM("size (MB)", format="%.1f"), "p50_ms": NUM(format="%.1f"),
                     "p95_ms": NUM(format="%.1f"), "iqr_ms": NUM(format="%.2f"),
                     "throughput_per_s": NUM(format="%.0f"),
                     "speedup_vs_parent": NUM("speedup vs parent (x)", format="%.2f"),
                     "speedup": TEXT("speedup vs parent (95% CI, paired, runtime)"),
                     "accuracy_delta_vs_parent": NUM(format="%+.3f"),
                     "config": TEXT(width="medium")})
    st.download_button("Results as CSV", key="results_csv", file_name="results.csv",
                       mime="text/csv", icon=":material/download:",
                       data=partial(files.runs_csv, [view.by_id[j] for j in frame["job"]],
                                    view.sizes, view.runtime))

    st.subheader("Gains against the parent")
    references = st.toggle("Show published results", key="results_references",
                           help="Relative markers from the literature, with the hardware they "
                                "were measured on; not measured here.")
    open_clicked("results_gains", st.plotly_chart(
        figures.gains_figure(frame, references), key="results_gains", on_select="rerun",
        selection_mode="points", config=figures.PLOTLY_CONFIG))
    st.caption("Each speedup is paired (the job timed itself against its parent in one "
               "process) under the runtime its row names; whiskers are its "
               "95% interval where stored.")
    if references:
        st.dataframe(pd.DataFrame([vars(r) for r in figures.REFERENCES]), hide_index=True,
                     key="results_references_table")
