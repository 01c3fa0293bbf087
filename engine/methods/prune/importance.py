"""Which heads prune removes: the lowest-scoring ones. The scoring itself (gradient, magnitude,
random) is shared with the sensitivity map and lives in engine/toolkit/head_scoring.py."""

from __future__ import annotations

from engine.toolkit.head_scoring import Scores, head_importance, scoring_sample

# re-exported for the prune benchmark (tests/benchmarks/bench_prune.py)
__all__ = ["Scores", "head_importance", "lowest_heads", "scoring_sample"]


def lowest_heads(scores: Scores, amount: float) -> dict[int, list[int]]:
    """The round(amount * remaining heads) lowest-scoring heads, over all layers (ties: the
    lower layer, then the lower head)."""
    alive = [(s, layer, h) for layer, row in enumerate(scores) for h, s in enumerate(row)
             if s is not None]
    n = round(amount * len(alive))
    chosen: dict[int, list[int]] = {}
    for _, layer, h in sorted(alive)[:n]:
        chosen.setdefault(layer, []).append(h)
    return {k: sorted(v) for k, v in chosen.items()}
