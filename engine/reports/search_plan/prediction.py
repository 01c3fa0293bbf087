"""Each candidate's predicted latency, size, accuracy drop and minutes, and the ranking of
the candidates against the constraints."""

from __future__ import annotations

import math
from typing import Any

from engine.reports.search_plan.model import (
    ATTENTION_SHARE,
    AWARE_PROBES,
    MAX_DROP_EXAMPLES,
    PRIOR_DROP,
    PRIOR_INT8_DROP,
    PRIOR_INT8_SPEEDUP,
    RECOVERY,
    SLACK,
    STEP_OVERHEAD_S,
    Candidate,
    Constraints,
    LatencyTable,
    Step,
)


def _quant_rows(eff: dict[str, Any], layers: int,
                sensitivity: dict[str, Any] | None) -> list[float] | None:
    """The int8 drop of each part the chain quantizes (the kept layers' and the embeddings'),
    from the sensitivity map, or None without one (for this depth)."""
    quant = (sensitivity or {}).get("quant") if _layer_drops(sensitivity, layers) else None
    if not quant:
        return None
    kept = eff.get("kept_layers", list(range(layers)))
    factor = 2.0 if eff.get("int8") == "int8-static" else 1.0
    return [factor * max(0.0, q["acc_drop"]) for q in quant
            if q.get("layer") is None or q["layer"] in kept]


def _layer_drops(sensitivity: dict[str, Any] | None, layers: int) -> list[float] | None:
    if not sensitivity or sensitivity.get("layers") != layers:
        return None
    drops = [0.0] * layers
    for row in sensitivity.get("layer_drop", []):
        if 0 <= row["layer"] < layers:
            drops[row["layer"]] = max(0.0, float(row["acc_drop"]))
    return drops


def effect_shape(eff: dict[str, Any], table: LatencyTable) -> dict[str, Any]:
    """Layers kept, heads kept per layer, the FFN cost factor (neurons kept x low-rank), and
    the int8 scheme."""
    kept = eff.get("kept_layers", list(range(table.layers)))
    heads = table.heads - round(table.heads * eff.get("heads_removed", 0.0))
    rank = eff.get("ffn_rank")
    if rank:  # two thin matrices instead of one: r*min(m,n)*(m+n) of m*n multiply-adds
        m, n = table.hidden, table.intermediate
        ffn = min(1.0, rank * min(m, n) * (m + n) / (m * n))
    else:
        ffn = 1.0
    ffn *= 1.0 - eff.get("ffn_removed", 0.0)  # prune kind=ffn: both FFN matrices narrower
    return {"kept": kept, "heads": heads, "ffn_factor": ffn, "int8": eff.get("int8")}


def predict_latency(eff: dict[str, Any], table: LatencyTable) -> float:
    """Predicted eager ms at the table's batch size (int8: divided by its speedup)."""
    shape = effect_shape(eff, table)
    layer = shape["heads"] * table.head_ms + table.ffn_ms() * shape["ffn_factor"]
    ms = table.fixed_ms + len(shape["kept"]) * layer
    if shape["int8"]:  # accuracy-aware: the parts left float keep their float cost
        x = table.int8_speedup.get(shape["int8"], PRIOR_INT8_SPEEDUP[shape["int8"]])
        f = eff.get("int8_float_share", 0.0)
        ms *= f + (1 - f) / x
    return ms


def predict_size(eff: dict[str, Any], table: LatencyTable, start_size_mb: float,
                 vocab: int = 30522) -> float:
    """Predicted MB on disk: the start's size scaled by the parameters kept (int8: a quarter
    of the float bytes, embeddings included, as quantize stores them by default)."""
    h, f = table.hidden, table.intermediate
    emb = (vocab + 512 + 2) * h
    per_layer = 4 * h * h + 2 * h * f
    full = emb + table.layers * per_layer
    shape = effect_shape(eff, table)
    layer = 4 * h * h * shape["heads"] / max(1, table.heads) + 2 * h * f * shape["ffn_factor"]
    kept = emb + len(shape["kept"]) * layer
    size = start_size_mb * kept / full
    f = eff.get("int8_float_share", 0.0)
    return size * (f + (1 - f) / 4) if shape["int8"] else size


