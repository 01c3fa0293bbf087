"""Runs side by side against the first (the baseline): accuracy with its interval, the
accuracy DIFFERENCE with a paired interval, a like-with-like speedup that says how it was
measured, the cost per million inferences, and McNemar's test per later run."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from engine.reports.runs import (
    FASTEST,
    RUNTIMES,
    model_names,
    own_rows,
    paired_speedup,
    retime_ratio,
    run_label,
    runs_frame,
    speedup_text,
    unpaired_ratio,
)
from engine.reports.stats import bootstrap_ci, cost_per_million, difference_ci, mcnemar, paired

PAIRED, RETIME, UNPAIRED = "paired", "retime", "unpaired"
BASIS_TEXT = {PAIRED: "paired (the job timed itself against this parent, one process)",
              RETIME: "paired (a retime job timed both in one process)",
              UNPAIRED: "unpaired (timed in different processes)"}


def common_runtime(runs: list[dict[str, Any]], batch_size: int | None) -> str:
    """The first runtime (compiled, eager, onnxruntime) every run was timed under at
    `batch_size`; eager when there is none."""
    for rt in ("compiled", "eager", *RUNTIMES[2:]):
        if runs and all(own_rows(r, batch_size, rt) for r in runs):
            return rt
    return "eager"


def speedup_against(base: dict[str, Any], run: dict[str, Any], everything: list[dict[str, Any]],
                    batch_size: int | None, runtime: str
                    ) -> tuple[float | None, tuple[float, float] | None, str | None]:
    """How much faster `run` is than `base` under `runtime`, preferring a paired measurement:
    the run's own ratio against `base` as its parent, then a retime job of the two, then the
    unpaired ratio of same-setting medians. (x, interval or None, basis) or (None, None, None)."""
    if run["id"] == base["id"]:
        return 1.0, None, None
    if run["parent_id"] == base["id"]:
        x, ci = paired_speedup(run, batch_size, runtime)
        if x:
            return x, ci, PAIRED
    if base["parent_id"] == run["id"]:
        x, ci = paired_speedup(base, batch_size, runtime)
        if x:
            return 1 / x, (1 / ci[1], 1 / ci[0]) if ci else None, PAIRED
    for model in model_names(run):
        for against in model_names(base):
            x, ci, _ = retime_ratio(everything, model, against, batch_size, runtime)
            if x:
                return x, ci, RETIME
    x = unpaired_ratio(base, run, batch_size, runtime)
    return (x, None, UNPAIRED) if x else (None, None, None)


def compare(runs: list[dict[str, Any]], preds: dict[int, dict[str, list]], batch_size: int,
            price_per_hour: float, runtime: str | None = None,
            everything: list[dict[str, Any]] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The comparison table (one row per run, the first is the baseline) and one McNemar
    sentence per later run. Latency and speedup are under one `runtime` for every run (by
    default the first one all were timed under); `everything` is searched for retime jobs."""
    if not runtime or runtime == FASTEST:  # a ratio needs one runtime for both runs
        runtime = common_runtime(runs, batch_size)
    frame = runs_frame(runs, batch_size, runtime).set_index("job")
    base_run, base = runs[0], frame.loc[runs[0]["id"]]
    pa = preds.get(base_run["id"]) or {}
    rows = []
    for run in runs:
        r, p = frame.loc[run["id"]], preds.get(run["id"]) or {}
        low = high = math.nan
        if p.get("idx") and r.accuracy_meaningful:
            low, high = bootstrap_ci(np.equal(p["label"], p["pred"]))
        d_low = d_high = math.nan
        both = paired(pa, p) if pa.get("idx") and p.get("idx") and \
            run["dataset"] == base_run["dataset"] else pd.DataFrame()
        if len(both) and r.accuracy_meaningful and run["id"] != base_run["id"]:
            _, d_low, d_high = (100 * v for v in difference_ci(
                both["pred_a"] == both["label_a"], both["pred_b"] == both["label_b"]))
        x, ci, basis = speedup_against(base_run, run, everything or runs, batch_size, runtime)
        rows.append({
            "job": run["id"], "run": r.label, "runtime": runtime, "accuracy": r.accuracy,
            "ci_low": low, "ci_high": high,
            "accuracy_delta_pts": 100 * (r.accuracy - base.accuracy),
            "delta_ci_low_pts": d_low, "delta_ci_high_pts": d_high,
            "macro_f1": r.macro_f1, "p50_ms": r.p50_ms,
            "p95_ms": r.p95_ms, "speedup_vs_first": x,
            "speedup_ci_low": ci[0] if ci else math.nan,
            "speedup_ci_high": ci[1] if ci else math.nan,
            "speedup_basis": basis, "speedup": speedup_text(x, ci) + (f" {basis}" if basis
                                                                        else ""),
            "size_mb": r.size_mb, "smaller_than_first": base.size_mb / r.size_mb,
            "throughput_per_s": r.throughput_per_s,
            "cost_per_million": cost_per_million(r.throughput_per_s, price_per_hour),
            "timing_unreliable": r.timing_unreliable, "device": r.device, "dataset": r.dataset,
        })
    return pd.DataFrame(rows), mcnemar_sentences(runs, preds)


def mcnemar_sentences(runs: list[dict[str, Any]], preds: dict[int, dict[str, list]]) -> list[str]:
    """McNemar's test of each later run against the first, in plain words."""
    first, pa, out = runs[0], preds.get(runs[0]["id"]) or {}, []
    for run in runs[1:]:
        pb = preds.get(run["id"]) or {}
        both = paired(pa, pb) if pa.get("idx") and pb.get("idx") else pd.DataFrame()
        if run["dataset"] != first["dataset"] or both.empty:
            out.append(f"{run_label(run)} and {run_label(first)} cannot be compared "
                       f"example by example (different data, or no stored predictions).")
            continue
        test = mcnemar(both["pred_a"] == both["label_a"], both["pred_b"] == both["label_b"])
        out.append(test.sentence(f"job {first['id']}", f"job {run['id']}"))
    return out


def pairs(job_ids: list[int]) -> list[tuple[int, int]]:
    """Every pair of the chosen runs, the baseline's pairs first."""
    return list(itertools.combinations(job_ids, 2))
