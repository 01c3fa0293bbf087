"""Analysis of stored runs: frames, the Pareto frontier, statistics, flips, lineage, diagnostics.

Pure functions over run dicts shaped like `storage.jobs.job_as_dict` (the `show --json`
contract; `storage.queries.runs_table` returns the same shape). Nothing here imports torch, so
the Results page can use it; scipy is imported where a test statistic needs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.toolkit.device import compute_capability

FASTER = 1.1  # a paired speedup below this is "not faster" (latency noise is a few percent)
SMALLER = 1.05  # a size ratio above this is "smaller"
QUALITY = {"accuracy": "test accuracy", "macro_f1": "macro-F1"}
COST = {"p50_ms": "median latency (ms)", "p95_ms": "p95 latency (ms)", "size_mb": "size (MB)",
        "params": "parameters"}


# --------------------------------------------------------------------------- frames


def run_label(run: dict[str, Any]) -> str:
    return f"job {run['id']} · {run['method']} · {run['output_model'] or run['model']}"


def batch_sizes(runs: list[dict[str, Any]]) -> list[int]:
    """Every batch size at which some run's latency was measured, ascending."""
    return sorted({r["batch_size"] for run in runs for r in run["metrics"].get("latency", [])})


def config_text(run: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in (run.get("config") or {}).get("data", {}).items())


FRAME_COLUMNS = ["job", "label", "method", "model", "input", "dataset", "device", "parent",
                 "accuracy", "macro_f1", "accuracy_meaningful", "size_mb", "params", "layers",
                 "heads", "seq_len", "p50_ms", "p95_ms", "throughput_per_s", "runtime",
                 "speedup_vs_parent", "size_ratio_vs_parent", "accuracy_delta_vs_parent",
                 "accuracy_retained", "config"]


def runs_frame(runs: list[dict[str, Any]], batch_size: int | None) -> pd.DataFrame:
    """One row per run, latency at `batch_size` (NaN where it was not measured). Accuracy and
    macro-F1 are NaN for random-weight presets: they are not meaningful."""
    rows = []
    for run in runs:
        m = run["metrics"]
        lat = next((r for r in m.get("latency", []) if r["batch_size"] == batch_size), {})
        meaningful = m.get("accuracy_meaningful", True) is not False
        rows.append({
            "job": run["id"], "label": run_label(run), "method": run["method"],
            "model": run["output_model"] or run["model"], "input": run["model"],
            "dataset": run["dataset"], "device": m.get("device"), "parent": run["parent_id"],
            "accuracy": m.get("accuracy") if meaningful else None,
            "macro_f1": m.get("macro_f1") if meaningful else None,
            "accuracy_meaningful": meaningful,
            "size_mb": m.get("size_mb"), "params": m.get("params"), "layers": m.get("layers"),
            "heads": m.get("heads"), "seq_len": m.get("seq_len"),
            "p50_ms": lat.get("p50_ms"), "p95_ms": lat.get("p95_ms"),
            "throughput_per_s": lat.get("throughput_per_s"), "runtime": lat.get("runtime"),
            "speedup_vs_parent": (m.get("speedup_vs_parent") or {}).get(str(batch_size)),
            "size_ratio_vs_parent": m.get("size_ratio_vs_parent"),
            "accuracy_delta_vs_parent": m.get("accuracy_delta_vs_parent") if meaningful else None,
            "accuracy_retained": m.get("accuracy_retained") if meaningful else None,
            "config": config_text(run),
        })
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    numeric = ["accuracy", "macro_f1", "size_mb", "params", "p50_ms", "p95_ms",
               "throughput_per_s", "speedup_vs_parent", "size_ratio_vs_parent",
               "accuracy_delta_vs_parent", "accuracy_retained"]
    return frame.astype({c: float for c in numeric})


def pareto_mask(cost: Sequence[float], value: Sequence[float]) -> np.ndarray:
    """True for the points no other point dominates (lower cost, higher value).

    A point is dominated when another is at least as good on both axes and better on one, so
    identical points are all kept, and of two with equal value only the cheaper one. Points with
    a missing coordinate (NaN) are never on the frontier. O(n log n): sort by cost, sweep."""
    cost, value = np.asarray(cost, dtype=float), np.asarray(value, dtype=float)
    mask = np.zeros(len(cost), dtype=bool)
    idx = np.flatnonzero(~(np.isnan(cost) | np.isnan(value)))
    order = idx[np.lexsort((-value[idx], cost[idx]))]  # cost ascending, then value descending
    best, i = -math.inf, 0
    while i < len(order):
        j = i
        while j < len(order) and cost[order[j]] == cost[order[i]]:
            j += 1
        group = order[i:j]
        top = value[group[0]]
        if top > best:  # equal value at a higher cost is dominated by the cheaper point
            mask[group[value[group] == top]] = True
            best = top
        i = j
    return mask


