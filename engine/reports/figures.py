"""The plotly charts the pages and the report draw: the frontier, the gains against the
parent, bars of one figure per run, training curves and the sensitivity map (the Learn page's
lesson charts are engine/reports/lessons/charts.py, built on the styles here).

Axes have margins so their numbers show (`automargin`), ticks a readable number of decimals for
the span they cover, legends above the plot rather than over an axis. Points carry their job id
first in customdata, so a click opens the run. No torch and no streamlit here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from engine.reports.runs import COST, QUALITY, pareto_mask

GREY = "rgba(150, 150, 150, 0.35)"
PLOTLY_CONFIG = {"displaylogo": False}  # the logo links to plotly.com: nothing remote
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}  # plus automargin: room for the tick labels
LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0}
SYMBOLS = {"eager": "circle", "compiled": "diamond", "onnxruntime": "square"}


@dataclass(frozen=True)
class Reference:
    """A published result, relative to its own baseline, with the hardware it was measured on."""

    name: str
    speedup: float
    accuracy_retained: float
    hardware: str
    source: str
    size_ratio: float | None = None


REFERENCES: tuple[Reference, ...] = (
    Reference("DistilBERT", 1.6, 0.97, "CPU (Intel Xeon E5-2690 v3), batch 1",
              "Sanh et al. 2019: 97% of BERT-base's GLUE score, 60% faster, 40% smaller",
              size_ratio=1.67),
    Reference("PyTorch dynamic int8 BERT", 1.78, 0.994, "MacBook Pro CPU, 1 thread",
              "PyTorch tutorial 'Dynamic Quantization on BERT' (MRPC): 160 s to 90 s, "
              "438 MB to 181 MB, F1 about 0.6% lower", size_ratio=2.42),
    Reference("Intel static int8 BERT-base MRPC", 3.29, 0.99, "Intel Xeon CPU, 4 cores per "
              "instance, batch 1", "Intel Neural Compressor validated models (PyTorch static "
              "int8), accuracy within 1% relative"),
    Reference("oBERT (sparse + int8)", 10.0, 0.98, "AWS c5.12xlarge CPU with the DeepSparse "
              "sparse runtime", "Kurtic et al. 2022, The Optimal BERT Surgeon: about 10x "
              "faster at under 2 F1 points lost on SQuAD v1.1"),
)


# --------------------------------------------------------------------------- axes


def method_colors(methods: list[str]) -> dict[str, str]:
    """A stable colour per method (sorted names), shared by every chart."""
    palette = qualitative.Plotly
    return {m: palette[i % len(palette)] for i, m in enumerate(sorted(set(methods)))}


def readable_axis(values: Sequence[float], min_span: float, percent: bool = False,
                  ticks: int = 5) -> dict[str, Any]:
    """Axis settings for `values`: a range at least `min_span` wide (a flat curve does not get
    ticks 0.0001 apart) and a tick format with just enough decimals for that span."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not v.size:
        return {"automargin": True}
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    pad = (hi - lo) * 0.08
    step = (hi - lo) / ticks * (100 if percent else 1)
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return {"range": [lo - pad, hi + pad], "nticks": ticks + 2, "automargin": True,
            "tickformat": f".{decimals}{'%' if percent else 'f'}"}


def _hover(df: pd.DataFrame, x: str, y: str) -> dict[str, Any]:
    data = df[["job", "label", "config", "device", "dataset", "runtime"]].astype(object)
    data["runtime"] = data["runtime"].fillna("-")
    return {"customdata": data.to_numpy(),
            "hovertemplate": "<b>%{customdata[1]}</b><br>" + f"{COST.get(x, x)}: %{{x:.4g}}<br>"
            + f"{QUALITY.get(y, y)}: %{{y:.4f}}<br>runtime: %{{customdata[5]}}<br>"
            "%{customdata[2]}<br>%{customdata[3]} · %{customdata[4]}<extra></extra>"}


# --------------------------------------------------------------------------- charts


