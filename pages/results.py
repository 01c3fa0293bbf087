"""Results: which compressed model to ship, what it cost, and a report to show someone.

Reads every finished run in two queries (storage.queries), cached until a run is added; the
analysis (frontier, statistics, lineage, diagnostics) lives in engine.reports.analysis, the charts
and files in engine.reports.export.
"""

from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from engine.reports import analysis, export
from engine.toolkit.data import DatasetError, load_dataset
from pages.ui import show_error
from storage import queries, settings

ATTENTION_PAGE = Path(__file__).with_name("attention.py")
NUM = st.column_config.NumberColumn


@st.cache_data(show_spinner=False, max_entries=4)
def load_runs(url: str, version: tuple) -> list[dict]:
    """Every finished run; `url` and `version` (count, newest id and finish) are the key."""
    return queries.runs_table()


@st.cache_data(show_spinner=False, max_entries=16)
def comparison(url: str, version: tuple, job_ids: tuple[int, ...], batch: int,
               price: float) -> tuple[pd.DataFrame, list[str], dict]:
    """The side-by-side table and McNemar sentences (bootstraps take a moment: cached)."""
    by_id = {r["id"]: r for r in load_runs(url, version)}
    preds = queries.prediction_arrays(list(job_ids))
    table, sentences = analysis.compare([by_id[j] for j in job_ids], preds, batch, price)
    return table, sentences, preds


def open_clicked(chart: str, event) -> None:
    """A click on a chart opens that run below, once per new click: a chart's selection
    lasts, and must not override a run picked later in the box or on the other chart."""
    clicked = analysis.job_from_selection(event)
    if clicked is not None and clicked != st.session_state.get(f"{chart}_clicked"):
        st.session_state[f"{chart}_clicked"] = st.session_state["results_run"] = clicked


st.title("Results")
url, version = settings.database_url(), queries.runs_version()
runs = load_runs(url, version)
if not runs:
    st.info("No finished runs yet. The default teacher's job adds the first one; then launch "
            "compression jobs from the Compress page.")
    st.stop()
by_id = {r["id"]: r for r in runs}

# ------------------------------------------------------------------ filters and axes
datasets = pd.Series([r["dataset"] for r in runs]).value_counts().index.tolist()
c1, c2, c3, c4 = st.columns(4)
dataset = c1.selectbox("Dataset", datasets, key="results_dataset",
                       help="Accuracy is only comparable on the same test split.")
shown = [r for r in runs if r["dataset"] == dataset]
sizes = analysis.batch_sizes(shown) or [None]
batch = c2.selectbox("Batch size", sizes, index=sizes.index(32) if 32 in sizes else 0,
                     key="results_batch", help="Latency, throughput and speedups at this batch.")
frame = analysis.runs_frame(shown, batch)
devices = sorted(frame["device"].dropna().unique())
methods = sorted(frame["method"].unique())
device_pick = c3.multiselect("Device", devices, default=devices, key="results_devices")
method_pick = c4.multiselect("Method", methods, default=methods, key="results_methods")
frame = frame[frame["device"].isin(device_pick) & frame["method"].isin(method_pick)]
a1, a2 = st.columns(2)
y = a1.segmented_control("Quality", list(analysis.QUALITY), format_func=analysis.QUALITY.get,
                         default="accuracy", key="results_y") or "accuracy"
x = a2.segmented_control("Cost", list(analysis.COST), format_func=analysis.COST.get,
                         default="p50_ms", key="results_x") or "p50_ms"

# ------------------------------------------------------------------ frontier
at_batch = f" at batch {batch}" if x in ("p50_ms", "p95_ms") else ""
frontier = export.frontier_figure(frame, x, y, at_batch)
open_clicked("results_frontier", st.plotly_chart(
    frontier, key="results_frontier", on_select="rerun", selection_mode="points",
    config=export.PLOTLY_CONFIG))
