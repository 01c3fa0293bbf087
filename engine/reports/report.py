"""The offline HTML report of a comparison: one file, plotly.js inlined once, nothing fetched
from the network; the table, plain sentences, McNemar's test, why runs are not faster, and
charts whose axes and run names can be read."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from engine.reports.compare import BASIS_TEXT, compare
from engine.reports.diagnosis import why_not_faster
from engine.reports.figures import PLOTLY_CONFIG, bars_figure, frontier_figure
from engine.reports.runs import run_label, runs_frame

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;
padding:.3em .6em;text-align:right}th{background:#f4f4f4}p.caption{color:#555}"""

HEADERS = {"run": "run", "runtime": "runtime", "accuracy": "accuracy",
           "ci_low": "accuracy 95% CI low", "ci_high": "accuracy 95% CI high",
           "accuracy_delta_pts": "accuracy change (points)",
           "delta_ci_low_pts": "change 95% CI low (points)",
           "delta_ci_high_pts": "change 95% CI high (points)", "macro_f1": "macro-F1",
           "p50_ms": "median latency (ms)", "p95_ms": "p95 latency (ms)",
           "speedup": "speedup vs first", "size_mb": "size (MB)",
           "smaller_than_first": "smaller than first (x)", "throughput_per_s": "throughput (/s)",
           "cost_per_million": "$ per million", "timing_unreliable": "timing unreliable",
           "device": "device", "dataset": "dataset"}
DECIMALS = {"accuracy": 3, "ci_low": 3, "ci_high": 3, "accuracy_delta_pts": 1,
            "delta_ci_low_pts": 1, "delta_ci_high_pts": 1, "macro_f1": 3, "p50_ms": 1,
            "p95_ms": 1, "size_mb": 1, "smaller_than_first": 2, "throughput_per_s": 0,
            "cost_per_million": 3}


def html_report(runs: list[dict[str, Any]], preds: dict[int, dict[str, list]],
                batch_size: int, price_per_hour: float,
                title: str = "Compression Lab: comparison", runtime: str | None = None,
                everything: list[dict[str, Any]] | None = None) -> str:
    """A one-file HTML report of a comparison, every latency and ratio under one runtime,
    with plain-language captions and the estimated cost per million inferences from the
    measured throughput and `price_per_hour` ($)."""
    table, sentences = compare(runs, preds, batch_size, price_per_hour, runtime, everything)
    rt = table["runtime"].iloc[0]
    frame = runs_frame(runs, batch_size, rt)
    names = list(table["run"])
    figures = [
        (frontier_figure(frame, "p50_ms", "accuracy", f" at batch {batch_size}, {rt}"),
         f"Each point is a run: further left is faster (median latency for a batch of "
         f"{batch_size}, runtime {rt}), higher is more accurate. Coloured points joined by the "
         f"line are the runs no other run beats on both at once; grey ones are beaten by some "
         f"run; runs whose timing is unreliable are left off."),
        (bars_figure(names, table["p50_ms"], f"median latency at batch {batch_size}, {rt} (ms)"),
         "Latency of each run, measured on the device named in the table; shorter is better."),
        (bars_figure(names, table["accuracy"], "test accuracy", table["ci_low"],
                     table["ci_high"], ".3f"),
         "Accuracy on the held-out test split. The whisker is a 95% bootstrap interval: the "
         "middle 95% of the accuracies over 2,000 random redraws of the test examples. The "
         "interval on the difference (in the table) answers whether one run is better."),
    ]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from {len(runs)} runs; the "
             f"first, {html.escape(str(names[0]))}, is the baseline for deltas and ratios. "
             f"Every latency and speedup is under runtime {html.escape(rt)} at batch "
             f"{batch_size}.</p>", "<h2>Side by side</h2>", table_html(table),
             f"<p class='caption'>Cost per million inferences assumes a machine at "
             f"${price_per_hour:.2f} an hour kept busy at the measured throughput (batch "
             f"{batch_size}, one process); real traffic rarely fills every batch, so read it "
             f"as a floor. A speedup marked unpaired compares runs timed in different "
             f"processes.</p>", "<h2>In short</h2>"]
    parts += [f"<p>{html.escape(s)}</p>" for s in headlines(table)]
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


def headlines(table: pd.DataFrame) -> list[str]:
    """One plain sentence per run against the baseline, the speedup like with like (one
    runtime) and saying whether it is paired."""
    base, out = table.iloc[0], []
    for _, r in table.iloc[1:].iterrows():
        speed = "of unmeasured speed (no latency under the same runtime and setting)"
        if pd.notna(r.speedup_vs_first):
            speed = (f"{r.speedup} as fast under {r.runtime} "
                     f"({BASIS_TEXT.get(r.speedup_basis, r.speedup_basis)})")
        size = f"{r.smaller_than_first:.2f}x smaller" if pd.notna(r.smaller_than_first) else ""
        delta = r.accuracy_delta_pts
        acc = "no meaningful accuracy" if pd.isna(delta) else \
            f"{abs(delta):.1f} points {'less' if delta < 0 else 'more'} accuracy"
        if pd.notna(r.delta_ci_low_pts):
            acc += f" (95% interval of the change {r.delta_ci_low_pts:+.1f} to " \
                   f"{r.delta_ci_high_pts:+.1f} points)"
        out.append(f"{r.run} is {speed}{', ' + size if size else ''}, with {acc} than "
                   f"{base.run}.")
    return out


def table_html(table: pd.DataFrame) -> str:
    """The comparison table as HTML, numbers rounded per column, text escaped."""
    shown = table[[c for c in HEADERS if c in table.columns]].copy()
    for column, decimals in DECIMALS.items():
        shown[column] = shown[column].map(lambda v, d=decimals: "-" if pd.isna(v)
                                          else f"{v:,.{d}f}")
    return shown.rename(columns=HEADERS).to_html(index=False, na_rep="-", escape=True)
