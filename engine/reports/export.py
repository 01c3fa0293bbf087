"""Charts and files made from stored runs: the frontier and gains figures, the runs as CSV, a
model as a zip, a run's recipe as YAML, and a one-file HTML report that works offline.

No torch and no streamlit here: the Results page and tests call these directly.
"""

from __future__ import annotations

import html
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import yaml
from plotly.colors import qualitative

from engine.recipes import recipe_for
from engine.reports.analysis import (
    COST,
    QUALITY,
    compare,
    lineage,
    pareto_mask,
    run_label,
    runs_frame,
    why_not_faster,
)
from engine.toolkit.checkpoints import read_meta
from engine.toolkit.config import LabError

GREY = "rgba(150, 150, 150, 0.35)"
PLOTLY_CONFIG = {"displaylogo": False}  # the logo links to plotly.com: nothing remote


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


# --------------------------------------------------------------------------- figures


def method_colors(methods: list[str]) -> dict[str, str]:
    """A stable colour per method (sorted names), shared by every chart."""
    palette = qualitative.Plotly
    return {m: palette[i % len(palette)] for i, m in enumerate(sorted(set(methods)))}


def _hover(df: pd.DataFrame, x: str, y: str) -> dict[str, Any]:
    return {"customdata": df[["job", "label", "config", "device", "dataset"]].to_numpy(),
            "hovertemplate": "<b>%{customdata[1]}</b><br>" + f"{COST.get(x, x)}: %{{x:.4g}}<br>"
            + f"{QUALITY.get(y, y)}: %{{y:.4f}}<br>%{{customdata[2]}}<br>%{{customdata[3]}} · "
            "%{customdata[4]}<extra></extra>"}


def frontier_figure(frame: pd.DataFrame, x: str, y: str, subtitle: str = "") -> go.Figure:
    """Quality `y` against cost `x`: the Pareto frontier in method colours joined by a step
    line, dominated runs in grey. Each point's customdata starts with its job id."""
    df = frame.dropna(subset=[x, y])
    on = pareto_mask(df[x], df[y])
    fig = go.Figure()
    dominated = df[~on]
    if len(dominated):
        fig.add_trace(go.Scatter(x=dominated[x], y=dominated[y], mode="markers",
                                 name="dominated", marker={"color": GREY, "size": 8},
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
                                         "line": {"width": 1, "color": "white"}},
                                 **_hover(group, x, y)))
    fig.update_layout(height=430, margin={"l": 0, "r": 0, "t": 30, "b": 0},
                      xaxis_title=COST.get(x, x) + subtitle, yaxis_title=QUALITY.get(y, y),
                      legend_title_text="method", clickmode="event+select")
    return fig


def gains_figure(frame: pd.DataFrame, references: bool = False) -> go.Figure:
    """Paired speedup against the parent (log scale) by accuracy retained, per run with a
    parent; with `references`, the published results as labelled stars."""
    df = frame.dropna(subset=["speedup_vs_parent", "accuracy_retained"])
    fig = go.Figure()
    colors = method_colors(list(frame["method"]))
    for method, group in df.groupby("method", sort=True):
        fig.add_trace(go.Scatter(
            x=group["speedup_vs_parent"], y=group["accuracy_retained"], mode="markers",
            name=method, marker={"color": colors[method], "size": 10},
            customdata=group[["job", "label", "config", "device"]].to_numpy(),
            hovertemplate="<b>%{customdata[1]}</b><br>%{x:.2f}x faster than its parent "
            "(paired)<br>%{y:.1%} of its parent's accuracy<br>%{customdata[2]}<br>"
            "%{customdata[3]}<extra></extra>"))
    if references:
        fig.add_trace(go.Scatter(
            x=[r.speedup for r in REFERENCES], y=[r.accuracy_retained for r in REFERENCES],
            mode="markers+text", name="published", text=[r.name for r in REFERENCES],
            textposition="top center", marker={"symbol": "star", "size": 14, "color": "#222"},
            customdata=[[r.hardware, r.source] for r in REFERENCES],
            hovertemplate="<b>%{text}</b><br>%{x:.2f}x, %{y:.1%} retained<br>measured on "
            "%{customdata[0]}<br>%{customdata[1]}<extra></extra>"))
    fig.add_vline(x=1, line={"dash": "dot", "color": "#999"})
    fig.add_hline(y=1, line={"dash": "dot", "color": "#999"})
    fig.update_layout(height=380, margin={"l": 0, "r": 0, "t": 30, "b": 0},
                      xaxis={"type": "log", "title": "speedup against the parent (x, paired)"},
                      yaxis={"title": "accuracy retained (own / parent)", "tickformat": ".0%"},
                      legend_title_text="method")
    return fig