plotted = frame.dropna(subset=[x, y])
random_weights = int((~frame["accuracy_meaningful"]).sum())
st.caption(f"{len(plotted)} of {len(frame)} runs plotted; "
           f"{int(analysis.pareto_mask(plotted[x], plotted[y]).sum())} on the frontier "
           f"(coloured), the rest are beaten on both axes by some run (grey). "
           + (f"Runs on random-weight presets ({random_weights}) have no meaningful accuracy and "
              f"are left off. " if random_weights else "") + "Click a point to open its run.")
st.dataframe(frame.drop(columns=["label", "accuracy_meaningful"]), hide_index=True,
             key="results_table", column_config={
                 "accuracy": NUM(format="%.3f"), "macro_f1": NUM(format="%.3f"),
                 "size_mb": NUM("size (MB)", format="%.1f"), "p50_ms": NUM(format="%.1f"),
                 "p95_ms": NUM(format="%.1f"), "throughput_per_s": NUM(format="%.0f"),
                 "speedup_vs_parent": NUM("speedup vs parent (paired)", format="%.2fx"),
                 "accuracy_delta_vs_parent": NUM(format="%+.3f")})
st.download_button("Results as CSV", key="results_csv", file_name="results.csv",
                   mime="text/csv", icon=":material/download:",
                   data=partial(export.runs_csv, [by_id[j] for j in frame["job"]], sizes))

st.subheader("Gains against the parent")
references = st.toggle("Show published results", key="results_references",
                       help="Relative markers from the literature, with the hardware they were "
                            "measured on; not measured here.")
open_clicked("results_gains", st.plotly_chart(
    export.gains_figure(frame, references), key="results_gains", on_select="rerun",
    selection_mode="points", config=export.PLOTLY_CONFIG))
if references:
    st.dataframe(pd.DataFrame([vars(r) for r in export.REFERENCES]), hide_index=True,
                 key="results_references_table")

# ------------------------------------------------------------------ one run
st.subheader("A run")
ids = frame["job"].tolist()[::-1]
if st.session_state.get("results_run") not in ids:
    st.session_state.pop("results_run", None)
run_id = st.selectbox("Open a run", ids, index=None, key="results_run",
                      format_func=lambda j: analysis.run_label(by_id[j]),
                      placeholder="Click a point on the chart, or pick a run")
if run_id is not None:
    run, row = by_id[run_id], frame.set_index("job").loc[run_id]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Accuracy", f"{row.accuracy:.1%}" if row.accuracy_meaningful else "not meaningful")
    m2.metric(f"Median latency (batch {batch})", f"{row.p50_ms:.1f} ms"
              if pd.notna(row.p50_ms) else "-")
    m3.metric("Speedup vs parent (paired)", f"{row.speedup_vs_parent:.2f}x"
              if pd.notna(row.speedup_vs_parent) else "-")
    m4.metric("Size", f"{row.size_mb:.1f} MB" if pd.notna(row.size_mb) else "-",
              delta=f"{run['metrics']['size_ratio_vs_parent']:.2f}x smaller than its parent"
              if run["metrics"].get("size_ratio_vs_parent") else None, delta_color="off")
    st.caption(f"`{row.model}` from `{row.input}` on {row.dataset} · {run['metrics'].get('device')}"
               f" · {row.config or 'default settings'}")
    if run["metrics"].get("explanation"):
        st.markdown(run["metrics"]["explanation"])
    for note in analysis.why_not_faster(run):
        st.info(f"**Why isn't it faster?** {note}", icon=":material/speed:")
    st.markdown("**Lineage** (cumulative against the first model of the chain)")
    st.dataframe(analysis.family_tree(by_id, run_id, batch), hide_index=True,
                 key="results_lineage", column_config={
                     "cumulative_speedup": NUM(format="%.2fx"),
                     "size_ratio": NUM("smaller by", format="%.2fx"),
                     "accuracy": NUM(format="%.3f"), "accuracy_vs_root": NUM(format="%+.3f")})
    d1, d2 = st.columns(2)
    d1.download_button("Recipe (YAML)", export.recipe_yaml(by_id, run_id), key="results_recipe",
                       file_name=f"recipe-job-{run_id}.yaml", mime="application/x-yaml",
                       icon=":material/receipt_long:",
                       help="Replays this run's chain of configs: python -m engine run FILE")
    path = queries.model_paths([run["output_model"]]).get(run["output_model"] or "")
    if path and Path(path).is_dir():
        d2.download_button("Model (zip)", partial(export.model_archive, path, row.model),
                           key="results_archive", file_name=f"{row.model.replace(':', '-')}.zip",
                           mime="application/zip", icon=":material/deployed_code:",
                           help="Loads with from_pretrained; quantized or pruned models load "
                                "with the lab's loader "
                                "(engine.toolkit.checkpoints.load_classifier), as "
                                "README_LAB.txt inside says.")
    else:
        d2.caption("No model files on this machine for this run.")

