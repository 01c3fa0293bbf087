"""The one place that says why a run is not faster than its parent.

It shows the method's own explanation, which the runner stores as metrics["why_not_faster"]
(from the method's `explain_slow` hook: only the method knows its scheme or sparsity), plus
causes that hold for any method: the machine was busy, the timing is unreliable, a small batch
or a short GPU forward is dominated by fixed per-call costs. Nothing here reads a method's or a
scheme's name.
"""

from __future__ import annotations

import math
from typing import Any

from engine.reports.runs import config_text, primary_runtime, runtime_of
from engine.toolkit import timing

# One threshold for "not faster" (latency noise is a few percent). It lives in
# engine/toolkit/timing.py (NOT_FASTER) once the methods helper adds it; until then 1.1 here.
NOT_FASTER: float = getattr(timing, "NOT_FASTER", 1.1)
SMALLER = 1.05  # a size ratio above this is "smaller"
LAUNCH_BOUND_MS = 5.0  # a GPU forward this short is mostly kernel launches, not arithmetic


def why_not_faster(run: dict[str, Any]) -> list[str]:
    """For a run that is smaller than its parent (or carries its method's note) but not
    faster at some batch size: the causes, in plain words. Empty when it is faster."""
    m = run["metrics"]
    speedups = {int(k): v for k, v in (m.get("speedup_vs_parent") or {}).items()
                if v is not None}
    slow = sorted(bs for bs, v in speedups.items() if v < NOT_FASTER)
    own = m.get("why_not_faster")
    smaller = (m.get("size_ratio_vs_parent") or 1) >= SMALLER or (m.get("sparsity") or 0) > 0
    if not slow or not (smaller or own):
        return []
    notes = [own] if own else []
    busy = m.get("timing_warning")
    if busy and busy not in (own or ""):
        notes.append(f"The machine was busy while it was timed: {busy}")
    if m.get("timing_unreliable"):
        notes.append(f"The timing itself is unreliable ({m['timing_unreliable']}): re-time it "
                     f"before reading anything into the ratio.")
    notes += _fixed_costs(m, speedups, slow)
    if not notes:
        notes.append(f"Smaller but not faster at batch {', '.join(map(str, slow))}; the lab "
                     f"sees no known cause (method {run['method']}, {config_text(run)}).")
    return notes


def _fixed_costs(m: dict[str, Any], speedups: dict[int, float], slow: list[int]) -> list[str]:
    """A batch too small for compression to show: per-call costs (Python, kernel launches)."""
    fast = [bs for bs, v in speedups.items() if v >= NOT_FASTER]
    if fast and min(slow) < min(fast):
        return [f"A batch size where launch overhead dominates: at batch {min(slow)} the "
                f"speedup is {speedups[min(slow)]:.2f}x but at batch {max(fast)} it is "
                f"{speedups[max(fast)]:.2f}x. A small batch does too little arithmetic for "
                f"compression to show; fixed per-call costs (Python, kernel launches) stay "
                f"the same."]
    device = str(m.get("device") or "")
    runtime = primary_runtime({"metrics": m})
    parent_ms = {r["batch_size"]: r["p50_ms"] for r in m.get("parent_latency", [])
                 if runtime_of(r) == runtime}
    launch_bound = [bs for bs in slow if device.startswith("cuda")
                    and parent_ms.get(bs, math.inf) < LAUNCH_BOUND_MS]
    if launch_bound:
        bs = launch_bound[0]
        return [f"A batch size where launch overhead dominates: at batch {bs} the parent takes "
                f"only {parent_ms[bs]:.1f} ms on the GPU, mostly the fixed cost of launching "
                f"kernels; compression shrinks the arithmetic, not the launches. Measure a "
                f"larger batch."]
    return []
