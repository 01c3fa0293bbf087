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
from engine.toolkit.paired import NOT_FASTER  # one "not faster" threshold for the lab

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


SMALL_GAIN = 1.5  # a paired speedup below this, from a smaller structure, gets a "what limits"


def what_limits_the_gain(run: dict[str, Any], parent: dict[str, Any] | None) -> list[str]:
    """For a run faster than its parent but by less than SMALL_GAIN, with fewer layers or heads
    than the parent: what bounds the gain, from the two models' shapes (the layers that remain,
    the share of heads removed and the feed-forward arithmetic they leave untouched). Empty
    otherwise. It complements `why_not_faster` (which speaks of the batch sizes where the run
    is not faster at all, and of the method's own estimate) with the bound of its best one."""
    m = run["metrics"]
    speedups = [v for v in (m.get("speedup_vs_parent") or {}).values() if v is not None]
    if parent is None or not speedups:
        return []
    best = max(speedups)
    pm = parent.get("metrics") or {}
    layers, p_layers = m.get("layers"), pm.get("layers")
    heads, p_heads = m.get("heads"), pm.get("heads")
    if not (NOT_FASTER <= best < SMALL_GAIN) or not (layers and p_layers and heads and p_heads):
        return []
    notes = []
    if layers < p_layers:
        notes.append(f"It keeps {layers} of its parent's {p_layers} encoder layers: the encoder's "
                     f"arithmetic falls at most {p_layers / layers:.2f}x, and the embeddings, the "
                     f"classifier and fixed per-call costs (tokens in, Python, kernel launches) "
                     f"do not shrink at all.")
    # heads per remaining layer, so a dropped layer's heads do not count as removed heads
    removed = 1 - (heads / layers) / (p_heads / p_layers)
    if removed > 0.01:
        ffn = m.get("ffn_share_of_compute")
        untouched = (f"the feed-forward block, {ffn:.0%} of the arithmetic at "
                     f"{m.get('seq_len') or '?'} tokens (estimated from the shape), is untouched"
                     if ffn is not None else "the feed-forward block is untouched")
        bound = f", so the best case is about {1 / (1 - removed * (1 - ffn)):.2f}x" \
            if ffn is not None else ""
        notes.append(f"{removed:.0%} of the heads are removed, but heads are only the attention "
                     f"part of each layer: {untouched}{bound}; thinner attention matrices also "
                     f"use the cores less well.")
    if notes:
        notes.append(f"Measured here: {best:.2f}x at best (paired). For more speed, remove "
                     f"layers as well, or quantize the result.")
    return [" ".join(notes)] if notes else []
