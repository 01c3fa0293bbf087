"""Lesson 1, quantization: the paired speedups to chart (eager and compiled, and what
compiling alone gives the teacher), the embeddings' share of the file, the takeaways."""

from __future__ import annotations

from typing import Any

import pandas as pd

from engine.reports.lessons.catalogue import BY_KEY, RUNTIMES, Lesson
from engine.reports.lessons.matching import done
from engine.reports.lessons.wording import _bs, _points, _speeds, _x, where
from engine.reports.runs import paired_speedup


def speedup_rows(found: dict[str, list[dict[str, Any]]], lesson: Lesson,
                 compile_alone: bool = False) -> pd.DataFrame:
    """Paired speedups to chart: {series, runtime, batch_size, speedup} for each step's done
    run under every runtime it stored; with `compile_alone`, the teacher's own gain from
    compiling (its eager / its compiled, from the first run that stored it)."""
    rows, gain = [], None
    for step in lesson.steps:
        run = done(found, step.key)
        if run is None:
            continue
        m = run["metrics"]
        for rt in (m.get("speedup_by_runtime") or {}) or [m.get("parent_runtime") or "eager"]:
            for bs in sorted({int(b) for b in _bs(m)}):
                x, _ = paired_speedup(run, bs, rt)
                if x:
                    rows.append({"series": step.label, "runtime": rt, "batch_size": bs,
                                 "speedup": x})
        gain = gain or m.get("compile_gain_parent")
    if compile_alone and gain:
        rows += [{"series": "compiling alone (the fp32 teacher, compiled against eager)",
                  "runtime": "compiled", "batch_size": int(bs), "speedup": x}
                 for bs, x in gain.items()]
    return pd.DataFrame(rows, columns=["series", "runtime", "batch_size", "speedup"])


def quantize_takeaways(found: dict[str, list[dict[str, Any]]], origin: str | None) -> list[str]:
    lesson, out = BY_KEY["quantize"], []
    linear, full = done(found, "linear"), done(found, "all")
    for step, run in zip(lesson.steps, (linear, full)):
        if run is not None:
            out.append(f"{where(origin)}, {step.label} made the teacher {_speeds(run)} and "
                       f"{_points(run['metrics'].get('accuracy_delta_vs_parent'))}.")
    run = full or linear
    if run is not None:
        m = run["metrics"]
        by_rt = m.get("speedup_by_runtime") or {}
        bs = (_bs(m) or ["1"])[0]
        eager, compiled = (by_rt.get(rt, {}).get(bs) for rt in RUNTIMES)
        if eager and compiled:
            out.append(f"Compiling matters: run eager, int8 was {_x(eager)} faster at batch "
                       f"{bs}; compiled, {_x(compiled)} (each against the teacher under the "
                       f"same runtime). The compiler fuses the rounding of activations into the "
                       f"int8 matrix multiplies; eager PyTorch does it as separate steps.")
        else:
            out.append("This run was timed under one runtime only; with LAB_TIMING_RUNTIMES="
                       "eager,compiled the lesson shows what compiling adds.")
        gain = (m.get("compile_gain_parent") or {}).get(bs)
        if gain:
            out.append(f"Compiling alone, without int8, made the fp32 teacher {_x(gain)} "
                       f"faster at batch {bs}: the two gains are different things.")
    embed = embedding_share(linear, full)
    if embed is not None:
        mb, teacher_mb, share = embed
        out.append(f"The embedding tables are about {mb:.0f} of the teacher's {teacher_mb:.1f} "
                   f"MB ({share:.0%}): int8 on the Linear layers alone made the file "
                   f"{teacher_mb / linear['metrics']['size_mb']:.2f}x smaller, with the "
                   f"embeddings too {teacher_mb / full['metrics']['size_mb']:.2f}x. A table "
                   f"lookup costs almost no time, so this saves space, not speed.")
    return out


def embedding_share(linear: dict[str, Any] | None,
                    full: dict[str, Any] | None) -> tuple[float, float, float] | None:
    """(embeddings MB in fp32, teacher MB, share) from the two int8 runs' sizes: quantizing
    the tables too saves 3/4 of their bytes, so fp32 tables = (linear - full) / (3/4)."""
    if linear is None or full is None:
        return None
    a, b = linear["metrics"], full["metrics"]
    if not (a.get("size_mb") and b.get("size_mb") and a.get("size_ratio_vs_parent")):
        return None
    teacher = a["size_mb"] * a["size_ratio_vs_parent"]
    mb = (a["size_mb"] - b["size_mb"]) / 0.75
    return (mb, teacher, mb / teacher) if mb > 0 else None