# ------------------------------------------------------------------ compare
st.subheader("Compare runs")
if "results_compare" in st.session_state:  # runs a filter has hidden cannot stay selected
    st.session_state["results_compare"] = [j for j in st.session_state["results_compare"]
                                           if j in ids]
chosen = st.multiselect("Two to four runs (the first is the baseline)", ids, max_selections=4,
                        key="results_compare", format_func=lambda j: analysis.run_label(by_id[j]))
if len(chosen) < 2:
    st.caption("Pick two to four runs for deltas, 95% intervals, McNemar's test and the "
               "examples whose prediction changed.")
    st.stop()
price = st.number_input("Machine price per hour ($)", min_value=0.0, value=1.0, step=0.1,
                        key="results_price", help="For the cost per million inferences.")
table, sentences, preds = comparison(url, version, tuple(chosen), batch, price)
st.dataframe(table.drop(columns=["job"]), hide_index=True, key="results_compare_table",
             column_config={"accuracy": NUM(format="%.3f"), "ci_low": NUM(format="%.3f"),
                            "ci_high": NUM(format="%.3f"),
                            "accuracy_delta_pts": NUM(format="%+.2f"),
                            "speedup_vs_first": NUM(format="%.2fx"),
                            "smaller_than_first": NUM(format="%.2fx"),
                            "cost_per_million": NUM("$ per million", format="%.3f")})
for sentence in sentences:
    st.markdown(sentence)
st.download_button("HTML report of this comparison", key="results_report",
                   file_name="compression-report.html", mime="text/html",
                   icon=":material/summarize:", help="One file, plots included, works offline.",
                   data=partial(export.html_report, [by_id[j] for j in chosen], preds, batch,
                                price))

a, b = by_id[chosen[0]], by_id[chosen[1]]
st.markdown(f"**Flipped examples**: where job {a['id']} and job {b['id']} predict differently")
if a["dataset"] != b["dataset"]:
    st.caption("These two runs were evaluated on different data.")
    st.stop()
try:
    data = load_dataset(a["dataset"])
except DatasetError as exc:
    show_error(exc)
    st.stop()
flipped = analysis.flips(preds[a["id"]], preds[b["id"]], data.test.texts, data.label_names)
st.dataframe(flipped.drop(columns=["wrong_confidence"]), hide_index=True, key="results_flips",
             column_config={"pred_a": f"job {a['id']} says", "pred_b": f"job {b['id']} says",
                            "confidence_a": NUM(format="%.2f"),
                            "confidence_b": NUM(format="%.2f")})
if ATTENTION_PAGE.exists() and not flipped.empty:
    pick = st.selectbox("Example", flipped.index, key="results_flip_pick",
                        format_func=lambda i: flipped.at[i, "text"][:90])
    if st.button("Open on the Attention page", key="results_open_attention"):
        st.session_state["attention_sentence"] = flipped.at[pick, "text"]
        st.session_state["attention_models"] = [a["output_model"] or a["model"],
                                                b["output_model"] or b["model"]]
        try:
            st.switch_page("pages/attention.py")
        except StreamlitAPIException:  # the file exists but the app does not list the page yet
            st.warning("The Attention page is not in the app's navigation yet.")
