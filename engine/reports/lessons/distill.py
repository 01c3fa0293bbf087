"""Lesson 3, distillation: the accuracy each student keeps against its depth, and the
takeaways."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from engine.reports.lessons.catalogue import BY_KEY, Lesson
from engine.reports.lessons.matching import done
from engine.reports.lessons.wording import _bs, _points, _x, where


def depth_rows(found: dict[str, list[dict[str, Any]]], lesson: Lesson) -> pd.DataFrame:
    """{job, label, layers, retained, delta, speedup, batch_size} per done student, the
    shallowest first."""
    rows = []
    for step in lesson.steps:
        run = done(found, step.key)
        if run is None or run["metrics"].get("accuracy_retained") is None:
            continue
        m = run["metrics"]
        sizes = _bs(m)
        rows.append({"job": run["id"], "label": step.label,
                     "layers": m.get("layers") or step.values.get("student_layers"),
                     "retained": m["accuracy_retained"],
                     "delta": m.get("accuracy_delta_vs_parent"),
                     "speedup": m["speedup_vs_parent"][sizes[0]] if sizes else math.nan,
                     "batch_size": int(sizes[0]) if sizes else None})
    return pd.DataFrame(rows, columns=["job", "label", "layers", "retained", "delta",
                                       "speedup", "batch_size"]).sort_values("layers")


def distill_takeaways(found: dict[str, list[dict[str, Any]]], origin: str | None) -> list[str]:
    rows = depth_rows(found, BY_KEY["distill"])
    out = []
    for r in rows.itertuples():
        speed = (f" and ran {_x(r.speedup)} faster at batch {int(r.batch_size)}"
                 if pd.notna(r.speedup) else "")
        out.append(f"{where(origin)}, a {int(r.layers)}-layer student kept {r.retained:.1%} of "
                   f"the teacher's accuracy ({_points(r.delta)}){speed}.")
    if len(rows) > 1:
        kept = rows[rows["retained"] >= 0.98]
        if len(kept):
            out.append(f"The shallowest student that kept at least 98 % was the "
                       f"{int(kept.iloc[0]['layers'])}-layer one: the depth to start from.")
        else:
            best = rows.loc[rows["retained"].idxmax()]
            out.append(f"No student kept 98 %; the best, {int(best['layers'])} layers, kept "
                       f"{best['retained']:.1%}: train longer or keep more layers.")
    return out