def job_from_selection(selection: Any) -> int | None:
    """The job id of the first clicked point in a `st.plotly_chart(on_select=...)` event, read
    from the point's customdata (the charts put the job id first)."""
    points = ((selection or {}).get("selection") or {}).get("points") or []
    for point in points:
        data = point.get("customdata")
        first = data[0] if isinstance(data, (list, tuple)) and data else data
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            return int(first)  # reference markers and lines carry no job id: skipped
    return None


# --------------------------------------------------------------------------- statistics


def bootstrap_ci(correct: Sequence[int | bool], level: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy (the mean of per-example correctness).
    The percentile method stays defined when every example is right (BCa does not)."""
    from scipy.stats import bootstrap

    data = np.asarray(correct, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    res = bootstrap((data,), np.mean, n_resamples=n_resamples, confidence_level=level,
                    method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test on paired predictions: only the examples where exactly one run is
    right carry information; under "no difference" each such example is a fair coin."""

    only_a: int  # examples A got right and B got wrong
    only_b: int
    p_value: float
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def sentence(self, a: str, b: str) -> str:
        n = self.only_a + self.only_b
        verdict = "is larger than chance" if self.significant else "is not larger than chance"
        return (f"The difference between {a} and {b} {verdict} (McNemar exact test, p = "
                f"{self.p_value:.3g}): of {n} examples where they disagree on being right, "
                f"{a} wins {self.only_a} and {b} wins {self.only_b}.")


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool],
            alpha: float = 0.05) -> McNemar:
    """Two-sided exact McNemar test (a binomial test on the discordant pairs)."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    assert a.shape == b.shape, "McNemar needs the same examples for both runs"
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(binomtest(min(only_a, only_b), n, 0.5).pvalue)
    return McNemar(only_a, only_b, p, alpha)


def paired(preds_a: dict[str, list], preds_b: dict[str, list]) -> pd.DataFrame:
    """Two runs' predictions joined on the example index (inner join), one row per example."""
    cols = ["idx", "label", "pred", "confidence"]
    a = pd.DataFrame({c: preds_a[c] for c in cols})
    b = pd.DataFrame({c: preds_b[c] for c in cols})
    return a.merge(b, on="idx", suffixes=("_a", "_b"))


def flips(preds_a: dict[str, list], preds_b: dict[str, list],
          texts: Sequence[str] | None = None,
          label_names: Sequence[str] | None = None) -> pd.DataFrame:
    """The examples whose prediction changed between run A and run B, with both confidences
    and the true label; the most confident wrong answers first."""
    both = paired(preds_a, preds_b)
    changed = both[both["pred_a"] != both["pred_b"]].copy()
    changed["right"] = np.where(changed["pred_a"] == changed["label_a"], "A",
                                np.where(changed["pred_b"] == changed["label_a"], "B", "neither"))
    changed["wrong_confidence"] = np.where(changed["right"] == "A", changed["confidence_b"],
                                           changed["confidence_a"])

    def name(i: int) -> str:
        return label_names[i] if label_names is not None and 0 <= i < len(label_names) else str(i)

    out = pd.DataFrame({
        "idx": changed["idx"],
        "text": [texts[i] if texts is not None and i < len(texts) else "" for i in changed["idx"]],
        "label": [name(i) for i in changed["label_a"]],
        "pred_a": [name(i) for i in changed["pred_a"]], "confidence_a": changed["confidence_a"],
        "pred_b": [name(i) for i in changed["pred_b"]], "confidence_b": changed["confidence_b"],
        "right": changed["right"], "wrong_confidence": changed["wrong_confidence"],
    })
    return out.sort_values("wrong_confidence", ascending=False, kind="stable").reset_index(
        drop=True)


def cost_per_million(throughput_per_s: float | None, price_per_hour: float) -> float | None:
    """Dollars per million inferences for a machine kept busy at the measured throughput."""
    if not throughput_per_s or throughput_per_s <= 0:
        return None
    return price_per_hour / (throughput_per_s * 3600.0) * 1e6


