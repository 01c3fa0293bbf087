"""The candidate chains a search plans over the methods it has: depths, heads, layers,
feed-forward neurons, low-rank and the int8 step (plain, or accuracy-aware when the budget is
tight)."""

from __future__ import annotations

import math
from typing import Any

from engine.reports.search_plan.model import INT8_SHARE, Candidate, Step, step
from engine.reports.search_plan.prediction import _layer_drops, _quant_rows, predict_drop


def plan(layers: int, heads: int, methods: tuple[str, ...], schemes: tuple[str, ...],
         sensitivity: dict[str, Any] | None = None, train_steps: int = 0) -> list[Candidate]:
    """Every chain the search may try on a model of `layers` x `heads` (per layer): distill to
    fewer layers, drop layers (prune kind=layers), remove heads (prune kind=heads), remove
    feed-forward neurons (prune kind=ffn), low-rank feed-forward blocks, each alone or followed
    by one int8 `schemes` step (quantize is always last: a quantized model is not compressed
    further), and int8 alone; then the deeper chains: the middle distill depth with 25 % of
    heads removed, and (prune-ffn) the first and middle distill depths and the shallower layer
    drop each with half the FFN neurons removed, or half the heads then half the neurons (two
    thirds where more than half the layers are kept). With a sensitivity map, distill and
    layer dropping keep the layers whose loss hurts most."""
    def trained(method: str, **values: Any) -> dict[str, Any]:
        if not train_steps:
            return values
        key = "max_steps" if method == "distill" else "recovery_steps"
        return {**values, key: train_steps}

    firsts: list[tuple[Step, dict[str, Any]]] = []
    depths = sorted({max(1, round(layers * f)) for f in (2 / 3, 1 / 2, 1 / 3)} - {layers},
                    reverse=True)
    if "distill" in methods:
        for k in depths:
            kept = keep_layers(layers, k, sensitivity)
            values = trained("distill", student_layers=kept if kept else k)
            firsts.append((step("distill", f"distill to {_layers(k)}", **values),
                           {"kept_layers": kept or spread(layers, k), "trained": "distill"}))
    if "prune-layers" in methods:
        for k in depths[:2]:
            kept = keep_layers(layers, k, sensitivity)
            values = (trained("prune", kind="layers", layers=[i for i in range(layers)
                                                               if i not in kept])
                      if kept else trained("prune", kind="layers",
                                           amount=round((layers - k) / layers, 3)))
            firsts.append((step("prune", f"drop {_layers(layers - k)}", **values),
                           {"kept_layers": kept or list(range(k)), "trained": "layers"}))
    if "prune-heads" in methods and heads > 1:
        for amount in (0.25, 0.5):
            firsts.append((step("prune", f"remove {amount:.0%} of heads",
                                **trained("prune", kind="heads", amount=amount)),
                           {"heads_removed": amount, "trained": "heads"}))
    ffn = step("prune", "remove 50% of FFN neurons",
               **trained("prune", kind="ffn", amount=0.5))
    if "prune-ffn" in methods:
        firsts.append((ffn, {"ffn_removed": 0.5, "trained": "ffn"}))
    if "lowrank" in methods:
        firsts.append((step("lowrank", "low-rank FFN (rank 0.5)",
                            **trained("lowrank", target="ffn", rank=0.5)),
                       {"ffn_rank": 0.5}))
    out: list[Candidate] = []
    for first, eff in firsts:
        out.append(Candidate((first,), eff))
        for scheme in schemes:
            out.append(Candidate((first, _int8(scheme)), {**eff, "int8": scheme}))
    if "distill" in methods and "prune-heads" in methods and heads > 1 and depths:
        k = depths[len(depths) // 2]
        d = next(f for f in firsts if f[0].method == "distill" and
                 f[0].label == f"distill to {_layers(k)}")
        h = step("prune", "remove 25% of heads", **trained("prune", kind="heads", amount=0.25))
        eff = {**d[1], "heads_removed": 0.25}
        out.append(Candidate((d[0], h), eff))
        for scheme in schemes:
            out.append(Candidate((d[0], h, _int8(scheme)), {**eff, "int8": scheme}))
    if "prune-ffn" in methods:
        # The widest cuts the lab can make: fewer layers, then narrower FFN blocks (and half
        # the heads). bench_shapes (12-08, batch 32, int8 against the fp32 teacher, compiled):
        # 3 layers 4.80x, with FFN 768 7.39x, and with 6 of 12 heads 9.93x. Measured chains
        # of the v4 teacher, timed end to end (retime): distill to 4 layers, half the heads,
        # 2/3 of the FFN neurons, int8-static: 8.86x / 9.59x at batch 32 in two runs (the
        # second: tests/benchmarks/bench_chain.py), test -0.95 points; the same at 3 layers
        # with half the neurons: 10.01x, test -2.35 (one run of jobs, before distill's
        # dropout 0).
        halved = step("prune", "remove 50% of heads",
                      **trained("prune", kind="heads", amount=0.5))
        third = step("prune", "remove 67% of FFN neurons",
                     **trained("prune", kind="ffn", amount=0.667))
        distilled = [f for f in firsts if f[0].method == "distill"]
        mid = len(depths) // 2  # the middle depth's index (as the 25 % heads chain above)
        deep = distilled[:1] + (distilled[mid:mid + 1] if mid else []) + \
            [f for f in firsts if f[0].config().get("kind") == "layers"][:1]
        for d, eff in deep:
            chains = [((d, ffn), {**eff, "ffn_removed": 0.5})]
            if "prune-heads" in methods and heads > 1:
                # a student that kept more than half the layers can lose more width
                wide = len(eff["kept_layers"]) * 2 > layers
                narrow, amount = (third, 0.667) if wide else (ffn, 0.5)
                chains.append(((d, halved, narrow), {**eff, "heads_removed": 0.5,
                                                     "ffn_removed": amount}))
            for chain, ceff in chains:
                out.append(Candidate(chain, ceff))
                for scheme in schemes:
                    out.append(Candidate((*chain, _int8(scheme)), {**ceff, "int8": scheme}))
    for scheme in schemes:
        out.append(Candidate((_int8(scheme),), {"int8": scheme}))
    return out


def _layers(k: int) -> str:
    return f"{k} layer" + "s" * (k != 1)


def _int8(scheme: str, max_drop: float | None = None) -> Step:
    if not max_drop:
        return step("quantize", scheme, scheme=scheme)
    return step("quantize", f"{scheme}, accuracy-aware (max_drop={max_drop:g})", scheme=scheme,
                max_drop=max_drop)


def int8_budget(int8_drop: float, remaining: float) -> float | None:
    """quantize's max_drop for an int8 step predicted to lose `int8_drop` when the budget has
    `remaining` left: None (plain int8) when that fits in INT8_SHARE of it, or nothing is left
    (no float set can help then); else INT8_SHARE of what is left, floored to 4 decimals."""
    if remaining <= 0 or int8_drop <= INT8_SHARE * remaining:
        return None
    return math.floor(round(INT8_SHARE * remaining * 1e4, 6)) / 1e4 or None


def fit_int8(cands: list[Candidate], allowed: float, layers: int,
             sensitivity: dict[str, Any] | None = None,
             measured: dict[tuple[Step, ...], float] | None = None) -> None:
    """Make each chain's int8 step (always the last) accuracy-aware where the budget is tight,
    plain where it is not: what the budget has left is `allowed` minus the drop of the steps
    before it (measured on validation when they ran, else predicted). Rewrites the step (its
    label says so, its config carries max_drop) and the effect (int8_max_drop, and the
    predicted share of parts left float, int8_float_share)."""
    measured = measured or {}
    for c in cands:
        if c.steps[-1].method != "quantize":
            continue
        prefix = c.steps[:-1]
        plain = {k: v for k, v in c.effect.items()
                 if k not in ("int8_max_drop", "int8_float_share")}
        head = {k: v for k, v in plain.items() if k != "int8"}
        before_pred = predict_drop(head, layers, sensitivity)
        before = measured.get(prefix, before_pred) if prefix else 0.0
        cost = predict_drop(plain, layers, sensitivity) - before_pred
        budget = int8_budget(cost, allowed - before)
        if budget:
            plain.update(int8_max_drop=budget,
                         int8_float_share=float_share(plain, layers, sensitivity, budget, cost))
        c.steps, c.effect = prefix + (_int8(plain["int8"], budget),), plain


def float_share(eff: dict[str, Any], layers: int, sensitivity: dict[str, Any] | None,
                budget: float, cost: float) -> float:
    """The predicted share of an accuracy-aware int8 step's parts left float: with a
    sensitivity map, the most sensitive parts (of the layers kept) taken out until the rest's
    drop is within `budget`; else as if the drop shrank in proportion to the parts int8."""
    rows = _quant_rows(eff, layers, sensitivity)
    if rows is None:
        return min(1.0, max(0.0, 1 - budget / cost)) if cost > 0 else 0.0
    left, total = 0, sum(rows)
    for d in sorted(rows, reverse=True):
        if total <= budget + 1e-12:  # float sums
            break
        total -= d
        left += 1
    return left / len(rows) if rows else 0.0


def spread(layers: int, k: int) -> list[int]:
    """k of `layers` indices spread evenly, first and last kept (for prediction only: the
    distill job picks its own layers from a count)."""
    if k >= layers:
        return list(range(layers))
    if k == 1:
        return [layers - 1]
    return sorted({round(i * (layers - 1) / (k - 1)) for i in range(k)})


def keep_layers(layers: int, k: int, sensitivity: dict[str, Any] | None) -> list[int] | None:
    """With a sensitivity map: the k layers whose dropping hurts most, ascending; else None."""
    drops = _layer_drops(sensitivity, layers)
    if drops is None:
        return None
    ranked = sorted(range(layers), key=lambda i: (-drops[i], i))
    return sorted(ranked[:k])