def frontier_figure(frame: pd.DataFrame, x: str, y: str, subtitle: str = "",
                    show_unreliable: bool = False) -> go.Figure:
    """Quality `y` against cost `x`: the Pareto frontier in method colours joined by a step
    line, dominated runs in grey, the marker's shape naming the runtime each point was timed
    under. Runs whose timing is unreliable are left off (with `show_unreliable`: drawn as
    crosses, never on the frontier). Each point's customdata starts with its job id."""
    df = frame.dropna(subset=[x, y])
    unreliable = df["timing_unreliable"].notna() if "timing_unreliable" in df else \
        pd.Series(False, index=df.index)
    flagged, df = df[unreliable], df[~unreliable]
    on = pareto_mask(df[x], df[y])
    mixed = df["runtime"].nunique() > 1

    def symbols(group: pd.DataFrame) -> list[str]:
        return [SYMBOLS.get(rt, "circle") for rt in group["runtime"]]

    fig = go.Figure()
    dominated = df[~on]
    if len(dominated):
        fig.add_trace(go.Scatter(x=dominated[x], y=dominated[y], mode="markers",
                                 name="dominated", marker={"color": GREY, "size": 8,
                                                           "symbol": symbols(dominated)},
                                 **_hover(dominated, x, y)))
    front = df[on].sort_values([x, y])
    if len(front):
        fig.add_trace(go.Scatter(x=front[x], y=front[y], mode="lines", name="frontier",
                                 line={"shape": "hv", "color": "#444", "width": 1},
                                 hoverinfo="skip"))
    colors = method_colors(list(frame["method"]))
    for method, group in front.groupby("method", sort=True):
        fig.add_trace(go.Scatter(x=group[x], y=group[y], mode="markers", name=method,
                                 marker={"color": colors[method], "size": 11,
                                         "symbol": symbols(group),
                                         "line": {"width": 1, "color": "white"}},
                                 **_hover(group, x, y)))
    if show_unreliable and len(flagged):
        fig.add_trace(go.Scatter(x=flagged[x], y=flagged[y], mode="markers",
                                 name="unreliable timing: re-time",
                                 marker={"color": "#d62728", "size": 10, "symbol": "x-thin-open",
                                         "line": {"width": 2}}, **_hover(flagged, x, y)))
    if mixed:  # a legend entry per runtime shape
        for rt in df["runtime"].dropna().unique():
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"timed {rt}",
                                     marker={"color": "#666", "symbol": SYMBOLS.get(rt, "circle")},
                                     hoverinfo="skip"))
    fig.update_layout(height=450, margin=MARGIN, legend=LEGEND, clickmode="event+select",
                      xaxis={"title": COST.get(x, x) + subtitle, "automargin": True},
                      yaxis={"title": QUALITY.get(y, y), "automargin": True})
    return fig


def gains_figure(frame: pd.DataFrame, references: bool = False) -> go.Figure:
    """Paired speedup against the parent (log scale, the frame's runtime) by accuracy retained,
    per run with a parent, whiskers on the speedup's interval where stored; with `references`,
    the published results as labelled stars."""
    df = frame.dropna(subset=["speedup_vs_parent", "accuracy_retained"])
    fig = go.Figure()
    colors = method_colors(list(frame["method"]))
    for method, group in df.groupby("method", sort=True):
        error = {"type": "data", "symmetric": False,
                 "array": (group["speedup_ci_high"] - group["speedup_vs_parent"]).fillna(0),
                 "arrayminus": (group["speedup_vs_parent"] - group["speedup_ci_low"]).fillna(0),
                 "thickness": 1, "width": 3}
        fig.add_trace(go.Scatter(
            x=group["speedup_vs_parent"], y=group["accuracy_retained"], mode="markers",
            name=method, marker={"color": colors[method], "size": 10}, error_x=error,
            customdata=group[["job", "label", "config", "device", "speedup"]].to_numpy(),
            hovertemplate="<b>%{customdata[1]}</b><br>%{customdata[4]} faster than its parent"
            "<br>%{y:.1%} of its parent's accuracy<br>%{customdata[2]}<br>"
            "%{customdata[3]}<extra></extra>"))
    ys = list(df["accuracy_retained"]) + [1.0]
    xs = [x for x in df["speedup_vs_parent"] if x > 0] + [1.0]
    if references:
        ys += [r.accuracy_retained for r in REFERENCES]
        xs += [r.speedup for r in REFERENCES]
    x_range = _log_range(xs)
    if references:
        fig.add_trace(go.Scatter(
            x=[r.speedup for r in REFERENCES], y=[r.accuracy_retained for r in REFERENCES],
            mode="markers+text", name="published", text=[r.name for r in REFERENCES],
            textposition=[_label_side(r.speedup, x_range) for r in REFERENCES],
            marker={"symbol": "star", "size": 14, "color": "#222"},
            customdata=[[r.hardware, r.source] for r in REFERENCES],
            hovertemplate="<b>%{text}</b><br>%{x:.2f}x, %{y:.1%} retained<br>measured on "
            "%{customdata[0]}<br>%{customdata[1]}<extra></extra>"))
    fig.add_vline(x=1, line={"dash": "dot", "color": "#999"})
    fig.add_hline(y=1, line={"dash": "dot", "color": "#999"})
    fig.update_layout(height=400, margin=MARGIN, legend=LEGEND,
                      xaxis={"type": "log", "title": "speedup against the parent (x, paired)",
                             "range": x_range, "automargin": True},
                      yaxis={"title": "accuracy retained (own / parent)",
                             **readable_axis(ys, 0.02, percent=True)})
    return fig