def compare(runs: list[dict[str, Any]], preds: dict[int, dict[str, list]], batch_size: int,
            price_per_hour: float) -> tuple[pd.DataFrame, list[str]]:
    """Runs side by side against the first (the baseline): metrics, deltas and ratios, a 95%
    bootstrap interval on each accuracy, the cost per million inferences, and one McNemar
    sentence per later run (when both have predictions on the same data)."""
    frame = runs_frame(runs, batch_size).set_index("job")
    base = frame.iloc[0]
    rows, sentences = [], []
    for run in runs:
        r = frame.loc[run["id"]]
        p = preds.get(run["id"]) or {}
        low = high = math.nan
        if p.get("idx") and r.accuracy_meaningful:
            low, high = bootstrap_ci(np.equal(p["label"], p["pred"]))
        rows.append({
            "job": run["id"], "run": r.label, "accuracy": r.accuracy, "ci_low": low,
            "ci_high": high, "accuracy_delta_pts": 100 * (r.accuracy - base.accuracy),
            "macro_f1": r.macro_f1, "p50_ms": r.p50_ms, "p95_ms": r.p95_ms,
            "speedup_vs_first": base.p50_ms / r.p50_ms, "size_mb": r.size_mb,
            "smaller_than_first": base.size_mb / r.size_mb, "throughput_per_s": r.throughput_per_s,
            "cost_per_million": cost_per_million(r.throughput_per_s, price_per_hour),
            "device": r.device, "dataset": r.dataset,
        })
    first, pa = runs[0], preds.get(runs[0]["id"]) or {}
    for run in runs[1:]:
        pb = preds.get(run["id"]) or {}
        both = paired(pa, pb) if pa.get("idx") and pb.get("idx") else pd.DataFrame()
        if run["dataset"] != first["dataset"] or both.empty:
            sentences.append(f"{run_label(run)} and {run_label(first)} cannot be compared "
                             f"example by example (different data, or no stored predictions).")
            continue
        test = mcnemar(both["pred_a"] == both["label_a"], both["pred_b"] == both["label_b"])
        sentences.append(test.sentence(f"job {first['id']}", f"job {run['id']}"))
    return pd.DataFrame(rows), sentences


# --------------------------------------------------------------------------- lineage


def lineage(runs_by_id: dict[int, dict[str, Any]], job_id: int) -> list[dict[str, Any]]:
    """The chain of runs that led to `job_id`, oldest first (it stops at the first ancestor
    that is not among the runs, e.g. a base encoder)."""
    chain, seen = [], set()
    current: int | None = job_id
    while current is not None and current in runs_by_id and current not in seen:
        seen.add(current)
        chain.append(runs_by_id[current])
        current = runs_by_id[current]["parent_id"]
    return chain[::-1]


def family_tree(runs_by_id: dict[int, dict[str, Any]], job_id: int,
                batch_size: int) -> pd.DataFrame:
    """The whole tree that `job_id` belongs to, depth first from its root, with cumulative
    figures against the root: speedup (product of the paired ratios along the path; the
    unpaired ratio of medians where a step has none), size ratio and accuracy."""
    root = lineage(runs_by_id, job_id)[0]
    children: dict[int, list[int]] = {}
    for run in runs_by_id.values():
        if run["parent_id"] is not None:
            children.setdefault(run["parent_id"], []).append(run["id"])

    def p50(run: dict[str, Any]) -> float | None:
        return next((r["p50_ms"] for r in run["metrics"].get("latency", [])
                     if r["batch_size"] == batch_size), None)

    root_m = root["metrics"]
    rows: list[dict[str, Any]] = []

    def visit(run: dict[str, Any], depth: int, chained: float | None) -> None:
        """`chained`: the product of paired ratios from the root, None once a step has none."""
        m = run["metrics"]
        speedup, basis = chained, "paired" if chained is not None else None
        if chained is None and p50(root) and p50(run):
            speedup, basis = p50(root) / p50(run), "unpaired"
        meaningful = m.get("accuracy_meaningful", True) is not False
        accuracy = m.get("accuracy") if meaningful else None
        rows.append({
            "step": ("\u2003\u2003" * depth + ("└ " if depth else "")) + run_label(run),
            "job": run["id"], "config": config_text(run), "selected": run["id"] == job_id,
            "cumulative_speedup": speedup, "speedup_basis": basis,
            "size_ratio": root_m["size_mb"] / m["size_mb"]
            if root_m.get("size_mb") and m.get("size_mb") else None,
            "accuracy": accuracy,
            "accuracy_vs_root": accuracy - root_m["accuracy"]
            if accuracy is not None and root_m.get("accuracy") is not None else None,
        })
        for child_id in sorted(children.get(run["id"], [])):
            child = runs_by_id[child_id]
            step = (child["metrics"].get("speedup_vs_parent") or {}).get(str(batch_size))
            visit(child, depth + 1, chained * step if chained is not None and step else None)

    visit(root, 0, 1.0)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- diagnostics

_INT8_CPU = {"int8-dynamic", "int8-static"}  # torch's int8 activation kernels: fbgemm/oneDNN
LAUNCH_BOUND_MS = 5.0  # a GPU forward this short is mostly kernel launches, not arithmetic
_WEIGHT_ONLY = {"int8-weight-only", "int4-weight-only"}


