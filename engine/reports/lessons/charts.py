"""The Learn page's lesson charts, one per lesson kind, drawn from the rows the lesson modules
build (speedup_rows, depth_rows, frontier_rows, sweep_rows), in the styles of
engine/reports/figures.py. No torch and no streamlit here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.reports.figures import GREY, LEGEND, MARGIN, SYMBOLS, readable_axis


def lesson_speedups_figure(rows: pd.DataFrame) -> go.Figure:
    """Grouped bars of paired speedups against the parent: one group per batch size and
    runtime, one bar colour per series (engine/reports/lessons.speedup_rows); a dotted line
    at 1x (as fast as the parent)."""
    fig = go.Figure()
    rank = {rt: i for i, rt in enumerate(SYMBOLS)}  # eager, compiled, onnxruntime
    order = sorted({(int(b), rt) for b, rt in zip(rows["batch_size"], rows["runtime"])},
                   key=lambda k: (k[0], rank.get(k[1], len(rank)), k[1]))
    names = [f"batch {b}, {rt}" for b, rt in order]
    for series, group in rows.groupby("series", sort=False):
        by = {(int(b), rt): x for b, rt, x in zip(group["batch_size"], group["runtime"],
                                                   group["speedup"])}
        ys = [by.get(k) for k in order]
        fig.add_trace(go.Bar(x=names, y=ys, name=series,
                             text=[f"{y:.2f}x" if y else "" for y in ys], textposition="auto",
                             hovertemplate=f"{series}<br>%{{x}}: %{{y:.2f}}x<extra></extra>"))
    fig.add_hline(y=1, line={"dash": "dot", "color": "#999"})
    fig.update_layout(height=380, margin=MARGIN, legend=LEGEND, barmode="group",
                      xaxis={"type": "category", "automargin": True},
                      yaxis={"title": "paired speedup against the teacher (x)",
                             "automargin": True, "rangemode": "tozero"})
    return fig


def lesson_depth_figure(rows: pd.DataFrame) -> go.Figure:
    """Accuracy kept (own / teacher) against student depth, each point labelled with its
    paired speedup (engine/reports/lessons.depth_rows); a dotted line at 100 %."""
    fig = go.Figure(go.Scatter(
        x=rows["layers"], y=rows["retained"], mode="lines+markers+text",
        text=[f"{x:.2f}x faster" if x == x else "" for x in rows["speedup"]],
        textposition="top center", customdata=rows[["job", "label"]].to_numpy(),
        marker={"size": 11, "color": "#4c78a8"},
        hovertemplate="<b>%{customdata[1]}</b> (job %{customdata[0]})<br>%{y:.1%} of the "
                      "teacher's accuracy<extra></extra>"))
    fig.add_hline(y=1, line={"dash": "dot", "color": "#999"})
    fig.update_layout(height=360, margin=MARGIN, showlegend=False,
                      xaxis={"title": "student layers", "tickformat": "d", "dtick": 1,
                             "automargin": True},
                      yaxis={"title": "accuracy kept (student / teacher)",
                             **readable_axis(list(rows["retained"]) + [1.0], 0.02,
                                             percent=True)})
    return fig


def lesson_budget_figure(rows: pd.DataFrame, on: Sequence[bool], budget_ms: float,
                         chosen: pd.Series | None = None,
                         batch_size: int | None = None) -> go.Figure:
    """Accuracy against latency of every model made from the teacher
    (engine/reports/lessons.frontier_rows): the frontier joined by a step line, the others
    grey, the budget as a vertical line and the chosen row (lessons.pick) as a star."""
    on = np.asarray(on, dtype=bool)
    fig = go.Figure()

    def points(df: pd.DataFrame, name: str, marker: dict[str, Any], mode: str = "markers"):
        fig.add_trace(go.Scatter(
            x=df["latency_ms"], y=df["accuracy"], mode=mode, name=name, marker=marker,
            text=df["label"], textposition="bottom center",
            customdata=df[["job", "runtime", "speedup"]].astype(object).to_numpy(),
            hovertemplate="<b>%{text}</b><br>%{x:.1f} ms (%{customdata[1]}), "
                          "%{customdata[2]:.2f}x the teacher<br>%{y:.1%}<extra></extra>"))

    if (~on).any():
        points(rows[~on], "beaten", {"color": GREY, "size": 9})
    front = rows[on].sort_values("latency_ms")
    if len(front):
        fig.add_trace(go.Scatter(x=front["latency_ms"], y=front["accuracy"], mode="lines",
                                 name="frontier", line={"shape": "hv", "color": "#444",
                                                        "width": 1}, hoverinfo="skip"))
        points(front, "on the frontier", {"color": "#4c78a8", "size": 11})
    if chosen is not None:  # only the pick is labelled: the frontier's labels would overlap
        points(chosen.to_frame().T, "your pick", {"symbol": "star", "size": 18,
                                                  "color": "#e45756"}, "markers+text")
    fig.add_vline(x=budget_ms, line={"dash": "dash", "color": "#e45756"})
    at = f" at batch {batch_size}" if batch_size else ""
    top = max(float(rows["latency_ms"].max()), budget_ms) * 1.1
    fig.update_layout(height=420, margin=MARGIN, legend=LEGEND,
                      xaxis={"title": f"latency (ms){at}, from paired ratios; dashed: your "
                                      f"budget, {budget_ms:.1f} ms", "range": [0, top],
                             "automargin": True},
                      yaxis={"title": "test accuracy",
                             **readable_axis(list(rows["accuracy"]), 0.02, percent=True)})
    return fig


def lesson_seqlen_figure(rows: pd.DataFrame) -> go.Figure:
    """Time per call by sequence length (engine/reports/lessons.sweep_rows): stacked bars of
    attention, feed-forward and the rest where the split was measured, and the sweep's own
    median as a line."""
    fig = go.Figure()
    x = [str(int(v)) for v in rows["seq_len"]]
    for col, name, color in (("attention_ms", "attention", "#e45756"),
                             ("ffn_ms", "feed-forward", "#4c78a8"),
                             ("other_ms", "embeddings, classifier, overhead", "#bab0ac")):
        if rows[col].notna().any():
            fig.add_trace(go.Bar(x=x, y=rows[col], name=name, marker_color=color,
                                 hovertemplate=f"{name}: %{{y:.1f}} ms at %{{x}} tokens"
                                               "<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=rows["p50_ms"], mode="lines+markers", name="whole model "
                             "(sweep median)", line={"color": "#222"},
                             hovertemplate="%{y:.1f} ms at %{x} tokens<extra></extra>"))
    fig.update_layout(height=400, margin=MARGIN, legend=LEGEND, barmode="stack",
                      xaxis={"title": "sequence length (tokens)", "type": "category",
                             "automargin": True},
                      yaxis={"title": "median latency (ms)", "automargin": True})
    return fig
