"""Runs side by side: the table (one runtime, each speedup saying if it is paired), McNemar's
test, the HTML report, and the examples whose prediction changed for any pair chosen."""

from functools import partial
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

from engine.reports import report
from engine.reports.compare import common_runtime, pairs
from engine.reports.runs import FASTEST, run_label
from engine.reports.stats import flips
from engine.toolkit.data import DatasetError, load_dataset
from pages.results_parts.data import View, comparison
from pages.ui import show_error

ATTENTION_PAGE = Path(__file__).parents[1] / "attention.py"
NUM, TEXT = st.column_config.NumberColumn, st.column_config.TextColumn
COLUMNS = {"run": TEXT("run"), "runtime": TEXT("runtime"), "accuracy": NUM(format="%.3f"),
           "ci_low": NUM("accuracy 95% low", format="%.3f"),
           "ci_high": NUM("accuracy 95% high", format="%.3f"),
           "accuracy_delta_pts": NUM("accuracy change (points)", format="%+.1f"),
           "delta_ci_low_pts": NUM("change 95% low (points)", format="%+.1f"),
           "delta_ci_high_pts": NUM("change 95% high (points)", format="%+.1f"),
           "macro_f1": NUM("macro-F1", format="%.3f"), "p50_ms": NUM("p50 (ms)", format="%.1f"),
           "p95_ms": NUM("p95 (ms)", format="%.1f"),
           "speedup": TEXT("speedup vs first (95% CI, how measured)"),
           "size_mb": NUM("size (MB)", format="%.1f"),
           "smaller_than_first": NUM("smaller than first", format="%.2fx"),
           "throughput_per_s": NUM("throughput (/s)", format="%.0f"),
           "cost_per_million": NUM("$ per million", format="%.3f")}


def show(view: View) -> None:
    st.subheader("Compare runs")
    ids = view.frame["job"].tolist()[::-1]
    if "results_compare" in st.session_state:  # runs a filter has hidden cannot stay selected
        st.session_state["results_compare"] = [j for j in st.session_state["results_compare"]
                                               if j in ids]
    chosen = st.multiselect("Two to four runs (the first is the baseline)", ids,
                            max_selections=4, key="results_compare",
                            format_func=lambda j: run_label(view.by_id[j]))
    if len(chosen) < 2:
        st.caption("Pick two to four runs for deltas, 95% intervals, McNemar's test and the "
                   "examples whose prediction changed.")
        return
    price = st.number_input("Machine price per hour ($)", min_value=0.0, value=1.0, step=0.1,
                            key="results_price", help="For the cost per million inferences.")
    runs = [view.by_id[j] for j in chosen]
    runtime = common_runtime(runs, view.batch) if view.runtime == FASTEST else view.runtime
    table, sentences, preds = comparison(view.url, view.version, tuple(chosen), view.batch,
                                         price, runtime)
    st.dataframe(table, hide_index=True, key="results_compare_table",
                 column_order=list(COLUMNS), column_config=COLUMNS)
    st.caption(f"Latency and speedups under {runtime} at batch {view.batch}. Paired: timed in "
               f"one process (the job against its parent, or a retime job); unpaired: timed in "
               f"different processes. The change's interval is a paired bootstrap over the "
               f"same test examples.")
    for sentence in sentences:
        st.markdown(sentence)
    st.download_button("HTML report of this comparison", key="results_report",
                       file_name="compression-report.html", mime="text/html",
                       icon=":material/summarize:",
                       help="One file, plots included, works offline.",
                       data=partial(report.html_report, runs, preds, view.batch, price,
                                    runtime=runtime, everything=list(view.by_id.values())))
    flipped_examples(view, chosen, preds)


def flipped_examples(view: View, chosen: list[int], preds: dict) -> None:
    """The examples two of the chosen runs disagree on, for the pair the user picks."""
    pair = st.selectbox("Flipped examples for", pairs(chosen), key="results_flip_pair",
                        format_func=lambda p: f"job {p[0]} and job {p[1]}")
    a, b = view.by_id[pair[0]], view.by_id[pair[1]]
    st.markdown(f"**Flipped examples**: where job {a['id']} and job {b['id']} predict "
                f"differently")
    if a["dataset"] != b["dataset"] or not preds.get(a["id"]) or not preds.get(b["id"]):
        st.caption("These two runs were evaluated on different data, or have no stored "
                   "predictions.")
        return
    try:
        data = load_dataset(a["dataset"])
    except DatasetError as exc:
        show_error(exc)
        return
    flipped = flips(preds[a["id"]], preds[b["id"]], data.test.texts, data.label_names)
    flipped["right"] = flipped["right"].map({"A": f"job {a['id']}", "B": f"job {b['id']}",
                                             "neither": "neither"})
    st.dataframe(flipped.drop(columns=["wrong_confidence"]), hide_index=True,
                 key="results_flips", column_config={
                     "pred_a": f"job {a['id']} prediction", "pred_b": f"job {b['id']} prediction",
                     "confidence_a": NUM(f"job {a['id']} confidence", format="%.2f"),
                     "confidence_b": NUM(f"job {b['id']} confidence", format="%.2f"),
                     "right": "who is right"})
    if ATTENTION_PAGE.exists() and not flipped.empty:
        pick = st.selectbox("Example", flipped.index, key="results_flip_pick",
                            format_func=lambda i: flipped.at[i, "text"][:90])
        if st.button("Open on the Attention page", key="results_open_attention"):
            st.session_state["attention_sentence"] = flipped.at[pick, "text"]
            st.session_state["attention_models"] = [a["output_model"] or a["model"],
                                                    b["output_model"] or b["model"]]
            try:
                st.switch_page("pages/attention.py")
            except StreamlitAPIException:  # the file exists but the app does not list it yet
                st.warning("The Attention page is not in the app's navigation yet.")