def why_not_faster(run: dict[str, Any]) -> list[str]:
    """For a run that got smaller than its parent but not faster (at some batch size), the
    causes the lab can see, in plain words; empty when the run is faster or not smaller."""
    m, cfg = run["metrics"], (run.get("config") or {}).get("data", {})
    speedups = {int(k): v for k, v in (m.get("speedup_vs_parent") or {}).items()
                if v is not None}
    slow = sorted(bs for bs, v in speedups.items() if v < FASTER)
    sparsity = m.get("sparsity") or 0
    smaller = (m.get("size_ratio_vs_parent") or 1) >= SMALLER or sparsity > 0 or \
        run["method"] in ("prune", "quantize", "distill")
    if not slow or not smaller:
        return []
    device = str(m.get("device") or "")
    scheme, kind = cfg.get("scheme") or m.get("scheme"), cfg.get("kind") or m.get("kind")
    runtime = next((r.get("runtime") for r in m.get("latency", [])), "eager")
    # The method's own note (the runner keeps it only when the run was not faster) knows its
    # scheme or sparsity best; the lab's own reading of the config is the fallback.
    notes = [m["why_not_faster"]] if m.get("why_not_faster") else _config_causes(
        scheme, kind, sparsity, device, runtime)
    fast = [bs for bs, v in speedups.items() if v >= FASTER]
    # the parent timed under the run's own runtime (a compiled run has eager parent rows too)
    parent_ms = {r["batch_size"]: r["p50_ms"] for r in m.get("parent_latency", [])
                 if r.get("runtime", "eager") == runtime}
    launch_bound = [bs for bs in slow if device.startswith("cuda")
                    and parent_ms.get(bs, math.inf) < LAUNCH_BOUND_MS]
    if fast and min(slow) < min(fast):
        notes.append(f"A batch size where launch overhead dominates: at batch {min(slow)} the "
                     f"speedup is {speedups[min(slow)]:.2f}x but at batch {max(fast)} it is "
                     f"{speedups[max(fast)]:.2f}x. A small batch does too little arithmetic "
                     f"for compression to show; fixed per-call costs (Python, kernel launches) "
                     f"stay the same.")
    elif launch_bound:
        bs = launch_bound[0]
        notes.append(f"A batch size where launch overhead dominates: at batch {bs} the parent "
                     f"takes only {parent_ms[bs]:.1f} ms on the GPU, mostly the fixed cost of "
                     f"launching kernels; compression shrinks the arithmetic, not the launches. "
                     f"Measure a larger batch.")
    if not notes:
        notes.append(f"Smaller but not faster at batch {', '.join(map(str, slow))}; the lab "
                     f"sees no known cause (method {run['method']}, {config_text(run)}).")
    return notes


def _config_causes(scheme: str | None, kind: str | None, sparsity: float, device: str,
                   runtime: str | None) -> list[str]:
    """Why a scheme or a kind of sparsity does not speed up this device, from the config."""
    on_gpu, notes = device.startswith("cuda"), []
    if kind == "unstructured" or (sparsity and kind not in ("heads", "layers", "2:4")):
        notes.append("Unstructured sparsity on dense kernels: the pruned weights are zeros kept "
                     "in dense matrices, and a dense matrix multiply spends the same time on a "
                     "zero as on any number. Only a sparse runtime turns those zeros into time.")
    if kind == "2:4" and not (on_gpu and (compute_capability(device) or 0) >= 80):
        notes.append(f"2:4 sparsity is accelerated only by the sparse tensor cores of NVIDIA "
                     f"Ampere or newer GPUs; on {device or 'this device'} it runs as a dense "
                     f"matrix with zeros in it.")
    if scheme == "int8-static" and on_gpu:
        notes.append("An int8 scheme on a device without its kernels: static int8 runs on the "
                     "CPU's int8 kernels (fbgemm/oneDNN); on the GPU it saves memory, not time.")
    if scheme in _WEIGHT_ONLY and not on_gpu:
        notes.append(f"An int8 scheme on a device without its kernels: {scheme} stores small "
                     f"weights but the CPU has no fused kernel for it, so each matrix multiply "
                     f"dequantizes first and runs in float (measured here: 277 ms against 259 "
                     f"ms for fp32). It pays off on GPUs, where loading weights is the cost.")
    if scheme in ("fp16", "bf16") and not on_gpu:
        notes.append(f"{scheme} on a CPU without half-precision matrix units (AVX512-BF16/AMX) "
                     f"is converted back to fp32 for the arithmetic: smaller, not faster.")
    if scheme == "fp8" and not (on_gpu and (compute_capability(device) or 0) >= 89):
        notes.append("fp8 matrix multiplies need an NVIDIA Ada or Hopper GPU (sm89 or newer).")
    if scheme in _INT8_CPU and not on_gpu and runtime == "eager" and not notes:
        notes.append("In eager mode each int8 matrix multiply is wrapped in separate quantize "
                     "and dequantize steps; compiled (torch.compile) they fuse, which is where "
                     "most of the int8 gain comes from on this CPU.")
    return notes