def _log_range(xs: Sequence[float], pad: float = 0.08) -> list[float]:
    """A log axis's range (in log10 units) holding every x with a margin on both sides."""
    lo, hi = math.log10(min(xs)), math.log10(max(xs))
    span = max(hi - lo, 0.3)
    return [lo - pad * span, hi + pad * span]


def _label_side(x: float, x_range: list[float]) -> str:
    """Where a point's label goes so that it stays inside the plot: labels of points in the
    right third of a log axis extend to the left of the point, in the left third to the right
    (a centred label on the rightmost point was cut off at the plot's edge)."""
    lo, hi = x_range
    where = (math.log10(x) - lo) / (hi - lo)
    return "top left" if where > 0.6 else "top right" if where < 0.4 else "top center"


def bars_figure(names: Sequence[str], values: Sequence[float], title: str,
                low: Sequence[float] | None = None, high: Sequence[float] | None = None,
                number_format: str = ".1f") -> go.Figure:
    """One horizontal bar per run, every run named on the axis and its value printed on the
    bar; whiskers from `low` to `high` when given."""
    values = list(values)
    bar = go.Bar(y=list(names), x=values, orientation="h", marker_color="#4c78a8",
                 text=[format(v, number_format) if v == v else "-" for v in values],
                 textposition="auto", hovertemplate="%{y}: %{x}<extra></extra>")
    if low is not None and high is not None:
        bar.error_x = {"type": "data", "symmetric": False,
                       "array": [h - v for h, v in zip(high, values)],
                       "arrayminus": [v - lo for v, lo in zip(values, low)]}
    return go.Figure(bar).update_layout(
        height=90 + 45 * len(values), margin=MARGIN, xaxis={"title": title, "automargin": True},
        yaxis={"automargin": True, "autorange": "reversed", "type": "category",
               "tickmode": "array", "tickvals": list(names), "ticktext": list(names)})


def curves_figure(curves: dict[str, list[Sequence[float]]]) -> go.Figure:
    """Training curves by step: losses on the left axis, accuracies on the right (as
    percentages), ticks with sensible decimals, the legend above the plot."""
    fig = go.Figure()
    losses, accuracies = [], []
    for name, points in curves.items():
        xs, ys = zip(*points) if points else ((), ())
        right = "accuracy" in name
        (accuracies if right else losses).extend(ys)
        fig.add_scatter(x=xs, y=ys, name=name, mode="lines+markers",
                        yaxis="y2" if right else "y")
    fig.update_layout(height=280, margin=MARGIN, legend=LEGEND,
                      xaxis={"title": "step", "tickformat": "d", "automargin": True},
                      yaxis={"title": "loss", **readable_axis(losses, 0.05)},
                      yaxis2={"title": "accuracy", "overlaying": "y", "side": "right",
                              "showgrid": False, **readable_axis(accuracies, 0.02, percent=True)})
    return fig