def predict_drop(eff: dict[str, Any], layers: int,
                 sensitivity: dict[str, Any] | None = None) -> float:
    """Predicted validation drop (fraction) of a chain with effect `eff` on a `layers`-layer
    model: from the sensitivity map (raw drops of the layers removed and the parts quantized,
    assumed additive, times the share the step's training leaves), else the priors."""
    drops = _layer_drops(sensitivity, layers)
    kept = eff.get("kept_layers", list(range(layers)))
    removed = [i for i in range(layers) if i not in kept]
    total = 0.0
    trained = eff.get("trained")
    if removed:
        kind = "distill" if trained == "distill" else "layers"
        if drops is not None:
            total += RECOVERY[kind] * sum(drops[i] for i in removed)
        else:
            total += PRIOR_DROP[kind] * len(removed) / layers * 2
    amount = eff.get("heads_removed", 0.0)
    if amount:
        scores = (sensitivity or {}).get("heads")
        if drops is not None and scores and len(scores) == layers:
            for i in kept:
                row = sorted(scores[i])
                cut = row[:round(len(row) * amount)]
                share = sum(cut) / sum(row) if sum(row) > 0 else amount
                total += RECOVERY["heads"] * ATTENTION_SHARE * drops[i] * share
        else:
            total += PRIOR_DROP["heads"] * amount * 2 * len(kept) / layers
    neurons = eff.get("ffn_removed", 0.0)
    if neurons:  # no sensitivity of neurons: the prior, for the layers kept
        total += PRIOR_DROP["ffn"] * neurons * 2 * len(kept) / layers
    if eff.get("ffn_rank"):
        total += PRIOR_DROP["lowrank"] * (1 - eff["ffn_rank"]) * 2
    scheme = eff.get("int8")
    if scheme:
        rows = _quant_rows(eff, layers, sensitivity)
        part = sum(rows) if rows is not None else PRIOR_INT8_DROP[scheme]
        if eff.get("int8_max_drop") is not None:  # accuracy-aware: floats parts to stay within
            part = min(part, eff["int8_max_drop"])
        total += part
    return total


def step_seconds(s: Step, table32: LatencyTable, shape_ms: float, n_train_steps: int,
                 n_test: int, n_val: int, compiled: bool) -> float:
    """About how long one job of a chain takes: its training steps (3 forward passes each,
    at batch 32, of the model it trains: `shape_ms`), its test and validation passes, and its
    timing (30-60 rounds of itself and its parent at batch 1 and 32, plus compiling). An
    accuracy-aware int8 step adds its validation-sample passes: the int8 sensitivity of each
    part (a chained step's input has no stored map) and the search for its float set."""
    full32 = table32.full_ms
    train = n_train_steps * 3 * max(shape_ms, full32) / 1000 if s.method != "quantize" else 0
    passes = (n_test + n_val) / 32 * full32 / 1000
    cfg = s.config()
    if s.method == "quantize" and cfg.get("max_drop"):
        sample = cfg.get("max_drop_examples") or MAX_DROP_EXAMPLES
        probes = AWARE_PROBES + 6 * table32.layers + 1
        passes += probes * min(n_val, sample) / 32 * full32 / 1000
    timing = 2 * 45 * (full32 + full32 / 16) / 1000 * (2 if compiled else 1)
    return STEP_OVERHEAD_S + train + passes + timing + (40.0 if compiled else 0.0)


