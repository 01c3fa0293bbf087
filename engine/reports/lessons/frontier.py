"""Lesson 4, chaining and the frontier: every model made from the teacher priced along its
chain, the batch sizes to price at, the pick under a latency budget, the takeaways."""

from __future__ import annotations

import math
from statistics import median
from typing import Any

import pandas as pd

from engine.reports.lessons.catalogue import TEACHER
from engine.reports.lessons.matching import done
from engine.reports.lessons.wording import _x, where
from engine.reports.runs import paired_speedup, pareto_mask, runtime_of


def _short(run: dict[str, Any]) -> str:
    data = (run.get("config") or {}).get("data") or {}
    if run["method"] == "quantize":
        return data.get("scheme", "quantize") + (" + embeddings" if data.get("embeddings")
                                                 else "")
    if run["method"] == "prune":
        return f"prune {data.get('kind', '')} {float(data.get('amount', 0)):.0%}"
    if run["method"] == "distill":
        return f"distill to {data.get('student_layers')} layers"
    return run["method"]


def chain(run: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The run's chain down to the teacher, first step first, every step among `by_id` (one
    provenance); None when it does not reach the teacher that way."""
    steps = [run]
    while steps[-1]["model"] != TEACHER:
        parent = by_id.get(steps[-1].get("parent_id"))
        if parent is None or len(steps) > 20:
            return None
        if parent.get("alias") == TEACHER:  # the teacher named by its job's output
            break
        steps.append(parent)
    return steps[::-1]


def _first_steps(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r["model"] == TEACHER and r["status"] == "done"
            and r["metrics"].get("parent_latency")]


def reference_length(runs: list[dict[str, Any]]) -> int | None:
    """The evaluation length (tokens) most first steps timed the teacher at: lesson 4 prices
    every chain at this one length."""
    lengths = [r["metrics"].get("seq_len") for r in _first_steps(runs)]
    lengths = [n for n in lengths if n]
    return max(set(lengths), key=lengths.count) if lengths else None


def teacher_ms(runs: list[dict[str, Any]], batch_size: int, seq_len: int) -> dict[str, float]:
    """{runtime: the teacher's median latency in ms at `batch_size` and `seq_len`}: the median
    over every first step's paired timing of its parent, the teacher, in `runs`."""
    seen: dict[str, list[float]] = {}
    for r in _first_steps(runs):
        for row in r["metrics"]["parent_latency"]:
            if row["batch_size"] == batch_size and row.get("seq_len") == seq_len:
                seen.setdefault(runtime_of(row), []).append(row["p50_ms"])
    return {rt: median(v) for rt, v in seen.items()}


def frontier_rows(runs: list[dict[str, Any]], batch_size: int) -> pd.DataFrame:
    """Every done model made from the teacher in `runs` (one provenance), with its latency at
    `batch_size` and the reference length: the teacher's (`teacher_ms`) divided by the
    product of the paired speedups along its chain, under each runtime every step and the
    teacher were timed in; the fastest runtime is kept. {job, label, accuracy, latency_ms,
    speedup, runtime}; the teacher is the row with job None. A reused job is its original's
    point, not a second one."""
    by_id = {r["id"]: r for r in runs if r["status"] == "done"}
    length = reference_length(runs)
    base = teacher_ms(runs, batch_size, length) if length else {}
    rows, teacher_acc = [], None
    for run in by_id.values():
        m = run["metrics"]
        if m.get("accuracy") is None or not m.get("speedup_vs_parent") or \
                m.get("accuracy_meaningful") is False or run.get("reused_from") in by_id:
            continue
        steps = chain(run, by_id)
        if steps is None or any(s["metrics"].get("seq_len") != length for s in steps):
            continue
        first = steps[0]["metrics"]
        if teacher_acc is None and first.get("accuracy_delta_vs_parent") is not None:
            teacher_acc = first["accuracy"] - first["accuracy_delta_vs_parent"]
        best = None
        for rt, ms in base.items():
            ratios = [paired_speedup(s, batch_size, rt)[0] for s in steps]
            if all(ratios):
                x = math.prod(ratios)
                if best is None or ms / x < best[0]:
                    best = (ms / x, x, rt)
        if best is not None:
            rows.append({"job": run["id"], "label": " → ".join(_short(s) for s in steps),
                         "accuracy": m["accuracy"], "latency_ms": best[0], "speedup": best[1],
                         "runtime": best[2]})
    if base and teacher_acc is not None:
        rt = min(base, key=base.get)
        rows.append({"job": None, "label": "teacher", "accuracy": teacher_acc,
                     "latency_ms": base[rt], "speedup": 1.0, "runtime": rt})
    return pd.DataFrame(rows, columns=["job", "label", "accuracy", "latency_ms", "speedup",
                                       "runtime"]).sort_values("latency_ms", ignore_index=True)


def pick(rows: pd.DataFrame, budget_ms: float) -> pd.Series | None:
    """The most accurate model within `budget_ms` (the faster of equals), or None."""
    fits = rows[rows["latency_ms"] <= budget_ms]
    if not len(fits):
        return None
    return fits.sort_values(["accuracy", "latency_ms"], ascending=[False, True]).iloc[0]


def frontier_takeaways(rows: pd.DataFrame, budget_ms: float, batch_size: int,
                       found: dict[str, list[dict[str, Any]]], origin: str | None) -> list[str]:
    if not len(rows):
        return []
    out = []
    choice = pick(rows, budget_ms)
    teacher = rows[rows["job"].isna()]
    ref = teacher["accuracy"].iloc[0] if len(teacher) else None
    is_teacher = choice is not None and pd.isna(choice["job"])
    if choice is None:
        fastest = rows.iloc[0]
        out.append(f"Nothing measured fits {budget_ms:.1f} ms at batch {batch_size}: the "
                   f"fastest model, {fastest['label']}, takes about "
                   f"{fastest['latency_ms']:.1f} ms.")
    else:
        vs = (f" ({100 * (choice['accuracy'] - ref):+.1f} points against the teacher)"
              if ref is not None and not is_teacher else "")
        job = "" if is_teacher else f" (job {int(choice['job'])})"
        out.append(f"{where(origin)}, for {budget_ms:.1f} ms per batch of {batch_size}, ship "
                   f"**{choice['label']}**{job}: {choice['accuracy']:.1%} accuracy{vs}, about "
                   f"{choice['latency_ms']:.1f} ms ({_x(choice['speedup'])} the teacher's "
                   f"speed, {choice['runtime']}, from paired ratios along its chain).")
    quantized = done(found, "student_int8")
    student = next((r for r in found.get("student", []) if quantized is not None
                    and r["id"] == quantized.get("parent_id")), None)  # its own student
    chained = rows[rows["job"] == quantized["id"]] if quantized is not None else rows[:0]
    if student is not None and len(chained):
        rt = chained["runtime"].iloc[0]  # both ratios under the runtime the chain was priced in
        a, b = (paired_speedup(r, batch_size, rt)[0] for r in (student, quantized))
        if a and b:
            out.append(f"Chaining multiplies: the 3-layer student was {_x(a)} faster than the "
                       f"teacher and int8 made it {_x(b)} faster again, about {_x(a * b)} in "
                       f"all ({rt}, paired at each step), at "
                       f"{quantized['metrics']['accuracy']:.1%} accuracy.")
    on = rows[frontier_mask(rows)]
    out.append(f"{len(on)} of {len(rows)} models are on the frontier (no other is both faster "
               f"and more accurate): {', '.join(on['label'])}.")
    return out


def frontier_mask(rows: pd.DataFrame) -> pd.Series:
    """True for the rows no other row beats on both latency and accuracy."""
    return pd.Series(pareto_mask(rows["latency_ms"], rows["accuracy"]), index=rows.index)


def frontier_batches(runs: list[dict[str, Any]]) -> list[int]:
    """Batch sizes at which some first step timed the teacher (lesson 4's choices)."""
    return sorted({row["batch_size"] for r in _first_steps(runs)
                   for row in r["metrics"]["parent_latency"]})
