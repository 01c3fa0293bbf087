"""Heads: every attention head's importance as a layers x heads map; pick heads, prune them."""

import plotly.graph_objects as go
import streamlit as st

from engine.toolkit.heads import format_heads, parse_heads
from engine.worker import job_device
from pages.ui import dataset_choices, dataset_label, show_error, submit_job
from storage import jobs as store

st.title("Heads")
st.caption("Scores come from prune jobs (kind=heads). Gradient importance (Michel et al. 2019)"
           " is how much the loss moves when a head is switched off; scores are normalised per"
           " layer. Grey cells are heads the model has already lost.")

with st.expander("Score a model's heads", expanded=False):
    models = ["default"] + [m.name for m in store.list_models() if m.name.startswith("job:")]
    c1, c2, c3 = st.columns(3)
    score_model = c1.selectbox("Model", models, key="score_model")
    score_data = c2.selectbox("Dataset", dataset_choices(), key="score_dataset",
                              format_func=dataset_label)
    how = c3.selectbox("Importance", ["gradient", "magnitude", "random"], key="score_how")
    if st.button("Score heads", key="score_heads"):
        try:
            job_id = submit_job("prune", model=score_model, dataset=score_data, device=job_device(),
                            values={"kind": "heads", "importance": how, "score_only": True})
            st.success(f"Queued scoring job {job_id}; its map appears here when it is done.")
        except Exception as exc:  # noqa: BLE001
            show_error(exc)

scored = {d["id"]: d for d in store.head_score_jobs(limit=200)}
if not scored:
    st.info("No head scores yet: score a model above, or run a prune job with kind=heads.")
    st.stop()

labels = {i: f"job {i}: {d['model']} on {dataset_label(d['dataset'])} "
             f"({d['metrics']['head_importance_method']})" for i, d in scored.items()}
job = scored[st.selectbox("Scores", list(labels), key="heads_job", format_func=labels.get)]
scores = job["metrics"]["head_importance"]  # [layers][heads], None: already removed
alive = sorted((s, layer, h) for layer, row in enumerate(scores) for h, s in enumerate(row)
               if s is not None)
pick_key = f"heads_pick_{job['id']}"


def pick_lowest() -> None:
    n = st.session_state["heads_count"]
    st.session_state[pick_key] = [f"{layer}:{h}" for _, layer, h in sorted(alive)[:n]]


if pick_key not in st.session_state:
    st.session_state["heads_count"] = round(0.4 * len(alive))
    pick_lowest()
st.slider("Pick the lowest-scoring heads", 0, len(alive), key="heads_count",
          on_change=pick_lowest)

fig = go.Figure(go.Heatmap(z=scores, colorscale="Viridis", colorbar_title="importance",
                           hovertemplate="layer %{y}, head %{x}: %{z:.3f}<extra></extra>"))
# Markers over every live head, so that box/lasso selection on the map picks heads.
chosen = set(st.session_state[pick_key])
fig.add_scatter(x=[h for _, _, h in alive], y=[layer for _, layer, _ in alive], mode="markers",
                marker=dict(symbol=["x" if f"{ly}:{h}" in chosen else "circle-open"
                                    for _, ly, h in alive], color="white", size=12),
                hoverinfo="skip", showlegend=False)
fig.update_layout(height=120 + 40 * len(scores), margin=dict(l=0, r=0, t=10, b=0),
                  xaxis_title="head", yaxis_title="layer", xaxis_dtick=1, yaxis_dtick=1,
                  yaxis_autorange="reversed", plot_bgcolor="lightgrey")  # grey: removed
event = st.plotly_chart(fig, key=f"heads_map_{job['id']}", on_select="rerun",
                        selection_mode=("box", "lasso", "points"))
selected = [f"{int(p['y'])}:{int(p['x'])}" for p in (event.selection.points if event else [])
            if p.get("curve_number") == 1]
if selected and selected != st.session_state.get("heads_last_selection"):
    st.session_state["heads_last_selection"] = selected  # apply a new selection once
    st.session_state[pick_key] = selected
    st.rerun()
st.caption("On the map: ✖ a head picked for removal · ○ a head that stays · grey cell: a head "
           "the model lost earlier. Select with a box or lasso on the map, or edit the list.")

st.multiselect("Heads to remove (LAYER:HEAD)", [f"{ly}:{h}" for _, ly, h in alive],
               key=pick_key, help="Box- or lasso-select on the map, use the slider, or edit.")
picked = parse_heads(",".join(st.session_state[pick_key]))
count = sum(map(len, picked.values()))
c1, c2 = st.columns(2)
steps = c1.number_input("Recovery steps", 0, 100_000, 300, key="heads_recovery",
                        help="Fine-tuning after removal, distilled from the unpruned model.")
c2.metric("Heads to remove", f"{count} of {len(alive)}",
          help="Heads removed, out of the heads the model has now.")
c2.caption(f"{count / max(1, len(alive)):.0%} of the live heads are picked for removal.")
if st.button(f"Prune these heads from {job['model']}", type="primary", key="heads_launch",
             disabled=not count):
    try:
        job_id = submit_job("prune", model=job["model"], dataset=job["dataset"],
                            device=job_device(),
                            values={"kind": "heads", "heads": format_heads(picked),
                                    "importance": job["metrics"]["head_importance_method"],
                                    "recovery_steps": int(steps)})
        st.success(f"Queued prune job {job_id}; follow it on the Jobs page.")
    except Exception as exc:  # noqa: BLE001
        show_error(exc)
