"""One run: what it scored and cost, under which runtime it was fastest, why it is not faster,
the chain it came from, and its recipe and model files."""

from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

from engine.reports import files
from engine.reports.diagnosis import what_limits_the_gain, why_not_faster
from engine.reports.lineage import HOW, family_tree
from engine.reports.runs import FASTEST, primary_runtime, run_label, runtime_table
from engine.reports.runtimes import fastest_sentence
from pages.results_parts.data import View
from storage import queries

NUM, TEXT = st.column_config.NumberColumn, st.column_config.TextColumn


def show(view: View) -> None:
    st.subheader("A run")
    ids = view.frame["job"].tolist()[::-1]
    if st.session_state.get("results_run") not in ids:
        st.session_state.pop("results_run", None)
    run_id = st.selectbox("Open a run", ids, index=None, key="results_run",
                          format_func=lambda j: run_label(view.by_id[j]),
                          placeholder="Click a point on the chart, or pick a run")
    if run_id is None:
        return
    run, row, batch = view.by_id[run_id], view.frame.set_index("job").loc[run_id], view.batch
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Accuracy", f"{row.accuracy:.1%}" if row.accuracy_meaningful else "not meaningful")
    m2.metric(f"Median latency (batch {batch}, {row.runtime or '-'})",
              f"{row.p50_ms:.1f} ms" if pd.notna(row.p50_ms) else "-")
    m3.metric(f"Speedup vs parent (paired, {row.runtime or '-'})", row.speedup.split(" paired")[0])
    m4.metric("Size", f"{row.size_mb:.1f} MB" if pd.notna(row.size_mb) else "-",
              delta=f"{run['metrics']['size_ratio_vs_parent']:.2f}x smaller than its parent"
              if run["metrics"].get("size_ratio_vs_parent") else None, delta_color="off")
    st.caption(f"`{row.model}` from `{row.input}` on {row.dataset} · {run['metrics'].get('device')}"
               f" · {row.config or 'default settings'}")
    if row.timing_unreliable:
        st.warning(f"**Unreliable timing: re-time.** {row.timing_unreliable}",
                   icon=":material/timer_off:")
    fastest = fastest_sentence(run, view.runs, [batch] if batch is not None else None)
    if fastest:
        st.markdown(f"**By runtime** (batch {batch}): {fastest}")
    by_runtime = runtime_table(run, batch)
    if len(by_runtime) > 1:
        st.dataframe(by_runtime, hide_index=True, key="results_runtimes",
                     column_config={"p50_ms": NUM(format="%.1f"), "iqr_ms": NUM(format="%.2f")})
    if run["metrics"].get("explanation"):
        st.markdown(run["metrics"]["explanation"])
    for note in why_not_faster(run):
        st.info(f"**Why isn't it faster?** {note}", icon=":material/speed:")
    for note in what_limits_the_gain(run, view.by_id.get(run.get("parent_id"))):
        st.info(f"**What limits the gain?** {note}", icon=":material/speed:")
    lineage(view, run_id)
    downloads(view, run, row.model)


def lineage(view: View, run_id: int) -> None:
    """The selected chain, cumulative against its first model, figures before the config."""
    runtime = primary_runtime(view.by_id[run_id]) if view.runtime == FASTEST else view.runtime
    st.markdown(f"**Lineage** (cumulative against the first model of the chain, {runtime})")
    tree = family_tree(view.by_id, run_id, view.batch, runtime)
    st.dataframe(tree, hide_index=True, key="results_lineage",
                 column_order=["step", "speedup", "how_measured", "size_ratio",
                               "accuracy", "accuracy_vs_root", "selected", "config"],
                 column_config={
                     "step": TEXT(width="medium"),
                     "speedup": TEXT("speedup vs first (95% CI)"),
                     "how_measured": TEXT("how the speedup was measured", width="medium"),
                     "size_ratio": NUM("smaller by", format="%.2fx"),
                     "accuracy": NUM(format="%.3f"), "accuracy_vs_root": NUM(format="%+.3f"),
                     "config": TEXT(width="small")})
    if tree["how_measured"].eq(HOW["paired"]).any():
        st.caption("A product of paired steps is an estimate. For a measured end-to-end ratio, "
                   f"run: `python -m engine submit retime --model job:{run_id} --set "
                   f"against=job:{tree['job'].iloc[0]}`.")


def downloads(view: View, run: dict, model: str) -> None:
    run_id = run["id"]
    d1, d2 = st.columns(2)
    d1.download_button("Recipe (YAML)", files.recipe_yaml(view.by_id, run_id),
                       key="results_recipe", file_name=f"recipe-job-{run_id}.yaml",
                       mime="application/x-yaml", icon=":material/receipt_long:",
                       help="Replays this run's chain of configs: python -m engine run FILE")
    path = queries.model_paths([run["output_model"]]).get(run["output_model"] or "")
    if path and Path(path).is_dir():
        d2.download_button("Model (zip)", partial(files.model_archive, path, model),
                           key="results_archive", file_name=f"{model.replace(':', '-')}.zip",
                           mime="application/zip", icon=":material/deployed_code:",
                           help="Loads with from_pretrained; quantized or pruned models load "
                                "with the lab's loader "
                                "(engine.toolkit.checkpoints.load_classifier), as "
                                "README_LAB.txt inside says.")
    else:
        d2.caption("No model files on this machine for this run.")
