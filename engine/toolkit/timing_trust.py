"""Whether a latency can be trusted: a wide spread within the run (`spread_problems`), a model
whose timing here departs from its own earlier stored timings by more than their noise
(`drift_problems`), both in one message (`unreliable_reason`), and a machine that was busy
while timing (`busy_warning`). Rows are shaped as engine/toolkit/timing.py stores them."""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from engine.toolkit.paired import row_key

SPREAD_LIMIT = 0.25  # IQR / p50 above this: the spread is too wide to trust the median
TAIL_LIMIT = 2.0  # p95 / p50 above this: a heavy tail (other processes took the CPU)
DRIFT_FLOOR = 0.10  # a parent's p50 within 10 % of its earlier timings is never "departing"
DRIFT_SIGMAS = 3.0  # ... else it departs when off by more than 3x the earlier noise


def spread_problems(rows: Iterable[dict], spread_limit: float = SPREAD_LIMIT,
                    tail_limit: float = TAIL_LIMIT) -> list[str]:
    """Plain reasons a run's own spread is too wide: IQR above `spread_limit` of the median,
    or p95 above `tail_limit` times the median (rows with role, runtime, batch_size)."""
    problems = []
    for r in rows:
        where = f"{r.get('role', 'self')} {r['runtime']} at batch {r['batch_size']}"
        if r.get("iqr_ms") is not None and r["iqr_ms"] > spread_limit * r["p50_ms"]:
            problems.append(f"the spread was wide ({where}: IQR {r['iqr_ms']:.1f} ms on a "
                            f"median of {r['p50_ms']:.1f} ms)")
        elif r["p95_ms"] > tail_limit * r["p50_ms"]:
            problems.append(f"the timing had a heavy tail ({where}: p95 {r['p95_ms']:.1f} ms "
                            f"against a median of {r['p50_ms']:.1f} ms)")
    return problems


def drift_problems(rows: Iterable[dict], earlier: Iterable[dict], who: str = "parent"
                   ) -> list[str]:
    """Plain reasons the timing of a model here departs from its own earlier stored timings
    (same runtime, batch, length, threads, device): off their median p50 by more than
    max(DRIFT_FLOOR x that median, DRIFT_SIGMAS x their noise), the noise being the larger of
    the spread of the earlier medians (half their range) and their median IQR."""
    history: dict[tuple, list[dict]] = {}
    for r in earlier:
        history.setdefault(row_key(r), []).append(r)
    problems = []
    for r in rows:
        before = history.get(row_key(r))
        if not before:
            continue
        p50s = np.asarray([b["p50_ms"] for b in before])
        ref = float(np.median(p50s))
        iqrs = [b["iqr_ms"] for b in before if b.get("iqr_ms") is not None]
        noise = max((p50s.max() - p50s.min()) / 2, float(np.median(iqrs)) if iqrs else 0.0)
        if abs(r["p50_ms"] - ref) > max(DRIFT_FLOOR * ref, DRIFT_SIGMAS * noise):
            problems.append(
                f"the {who} took {r['p50_ms']:.1f} ms ({r['runtime']}, batch "
                f"{r['batch_size']}) against {ref:.1f} ms in its {len(before)} earlier "
                f"timing(s) here")
    return problems


def unreliable_reason(problems: list[str]) -> str | None:
    """metrics["timing_unreliable"]: "unreliable: re-time — <reasons>", or None."""
    if not problems:
        return None
    return "unreliable: re-time — " + "; ".join(problems) + "."


BUSY_SLACK = 0.5  # cores: load-average noise above the job's own threads


def busy_warning(device: str) -> str | None:
    """A warning when other processes competed for the CPU while timing (1-minute load
    average above the core count plus half a core of slack): every model slows down, and not
    alike (the one with more, shorter parallel steps waits more on descheduled threads), so
    ratios are noisy. The job's own threads count in the load average (a job alone on 2 cores
    with 2 threads reads about 2.1), hence the slack."""
    if not device.startswith("cpu") or not hasattr(os, "getloadavg"):
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cores + BUSY_SLACK:
        return None
    return (f"The machine was busy while timing (load average {load:.1f} on {cores} cores): "
            f"latencies are inflated and the ratios unreliable; re-run on a quiet machine.")