# --------------------------------------------------------------------------- files


def runs_csv(runs: list[dict[str, Any]], batch_sizes: list[int]) -> str:
    """One row per run: every metric, and latency, throughput and paired speedup at each
    batch size as its own columns."""
    frames = [runs_frame(runs, bs) for bs in batch_sizes] or [runs_frame(runs, None)]
    per_bs = ["p50_ms", "p95_ms", "throughput_per_s", "speedup_vs_parent", "runtime"]
    out = frames[0].drop(columns=["label", *per_bs])
    for bs, frame in zip(batch_sizes, frames):
        out = out.join(frame[per_bs].add_suffix(f"_batch{bs}"))
    return out.to_csv(index=False)


_ARCHIVE_README = """{name}: a model from Compression Lab (job {job}).

Load it with Hugging Face transformers:

    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    model = AutoModelForSequenceClassification.from_pretrained("{folder}")
    tokenizer = AutoTokenizer.from_pretrained("{folder}")
{loader}"""

_LOADER_NOTE = """
This model was saved by the lab's `{loader}` method (see lab_meta.json), which changes its
layers: load it with the lab's loader instead, from the Compression Lab repository:

    from engine.toolkit.checkpoints import load_classifier, resolve
    model = load_classifier(resolve("{folder}"))
"""


def model_archive(path: str | Path, name: str) -> bytes:
    """The model's artifact directory as a zip (one folder inside), with a README_LAB.txt that
    says how to load it. Weights are stored, not deflated: safetensors barely compress."""
    root = Path(path)
    if not root.is_dir():
        raise LabError(f"{name}: its files are not on this machine ({path}); run the job again "
                       f"here to get a downloadable model")
    folder = name.replace(":", "-")
    meta = read_meta(root)
    loader = _LOADER_NOTE.format(loader=meta["loader"], folder=folder) if meta.get(
        "loader") else ""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, f"{folder}/{f.relative_to(root)}")
        zf.writestr(f"{folder}/README_LAB.txt", _ARCHIVE_README.format(
            name=name, job=meta.get("job_id", "?"), folder=folder, loader=loader))
    return buffer.getvalue()


def recipe(runs_by_id: dict[int, dict[str, Any]], job_id: int) -> dict[str, Any]:
    """The recipe that replays the chain of configs that led to `job_id`. A chain that starts
    at the default teacher starts from `model: default` rather than retraining it."""
    chain = lineage(runs_by_id, job_id)
    teacher = [i for i, run in enumerate(chain[:-1]) if run.get("alias") == "default"]
    if teacher:
        chain = chain[teacher[-1] + 1:]
    out = recipe_for(chain)
    if teacher:
        out["model"] = "default"
    return out


def recipe_yaml(runs_by_id: dict[int, dict[str, Any]], job_id: int) -> str:
    header = (f"# Compression Lab recipe: the chain of configs behind job {job_id}.\n"
              f"# Replay it with: python -m engine run recipe.yaml --wait\n")
    return header + yaml.safe_dump(recipe(runs_by_id, job_id), sort_keys=False)


