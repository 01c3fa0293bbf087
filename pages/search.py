"""Search: the fastest (or smallest) model within an accuracy budget. The search runs in a
background process (`python -m engine search`); this page starts it and follows it live."""

import pandas as pd
import plotly.express as px
import streamlit as st

from engine import search
from engine.reports.search_plan import INT8_SHARE, Constraints
from pages.ui import attendee, can_change, dataset_choices, dataset_label, plain, show_error
from storage import jobs as store

st.title("Search")
st.caption("Give a budget; the lab plans chains of its methods, predicts each one's speed "
           "(a latency table measured here) and accuracy (the model's sensitivity map, or "
           "priors), runs the most promising first, selects on the validation split and "
           "reports the winner on the test split.")

with st.form("search_form"):
    models = ["default"] + [m.name for m in store.list_models() if m.name.startswith("job:")]
    a, b = st.columns(2)
    model = a.selectbox("Starting model", models, key="search_model")
    dataset = b.selectbox("Dataset", dataset_choices(), format_func=dataset_label,
                          key="search_dataset")
    a, b, c = st.columns(3)
    drop = a.number_input("Points lost at most (validation)", 0.0, 100.0, 1.0, 0.1,
                          key="search_drop", help="1 = one accuracy point")
    batch = b.selectbox("Batch size", [32, 1], key="search_batch")
    minutes = c.number_input("Minutes", 1, 600, 60, key="search_minutes")
    a, b, c, d = st.columns(4)
    retained = a.number_input("Or keep at least this % of it (0: off)", 0.0, 100.0, 0.0, 0.5,
                              key="search_retained")
    latency = b.number_input("Latency ceiling, ms (0: none)", 0.0, value=0.0,
                             key="search_latency")
    size = c.number_input("Size ceiling, MB (0: none)", 0.0, value=0.0, key="search_size")
    objective = d.segmented_control("Objective", ["speed", "size"], default="speed",
                                    key="search_objective")
    start = st.form_submit_button("Start search", type="primary", key="search_start")
if start:
    cons = Constraints(max_drop=drop / 100 if drop or not retained else None,
                       min_retained=retained / 100 or None, batch=batch, minutes=float(minutes),
                       max_latency_ms=latency or None, max_size_mb=size or None,
                       objective=objective or "speed")
    try:
        st.session_state["search_id"] = search.launch(model, dataset, cons, attendee())
        st.toast("Search started.")
    except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
        show_error(exc)

found = search.records.list_searches()
if not found:
    st.info("No search yet: set a budget above and start one, or run `python -m engine "
            "search --model default --max-drop 0.01 --batch 32 --minutes 60`.")
    st.stop()
ids = [r["id"] for r in found]
chosen = st.selectbox("Search", ids, index=ids.index(st.session_state.get("search_id", ids[0]))
                      if st.session_state.get("search_id") in ids else 0, key="search_pick",
                      format_func=lambda i: next(f"search {i} · {r['model']} · {r['status']}"
                                                 for r in found if r["id"] == i))


def drop_points(rec: dict, c: dict) -> float | None:
    """Validation points the candidate lost against the start (None before it ran)."""
    start = rec.get("start_val_accuracy")
    if start is None or c["val_accuracy"] is None:
        return None
    return round(100 * (start - c["val_accuracy"]), 2)


def interval_text(ci: list[float] | None) -> str | None:
    return f"{100 * ci[0]:.1f} to {100 * ci[1]:.1f}" if ci else None


@st.fragment(run_every=2)
def follow(search_id: int) -> None:
    rec = search.records.load(search_id)
    running = rec["status"] in search.records.RUNNING_STATES
    head, action = st.columns([5, 1])
    head.markdown(f"**Search {rec['id']}** · {plain(rec['model'])} · {rec['status']} · "
                  f"{rec.get('minutes') or 0:.1f} of {rec['constraints']['minutes']:g} min")
    if running and can_change(rec.get("owner")):
        action.button("Cancel", key=f"search_cancel_{search_id}",
                      disabled=rec["cancel_requested"],
                      on_click=lambda: search.cancel(search_id, owner=attendee()))
    (st.info if running else st.success if rec.get("winner") else st.warning)(
        plain(rec.get("message") or ""))
    if rec.get("prediction_source") == "prior":
        st.caption("Accuracy predicted from priors: this model has no sensitivity map yet "
                   f"(`python -m engine submit sensitivity --model {rec['model']}` makes one).")
    elif rec.get("sensitivity_job"):
        st.caption(f"Accuracy predicted from the sensitivity map of job "
                   f"{rec['sensitivity_job']}; selection is on measured validation accuracy.")
    if any(s["config"].get("max_drop") for c in rec["candidates"] for s in c.get("steps", [])):
        st.caption(f"An int8 step marked accuracy-aware was given quantize's max_drop: "
                   f"{INT8_SHARE:.0%} of what the budget had left after its chain's earlier "
                   f"steps, so it keeps its most sensitive parts in float (a little slower "
                   f"and larger than plain int8).")
    rows = pd.DataFrame([{"chain": c["chain"], "job": c["id"], "status": c["status"],
                          "val_accuracy": c["val_accuracy"],
                          "val drop (points)": drop_points(rec, c),
                          # the judging half is small: how far the drop could be off
                          "95 % interval (points)": interval_text(c.get("val_drop_ci")),
                          "speedup": (c.get("speedup_vs_start") or {}).get(
                              str(rec["constraints"]["batch"])),
                          # which figure it is: a chain's product of paired steps, or timed
                          # end to end against the start (the leading chains are)
                          "speedup from": c.get("speedup_source"),
                          "predicted speedup": c["predicted"].get("speedup"),
                          "predicted drop (points)": 100 * c["predicted"].get("drop", 0),
                          "size_mb": c.get("size_mb")} for c in rec["candidates"]])
    ran = rows.dropna(subset=["val_accuracy"]) if len(rows) else rows
    if len(ran):
        fig = px.scatter(ran, x=ran["speedup"].fillna(ran["predicted speedup"]),
                         y="val_accuracy", color="status", hover_name="chain",
                         labels={"x": f"speedup at batch {rec['constraints']['batch']}"})
        st.plotly_chart(fig, key=f"search_frontier_{search_id}")
    if len(rows):
        st.dataframe(rows, hide_index=True, key=f"search_table_{search_id}")


follow(chosen)
