"""Where a run came from: its chain of ancestors, and the chain as a table with cumulative
figures against the root, each speedup saying how it was obtained (a retime job's paired
measurement first, then the product of paired steps under one runtime, then unpaired)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from engine.reports.runs import (
    config_text,
    model_names,
    paired_speedup,
    retime_ratio,
    run_label,
    speedup_text,
    unpaired_ratio,
)

HOW = {"step": "paired (one step)",
       "paired": "estimated (product of paired steps, same runtime)",
       "retime": "measured (retime job {job}, paired)",
       "unpaired": "unpaired (timed in different processes)"}


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


def family_tree(runs_by_id: dict[int, dict[str, Any]], job_id: int, batch_size: int,
                runtime: str = "eager") -> pd.DataFrame:
    """The selected chain (root ... `job_id`, then the runs made from `job_id`), depth first,
    with figures against the root under one `runtime`. `speedup_basis` is "retime" (a stored
    retime job measured it), "paired" (the product of paired steps, each under `runtime`),
    "unpaired" (a ratio of medians timed in different processes) or None; `how_measured`
    says it in words. Sibling branches are left out."""
    chain = lineage(runs_by_id, job_id)
    root, everything = chain[0], list(runs_by_id.values())
    children: dict[int, list[int]] = {}
    for run in everything:
        if run["parent_id"] is not None:
            children.setdefault(run["parent_id"], []).append(run["id"])
    root_m = root["metrics"]
    rows: list[dict[str, Any]] = []

    def visit(run: dict[str, Any], depth: int, chained: float | None, steps: int,
              below: bool, ci: tuple[float, float] | None = None) -> None:
        """`chained`: the product of same-runtime paired ratios from the root (None once a
        step has none); `steps`: how many ratios it multiplies; `below`: at or under job_id."""
        m = run["metrics"]
        speedup, basis, how = chained, ("paired" if chained is not None else None), None
        if chained is not None:
            how = HOW["step"] if steps == 1 else (HOW["paired"] if steps else None)
        retimed = _retimed(everything, run, root, batch_size, runtime) if depth else None
        if retimed:
            speedup, basis, how = retimed[0], "retime", HOW["retime"].format(job=retimed[2])
            ci = retimed[1]
        elif chained is None:
            speedup = unpaired_ratio(root, run, batch_size, runtime)
            basis, how = ("unpaired", HOW["unpaired"]) if speedup else (None, None)
        meaningful = m.get("accuracy_meaningful", True) is not False
        accuracy = m.get("accuracy") if meaningful else None
        rows.append({
            "step": ("\u2003" * depth + ("└ " if depth else "")) + run_label(run),
            "job": run["id"], "selected": run["id"] == job_id, "runtime": runtime,
            "cumulative_speedup": speedup, "how_measured": how, "speedup_basis": basis,
            "speedup": speedup_text(speedup, ci if basis == "retime" or steps == 1 else None),
            "size_ratio": root_m["size_mb"] / m["size_mb"]
            if root_m.get("size_mb") and m.get("size_mb") else None,
            "accuracy": accuracy,
            "accuracy_vs_root": accuracy - root_m["accuracy"]
            if accuracy is not None and root_m.get("accuracy") is not None else None,
            "config": config_text(run),
        })
        below = below or run["id"] == job_id
        for child_id in sorted(c for c in children.get(run["id"], []) if below or c in on_chain):
            child = runs_by_id[child_id]
            step, step_ci = paired_speedup(child, batch_size, runtime)
            visit(child, depth + 1, chained * step if chained is not None and step else None,
                  steps + 1, below, step_ci)

    on_chain = {r["id"] for r in chain}
    visit(root, 0, 1.0, 0, False)
    return pd.DataFrame(rows)


def _retimed(everything: list[dict[str, Any]], run: dict[str, Any], root: dict[str, Any],
             batch_size: int, runtime: str
             ) -> tuple[float, tuple[float, float] | None, int] | None:
    """A stored retime job's paired speedup of `run` against `root`, its interval and id."""
    for model in model_names(run):
        for against in model_names(root):
            x, ci, job = retime_ratio(everything, model, against, batch_size, runtime)
            if x:
                return x, ci, job
    return None