# --------------------------------------------------------------------------- HTML report

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;
padding:.3em .6em;text-align:right}th{background:#f4f4f4}p.caption{color:#555}"""


def html_report(runs: list[dict[str, Any]], preds: dict[int, dict[str, list]],
                batch_size: int, price_per_hour: float,
                title: str = "Compression Lab: comparison") -> str:
    """A one-file HTML report of a comparison (plotly.js inlined once, nothing fetched from
    the network), with plain-language captions and the estimated cost per million
    inferences from the measured throughput and `price_per_hour`."""
    table, sentences = compare(runs, preds, batch_size, price_per_hour)
    frame = runs_frame(runs, batch_size)
    first = table.iloc[0]
    figures = [
        (frontier_figure(frame, "p50_ms", "accuracy", f" at batch {batch_size}"),
         f"Each point is a run: further left is faster (median latency for a batch of "
         f"{batch_size}), higher is more accurate. Coloured points joined by the line are the "
         f"runs no other run beats on both at once; grey ones are beaten by some run."),
        (_bars(table, "p50_ms", f"median latency at batch {batch_size} (ms)"),
         "Latency of each run, measured on the device named in the table; shorter is better."),
        (_bars(table, "accuracy", "test accuracy", error=True),
         "Accuracy on the held-out test split. The whisker is a 95% bootstrap interval: the "
         "middle 95% of the accuracies over 2,000 random redraws of the test examples. "
         "Whiskers that overlap a lot mean the difference may be chance; the test above says."),
    ]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from {len(runs)} runs; the "
             f"first, {html.escape(str(first['run']))}, is the baseline for deltas and ratios."
             f"</p>", "<h2>Side by side</h2>", _table_html(table),
             f"<p class='caption'>Cost per million inferences assumes a machine at "
             f"${price_per_hour:.2f} an hour kept busy at the measured throughput (batch "
             f"{batch_size}, one process); real traffic rarely fills every batch, so read it "
             f"as a floor.</p>", "<h2>In short</h2>"]
    parts += [f"<p>{html.escape(s)}</p>" for s in _headlines(table)]
    parts += ["<h2>Is the accuracy difference real?</h2>"]
    parts += [f"<p>{html.escape(s)}</p>" for s in sentences] or ["<p>One run only.</p>"]
    notes = [(run_label(r), n) for r in runs for n in why_not_faster(r)]
    if notes:
        parts.append("<h2>Why isn't it faster?</h2>")
        parts += [f"<p><b>{html.escape(who)}</b>: {html.escape(n)}</p>" for who, n in notes]
    for i, (fig, caption) in enumerate(figures):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0),
                                 config=PLOTLY_CONFIG))
        parts.append(f"<p class='caption'>{html.escape(caption)}</p>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")


def _bars(table: pd.DataFrame, column: str, title: str, error: bool = False) -> go.Figure:
    bar = go.Bar(x=table["run"], y=table[column], marker_color="#4c78a8")
    if error:
        bar.error_y = {"type": "data", "symmetric": False,
                       "array": table["ci_high"] - table[column],
                       "arrayminus": table[column] - table["ci_low"]}
    return go.Figure(bar).update_layout(height=320, yaxis_title=title,
                                        margin={"l": 0, "r": 0, "t": 20, "b": 0})


def _headlines(table: pd.DataFrame) -> list[str]:
    """One plain sentence per run against the baseline."""
    base, out = table.iloc[0], []
    for _, r in table.iloc[1:].iterrows():
        speed = f"{r.speedup_vs_first:.2f}x as fast" if pd.notna(r.speedup_vs_first) else \
            "of unmeasured speed"
        size = f"{r.smaller_than_first:.2f}x smaller" if pd.notna(r.smaller_than_first) else ""
        delta = r.accuracy_delta_pts
        acc = "no meaningful accuracy" if pd.isna(delta) else \
            f"{abs(delta):.1f} points {'less' if delta < 0 else 'more'} accuracy"
        out.append(f"{r.run} is {speed}{', ' + size if size else ''} with {acc} than "
                   f"{base.run}.")
    return out


_HEADERS = {"run": "run", "accuracy": "accuracy", "ci_low": "95% CI low",
            "ci_high": "95% CI high", "accuracy_delta_pts": "accuracy change (points)",
            "macro_f1": "macro-F1", "p50_ms": "median latency (ms)", "p95_ms": "p95 latency (ms)",
            "speedup_vs_first": "speedup vs first", "size_mb": "size (MB)",
            "smaller_than_first": "smaller than first", "throughput_per_s": "throughput (/s)",
            "cost_per_million": "$ per million", "device": "device", "dataset": "dataset"}


def _table_html(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["job"]).rename(columns=_HEADERS)
    return shown.to_html(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}",
                         escape=True)