def train_steps_of(s: Step, n_train: int) -> int:
    """The optimizer steps a step's job will take: its max_steps / recovery_steps, or for a
    distill with none its 2 epochs over `n_train` examples at batch 32; 0 for quantize."""
    cfg = s.config()
    if s.method == "distill":
        return int(cfg.get("max_steps") or math.ceil(2 * n_train / 32))
    if s.method in ("prune", "lowrank"):
        return int(cfg.get("recovery_steps", 300))
    return 0


def predict(cands: list[Candidate], table: LatencyTable, start_size_mb: float,
            sensitivity: dict[str, Any] | None, measured: dict[tuple[Step, ...], float]
            | None = None) -> None:
    """Fill each candidate's `predicted`: ms, speedup (start / own, eager at the table's
    batch), size_mb, size_ratio, drop (a measured prefix drop replaces its prediction)."""
    measured = measured or {}
    for c in cands:
        ms = predict_latency(c.effect, table)
        size = predict_size(c.effect, table, start_size_mb)
        drop = predict_drop(c.effect, table.layers, sensitivity)
        for n in range(len(c.steps), 0, -1):
            prefix = c.steps[:n]
            if prefix in measured:
                head = _prefix_effect(c, n)
                drop = measured[prefix] + max(0.0, drop - predict_drop(
                    head, table.layers, sensitivity))
                break
        c.predicted = {**c.predicted, "ms": ms, "speedup": table.full_ms / ms, "size_mb": size,
                       "size_ratio": start_size_mb / size if size else None, "drop": drop,
                       "source": "sensitivity" if _layer_drops(sensitivity, table.layers)
                       else "prior"}


def _prefix_effect(c: Candidate, n: int) -> dict[str, Any]:
    """The effect of the first n steps of `c` (int8 is last; heads and neurons come after
    depth)."""
    methods = [s.method for s in c.steps[:n]]
    eff = dict(c.effect)
    if "quantize" not in methods:
        eff.pop("int8", None)
    kinds = {s.config().get("kind") for s in c.steps[:n] if s.method == "prune"}
    if "heads" not in kinds:
        eff.pop("heads_removed", None)
    if "ffn" not in kinds:
        eff.pop("ffn_removed", None)
    return eff


def rank(cands: list[Candidate], cons: Constraints, allowed: float) -> list[Candidate]:
    """The candidates worth running, most promising first: predicted within SLACK x the
    accuracy budget and within the ceilings (with 10 % slack), by the objective (speedup or
    size ratio), then by the smaller predicted drop."""
    def fits(c: Candidate) -> bool:
        p = c.predicted
        return (p["drop"] <= SLACK * allowed
                and (cons.max_latency_ms is None or p["ms"] <= 1.1 * cons.max_latency_ms)
                and (cons.max_size_mb is None or p["size_mb"] <= 1.1 * cons.max_size_mb))

    key = "speedup" if cons.objective == "speed" else "size_ratio"
    return sorted((c for c in cands if fits(c)),
                  key=lambda c: (-(c.predicted[key] or 0), c.predicted["drop"], c.label))


def closest_to_ceiling(cands: list[Candidate], cons: Constraints) -> str | None:
    """When no candidate is predicted to meet a ceiling (within 10 %): a sentence naming the
    closest one; None when some candidate may meet every ceiling."""
    ceilings = (("ms", cons.max_latency_ms, f"latency ceiling of {{:g}} ms at batch "
                 f"{cons.batch}", "fastest", "{:.1f} ms (eager)", "--max-latency-ms"),
                ("size_mb", cons.max_size_mb, "size ceiling of {:g} MB", "smallest",
                 "{:.1f} MB", "--max-size-mb"))
    for key, ceiling, what, best_word, value, flag in ceilings:
        if ceiling is None or any(c.predicted[key] <= 1.1 * ceiling for c in cands):
            continue
        best = min(cands, key=lambda c: c.predicted[key])
        return (f"no candidate can meet the {what.format(ceiling)}: the {best_word} the lab "
                f"can make is {best.label}, predicted at {value.format(best.predicted[key])};"
                f" raise {flag}")
    return None
