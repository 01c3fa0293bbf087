"""Attention page, third section: how the heads changed between the two models, what each
head of the first attends to, and that model's own head importance. Every grid is on the
ORIGINAL layers x heads (a student's or pruned model's layers sit where their record says)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from engine import attention as A
from pages.attention_pick import Choice
from pages.ui import show_error


def grid_figure(z: np.ndarray, kept: np.ndarray, text: list[list[str]] | None = None,
                zmax: float | None = None, colorscale: str = "Blues",
                colorbar: str = "") -> go.Figure:
    """A layers x heads heatmap; heads a model does not have are grey and say "removed"."""
    z = np.where(kept, z, np.nan).astype(float)
    layers, heads = z.shape
    text = text or [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"h{h}" for h in range(heads)], y=[f"L{i}" for i in range(layers)],
        text=text, texttemplate="%{text}", colorscale=colorscale, zmin=0, zmax=zmax,
        hoverongaps=False, xgap=2, ygap=2, colorbar={"title": {"text": colorbar}}))
    for i, h in zip(*np.nonzero(~kept)):
        fig.add_annotation(x=f"h{h}", y=f"L{i}", text="removed", showarrow=False,
                           font={"size": 9, "color": "#495057"})
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(plot_bgcolor="#ced4da", height=90 + 30 * layers,
                      margin={"l": 40, "r": 10, "t": 10, "b": 30})
    return fig


def how_they_changed(choice: Choice, results: dict[str, A.SentenceAttention]) -> None:
    if len(results) != 2:
        return
    st.subheader("How the heads changed")
    a, b = results.values()
    try:
        div = A.divergence(a, b)
    except Exception as exc:  # noqa: BLE001 (shown to the user, never raised)
        show_error(exc)
        return
    text = [["" if np.isnan(v) else f"{v:.3f}" for v in row] for row in div]
    st.plotly_chart(grid_figure(div, ~np.isnan(div), text=text, colorscale="Reds",
                                zmax=max(0.05, float(np.nanmax(div, initial=0))),
                                colorbar="JS (bits)"), key="attn_divergence")
    st.caption("Jensen-Shannon divergence between matching heads' attention rows for this "
               "sentence, averaged over tokens: 0 = the same attention, 1 = disjoint. Grey: a "
               "head one of the models does not have.")
    for att in (a, b):
        if att.present_layers != att.kept.shape[0]:
            st.caption(f"{choice.label.get(att.model_id, att.model_id)} has "
                       f"{A.layer_note(att)}: each of its layers is compared with the layer "
                       f"of the same original number.")
    note = A.layer_alignment(a, b)
    if note:
        st.caption(note + ".")


def what_each_attends_to(choice: Choice, results: dict[str, A.SentenceAttention]) -> None:
    att = results.get(choice.model_a)
    if att is None:
        return
    st.subheader("What each head attends to")
    summary = pd.DataFrame(A.head_summary(att))
    grid = np.full(att.kept.shape, np.nan)
    text = [["" for _ in range(att.kept.shape[1])] for _ in range(att.kept.shape[0])]
    for r in summary.itertuples():
        grid[r.layer, r.head] = r.entropy_norm
        text[r.layer][r.head] = r.pattern
    st.plotly_chart(grid_figure(grid, att.kept, text=text, zmax=1.0, colorscale="Greens",
                                colorbar="entropy"), key="attn_patterns")
    st.caption(f"{choice.label.get(choice.model_a, choice.model_a)}: where each head sends "
               f"most of its attention (at least half of it), else 'broad'; colour: attention "
               f"entropy, 1 = spread evenly over all tokens.")
    with st.expander("Per-head table"):
        st.dataframe(summary, hide_index=True, key="attn_summary")


def importance(choice: Choice, results: dict[str, A.SentenceAttention]) -> None:
    """The head importance of the model on screen (model_a), or a plain 'none for it'."""
    mid, name = choice.model_a, choice.label.get(choice.model_a, choice.model_a)
    att = results.get(mid)
    if att is None:
        return
    st.subheader("Head importance")
    try:
        found = A.own_head_importance(mid, att.layer_index, att.kept)
    except ValueError as exc:
        st.warning(f"The stored scores do not fit {name}: {exc}.")
        return
    if found is None:
        st.info(f"No head importance for {name}: no prune job has scored this model. A prune "
                f"job scores every head: on the Compress page choose prune with kind=heads, "
                f"or run `python -m engine submit prune --model {mid} --set kind=heads`.",
                icon=":material/info:")
        return
    job_id, scores = found
    st.plotly_chart(grid_figure(scores, ~np.isnan(scores), colorscale="Purples",
                                colorbar="importance"), key="attn_importance")
    st.caption(f"{name}, scored by prune job {job_id}: higher = the loss grows more when the "
               f"head is masked. Grey: heads the model does not have.")