# --------------------------------------------------------------------------- where it hurts
# (the sensitivity map, engine/reports/sensitivity.py: rows are the embeddings then each layer)

# measure -> (label, colour scale, value from a stored row, hover / cell format)
HURT_MEASURES: dict[str, tuple[str, str, str, str]] = {
    "acc_drop": ("accuracy drop, points (int8 in that part only)", "Reds", "acc_drop", ".2f"),
    "sqnr_db": ("SQNR of the logits, dB (low: int8 hurts)", "Reds_r", "sqnr_db", ".1f"),
    "share": ("share of the latency, %", "Blues", "share", ".1f"),
}


def sensitivity_grid(sens: dict[str, Any], measure: str) -> tuple[list[str], list[str],
                                                                   list[list[float | None]]]:
    """(row labels: "embeddings", "layer 0", ...; the map's parts; z [rows][parts]) for
    `measure` (a key of HURT_MEASURES): accuracy drops and latency shares in points / %, None
    where a part was not measured (the embeddings row has only its own cell)."""
    parts = list(sens["parts"])
    rows = ["embeddings"] + [f"layer {i}" for i in range(sens["layers"])]
    z: list[list[float | None]] = [[None] * len(parts) for _ in rows]
    source = sens.get("latency_share") if measure == "share" else sens.get("quant")
    scale = 1.0 if measure == "sqnr_db" else 100.0
    for row in source or []:
        r = 0 if row["layer"] is None else row["layer"] + 1
        if row["part"] in parts and r < len(rows):
            z[r][parts.index(row["part"])] = round(scale * row[HURT_MEASURES[measure][2]], 4)
    return rows, parts, z


def sensitivity_figure(sens: dict[str, Any], measure: str = "acc_drop") -> go.Figure:
    """Layers x parts coloured by `measure`, with two narrow maps beside it on the same rows:
    the accuracy drop when the whole layer is dropped, and each head's importance (normalised
    per layer; grey: removed). Values are printed in the cells."""
    from plotly.subplots import make_subplots

    label, scale, _, fmt = HURT_MEASURES[measure]
    rows, parts, z = sensitivity_grid(sens, measure)
    heads = sens.get("heads") or []
    n_heads = max((len(r) for r in heads), default=0)
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.03,
                        column_widths=[0.6, 0.1, 0.3] if n_heads else [0.85, 0.15, 0.0],
                        subplot_titles=["int8 one part at a time", "layer dropped",
                                        "head importance" if n_heads else ""])
    fig.add_heatmap(z=z, x=parts, y=rows, colorscale=scale, texttemplate=f"%{{z:{fmt}}}",
                    colorbar={"title": {"text": label, "side": "right"}, "x": 1.02},
                    hovertemplate=f"%{{y}}, %{{x}}: %{{z:{fmt}}}<extra>{label}</extra>",
                    row=1, col=1)
    drops = {r["layer"]: 100 * r["acc_drop"] for r in sens.get("layer_drop") or []}
    fig.add_heatmap(z=[[None]] + [[drops.get(i)] for i in range(sens["layers"])],
                    x=["dropped"], y=rows, colorscale="Reds", showscale=False,
                    texttemplate="%{z:.2f}",
                    hovertemplate="%{y} dropped: %{z:.2f} points lost<extra></extra>",
                    row=1, col=2)
    if n_heads:
        fig.add_heatmap(z=[[None] * n_heads] + [list(r) for r in heads],
                        x=[f"h{h}" for h in range(n_heads)], y=rows, colorscale="Viridis",
                        showscale=False, texttemplate="%{z:.2f}",
                        hovertemplate="%{y}, head %{x}: %{z:.3f}<extra>importance</extra>",
                        row=1, col=3)
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    fig.update_xaxes(type="category", automargin=True)
    fig.update_layout(height=140 + 42 * len(rows), margin=MARGIN, plot_bgcolor="lightgrey")
    return fig
