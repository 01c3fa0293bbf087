"""Lesson 2, pruning: the takeaways of removing heads, layers or single weights (what each
cost in accuracy, and why only structure buys speed)."""

from __future__ import annotations

from typing import Any

from engine.reports.lessons.catalogue import BY_KEY
from engine.reports.lessons.matching import done
from engine.reports.lessons.wording import _bs, _device_note, _points, _speeds, _x, where


def prune_takeaways(found: dict[str, list[dict[str, Any]]], origin: str | None) -> list[str]:
    out, gains = [], {}
    for step in BY_KEY["prune"].steps:
        run = done(found, step.key)
        if run is None:
            continue
        m = run["metrics"]
        text = (f"{where(origin)}{_device_note(run)}, removing {step.label} made the teacher "
                f"{_speeds(run)} and {_points(m.get('accuracy_delta_vs_parent'))}")
        ratio = m.get("size_ratio_vs_parent")
        if ratio:
            text += ("; the file is the same size" if abs(ratio - 1) < 0.01 else
                     f"; the file is {ratio:.2f}x smaller")
        out.append(text + ".")
        sizes = _bs(m)
        if sizes:
            gains[step.label] = m["speedup_vs_parent"][sizes[0]]
        if step.key == "unstructured" and sizes:
            x = m["speedup_vs_parent"][sizes[0]]
            out.append(("So unstructured zeros bought no speed here: " if x < 1.1 else
                        f"Unstructured zeros gave {_x(x)} here, less than their share of "
                        f"zeros suggests: ") + "dense kernels multiply a zero like any "
                       "other number, and the file keeps every zero. Only sparse kernels at "
                       "high sparsity (or 2:4 patterns on large GPU batches) turn zeros into "
                       "time.")
    if len(gains) > 1:
        best = max(gains, key=gains.get)
        out.append(f"Of these, {best} gave the most speed ({_x(gains[best])} at the smallest "
                   f"batch): structure (whole heads, whole layers) is what kernels can skip.")
    return out
