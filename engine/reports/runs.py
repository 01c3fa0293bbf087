"""Stored runs as frames: labels, latency rows matched like with like, paired speedups with
their intervals, the Pareto frontier and chart clicks.

Every function takes run dicts shaped like `storage.jobs.job_as_dict` (the `show --json`
contract; `storage.queries.runs_table` returns the same shape). A latency ratio is only ever
taken between rows of the same runtime, batch size, sequence length, threads and device
(`same_setting`). No torch here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

QUALITY = {"accuracy": "test accuracy", "macro_f1": "macro-F1"}
COST = {"p50_ms": "median latency (ms)", "p95_ms": "p95 latency (ms)", "size_mb": "size (MB)",
        "params": "parameters"}
RUNTIMES = ("eager", "compiled", "onnxruntime")
FASTEST = "fastest"  # the runtime choice "each model at its fastest runtime"
RUNTIME_CHOICES = {"eager": "eager (PyTorch)", "compiled": "compiled (torch.compile)",
                   "onnxruntime": "ONNX Runtime", FASTEST: "each model at its fastest runtime"}
SETTING = ("batch_size", "seq_len", "threads", "device", "runtime")  # what makes rows comparable


# --------------------------------------------------------------------------- labels


def run_label(run: dict[str, Any]) -> str:
    return f"job {run['id']} · {run['method']} · {run['output_model'] or run['model']}"


def config_text(run: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in (run.get("config") or {}).get("data", {}).items())


def batch_sizes(runs: list[dict[str, Any]]) -> list[int]:
    """Every batch size at which some run's latency was measured, ascending."""
    return sorted({r["batch_size"] for run in runs for r in run["metrics"].get("latency", [])})


def speedup_text(x: float | None, ci: Sequence[float] | None = None) -> str:
    """'3.10x (2.90-3.30)': a speedup with its 95% interval when there is one; '-' if none."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if ci is not None and len(ci) == 2 and all(v is not None and not math.isnan(v) for v in ci):
        return f"{x:.2f}x ({ci[0]:.2f}-{ci[1]:.2f})"
    return f"{x:.2f}x"


# --------------------------------------------------------------------------- latency rows


def runtime_of(row: dict[str, Any]) -> str:
    """A latency row's runtime; rows stored before runtimes were recorded ran eager."""
    return row.get("runtime") or "eager"


def own_rows(run: dict[str, Any], batch_size: int | None,
             runtime: str | None = None) -> list[dict[str, Any]]:
    """The run's own latency rows at `batch_size` (under `runtime` when given)."""
    return [r for r in run["metrics"].get("latency", []) if r["batch_size"] == batch_size
            and (runtime is None or runtime_of(r) == runtime)]


def runtimes(runs: list[dict[str, Any]], batch_size: int | None = None) -> list[str]:
    """The runtimes some run was timed under (at `batch_size` when given), in RUNTIMES order."""
    seen = {runtime_of(r) for run in runs for r in run["metrics"].get("latency", [])
            if batch_size is None or r["batch_size"] == batch_size}
    return [rt for rt in RUNTIMES if rt in seen] + sorted(seen - set(RUNTIMES))


def latency_row(run: dict[str, Any], batch_size: int | None,
                runtime: str) -> dict[str, Any] | None:
    """The run's own row at `batch_size` under `runtime`; with runtime FASTEST the row with the
    lowest median (its own runtime is in the row)."""
    rows = own_rows(run, batch_size, None if runtime == FASTEST else runtime)
    return min(rows, key=lambda r: r["p50_ms"]) if rows else None


def same_setting(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two latency rows may be divided: same runtime, batch, length, threads, device
    (a field missing on both counts as equal)."""
    return runtime_of(a) == runtime_of(b) and all(a.get(k) == b.get(k) for k in SETTING
                                                  if k != "runtime")


def primary_runtime(run: dict[str, Any]) -> str:
    """The runtime the run's own `speedup_vs_parent` was measured under."""
    m = run["metrics"]
    if m.get("parent_runtime"):
        return m["parent_runtime"]
    own = {runtime_of(r) for r in m.get("latency", [])}
    return own.pop() if len(own) == 1 else "eager"


def paired_speedup(run: dict[str, Any], batch_size: int | None,
                   runtime: str) -> tuple[float | None, tuple[float, float] | None]:
    """The run's paired speedup against its parent at `batch_size` under `runtime`, with its
    95% interval (None where it was not stored: older runs). Never a ratio of another runtime."""
    m, key = run["metrics"], str(batch_size)
    by_rt = (m.get("speedup_by_runtime") or {}).get(runtime)
    if by_rt is not None:
        ci = ((m.get("speedup_ci_by_runtime") or {}).get(runtime) or {}).get(key)
        return by_rt.get(key), tuple(ci) if ci else None
    if primary_runtime(run) == runtime and (m.get("speedup_vs_parent") or {}).get(key):
        ci = (m.get("speedup_vs_parent_ci") or {}).get(key)
        return m["speedup_vs_parent"][key], tuple(ci) if ci else None
    return None, None


def unpaired_ratio(base: dict[str, Any], run: dict[str, Any], batch_size: int | None,
                   runtime: str) -> float | None:
    """base p50 / run p50 from rows of the same setting (timed in different processes)."""
    for a in own_rows(base, batch_size, runtime):
        for b in own_rows(run, batch_size, runtime):
            if same_setting(a, b) and b["p50_ms"]:
                return a["p50_ms"] / b["p50_ms"]
    return None


def retime_ratio(runs: list[dict[str, Any]], model: str, against: str, batch_size: int | None,
                 runtime: str) -> tuple[float | None, tuple[float, float] | None, int | None]:
    """A stored retime job's paired speedup of `model` against `against` (either order: the
    ratio is inverted for the other), with its interval and the retime job's id."""
    for run in sorted(runs, key=lambda r: -r["id"]):  # the newest measurement wins
        if run["method"] != "retime":
            continue
        other = str(((run.get("config") or {}).get("data") or {}).get("against"))
        x, ci = paired_speedup(run, batch_size, runtime)
        if x is None:
            continue
        if (run["model"], other) == (model, against):
            return x, ci, run["id"]
        if (run["model"], other) == (against, model):
            return 1 / x, (1 / ci[1], 1 / ci[0]) if ci else None, run["id"]
    return None, None, None


def model_names(run: dict[str, Any]) -> set[str]:
    """Names by which other jobs may refer to the run's model (job:N, its alias)."""
    return {n for n in (run.get("output_model"), run.get("alias")) if n} or {run["model"]}


def default_runtime(runs: list[dict[str, Any]], batch_size: int | None) -> str:
    """The runtime Results opens on at `batch_size`: one that every timed run was timed under
    (like with like), and of those the one the starting models (runs whose parent is not
    among `runs`) are fastest under, so every ratio is against the strongest baseline this
    machine measured. On a CPU that is usually compiled: eager would open a demo on int8
    "slower than its parent" (0.7x here), a runtime nobody would ship int8 on. With no
    runtime common to every run: each model at its fastest (marked per point)."""
    timed = [r for r in runs if own_rows(r, batch_size)]
    if not timed:
        return "eager"
    common = [rt for rt in runtimes(timed, batch_size)
              if all(own_rows(r, batch_size, rt) for r in timed)]
    if not common:
        return FASTEST
    ids = {r["id"] for r in timed}
    starts = [r for r in timed if r.get("parent_id") not in ids] or timed

    def typical_ms(rt: str) -> float:
        return float(np.median([min(row["p50_ms"] for row in own_rows(r, batch_size, rt))
                                for r in starts]))

    return min(common, key=typical_ms)  # ties: RUNTIMES order (eager first)


# --------------------------------------------------------------------------- frames

FRAME_COLUMNS = ["job", "label", "method", "model", "input", "dataset", "device", "parent",
                 "accuracy", "macro_f1", "accuracy_meaningful", "size_mb", "params", "layers",
                 "heads", "seq_len", "runtime", "p50_ms", "p95_ms", "iqr_ms", "throughput_per_s",
                 "speedup_vs_parent", "speedup_ci_low", "speedup_ci_high", "speedup",
                 "size_ratio_vs_parent", "accuracy_delta_vs_parent", "accuracy_retained",
                 "timing_unreliable", "config"]
NUMERIC = ["accuracy", "macro_f1", "size_mb", "params", "p50_ms", "p95_ms", "iqr_ms",
           "throughput_per_s", "speedup_vs_parent", "speedup_ci_low", "speedup_ci_high",
           "size_ratio_vs_parent", "accuracy_delta_vs_parent", "accuracy_retained"]


def runs_frame(runs: list[dict[str, Any]], batch_size: int | None,
               runtime: str = FASTEST) -> pd.DataFrame:
    """One row per run, its latency at `batch_size` under `runtime` (eager, compiled,
    onnxruntime, or FASTEST: each run's quickest; the `runtime` column says which) and its
    paired speedup against the parent under that same runtime (NaN where none was measured).
    Accuracy and macro-F1 are NaN for random-weight presets: they are not meaningful."""
    rows = []
    for run in runs:
        m = run["metrics"]
        lat = latency_row(run, batch_size, runtime) or {}
        rt = runtime_of(lat) if lat else (None if runtime == FASTEST else runtime)
        x, ci = paired_speedup(run, batch_size, rt) if rt else (None, None)
        meaningful = m.get("accuracy_meaningful", True) is not False
        rows.append({
            "job": run["id"], "label": run_label(run), "method": run["method"],
            "model": run["output_model"] or run["model"], "input": run["model"],
            "dataset": run["dataset"], "device": m.get("device"), "parent": run["parent_id"],
            "accuracy": m.get("accuracy") if meaningful else None,
            "macro_f1": m.get("macro_f1") if meaningful else None,
            "accuracy_meaningful": meaningful,
            "size_mb": m.get("size_mb"), "params": m.get("params"), "layers": m.get("layers"),
            "heads": m.get("heads"), "seq_len": m.get("seq_len"), "runtime": rt,
            "p50_ms": lat.get("p50_ms"), "p95_ms": lat.get("p95_ms"), "iqr_ms": lat.get("iqr_ms"),
            "throughput_per_s": lat.get("throughput_per_s"),
            "speedup_vs_parent": x, "speedup_ci_low": ci[0] if ci else None,
            "speedup_ci_high": ci[1] if ci else None,
            "speedup": f"{speedup_text(x, ci)} paired, {rt}" if x else "-",
            "size_ratio_vs_parent": m.get("size_ratio_vs_parent"),
            "accuracy_delta_vs_parent": m.get("accuracy_delta_vs_parent") if meaningful else None,
            "accuracy_retained": m.get("accuracy_retained") if meaningful else None,
            "timing_unreliable": m.get("timing_unreliable") or None,
            "config": config_text(run),
        })
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    return frame.astype({c: float for c in NUMERIC})


# --------------------------------------------------------------------------- frontier, clicks


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


def runtime_table(run: dict[str, Any], batch_size: int | None) -> pd.DataFrame:
    """The run under each runtime it was timed under at `batch_size`: median latency and the
    paired speedup against its parent under that same runtime, fastest first."""
    rows = []
    for row in sorted(own_rows(run, batch_size), key=lambda r: r["p50_ms"]):
        x, ci = paired_speedup(run, batch_size, runtime_of(row))
        rows.append({"runtime": runtime_of(row), "p50_ms": row["p50_ms"],
                     "iqr_ms": row.get("iqr_ms"), "threads": row.get("threads"),
                     "speedup_vs_parent": speedup_text(x, ci) + (" paired" if x else "")})
    return pd.DataFrame(rows, columns=["runtime", "p50_ms", "iqr_ms", "threads",
                                       "speedup_vs_parent"])
