"""Budget-first search, the pure part: the constraints, the candidate chains, and each
candidate's predicted latency, size, accuracy drop and cost in minutes (no torch, no rows).

A candidate is a chain of ordinary job steps (method + config values) applied to the starting
model. Its latency is predicted from a latency table measured on this machine
(`engine/search/latency.py`): the model's fixed cost (embeddings, pooler, classifier), the
cost of one encoder layer and of one attention head, all in ms at one batch size. Its accuracy
drop comes from the model's sensitivity map when there is one (engine/reports/sensitivity.py
fixes its shape), else from a prior per method; a drop measured on the validation split for a
prefix of the chain replaces that prefix's prediction (`predict`'s `measured`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine.toolkit.config import LabError

BATCHES = (1, 32)  # every job is timed at these batch sizes (EvaluateConfig.batch_sizes)
OBJECTIVES = ("speed", "size")
INT8_SCHEMES = ("int8-dynamic", "int8-static")
# Priors, used without a sensitivity map. Drops are fractions (0.01 = one point), per unit of
# the fraction removed, calibrated on what the lab measured on its teacher (DESIGN.md, issue 17:
# distill 6 -> 3 layers then int8 lost 1.15 points).
PRIOR_DROP = {"distill": 0.02, "layers": 0.035, "heads": 0.025, "lowrank": 0.01}
PRIOR_INT8_DROP = {"int8-dynamic": 0.003, "int8-static": 0.006}
# int8's speedup against float under one runtime, before any quantize job measured it here
# (DESIGN.md: torchao int8 compiled 2.9x vs fp32 compiled; torch.ao dynamic eager ~2.5x)
PRIOR_INT8_SPEEDUP = {"int8-dynamic": 2.5, "int8-static": 2.5}
# Share of a raw drop (sensitivity's "drop this layer", no training) left after the step's own
# training: distillation and recovery fine-tuning win back part of it.
RECOVERY = {"distill": 0.4, "layers": 0.5, "heads": 0.5}
ATTENTION_SHARE = 0.5  # all of a layer's heads removed: this share of dropping the layer
SLACK = 1.5  # a candidate is tried when its predicted drop is within SLACK x the budget
STEP_OVERHEAD_S = 10.0  # load, save, register: seconds per job besides training and timing
# Accuracy-aware int8 in a chain: when a plain int8 step is predicted to lose more than this
# share of what the budget has left after the chain's earlier steps, the step is submitted with
# quantize's max_drop = this share of it, so int8 keeps the most sensitive parts float (the
# margin: quantize measures on a validation sample, the search judges on the whole split).
INT8_SHARE = 0.8
MAX_DROP_EXAMPLES = 500  # quantize's max_drop_examples default: its validation sample
AWARE_PROBES = 8  # validation passes of an accuracy-aware int8 job's search for its float set


@dataclass(frozen=True)
class Constraints:
    """What the user asked: keep accuracy (max_drop: points lost as a fraction of 1, or
    min_retained: a share of the start's validation accuracy), optional ceilings (ms at
    `batch`, MB on disk), the objective, and the time budget in minutes."""

    max_drop: float | None = 0.01
    min_retained: float | None = None
    batch: int = 32
    minutes: float = 60.0
    max_latency_ms: float | None = None
    max_size_mb: float | None = None
    objective: str = "speed"

    def check(self) -> None:
        """LabError, with what to type instead, for a budget that cannot mean anything."""
        if self.max_drop is None and self.min_retained is None:
            raise LabError("give an accuracy budget: --max-drop 0.01 (one point lost at most) "
                           "or --min-retained 0.99 (keep 99 % of the accuracy)")
        if self.max_drop is not None:
            d = self.max_drop
            if d >= 1 or (not math.isfinite(d)):
                raise LabError(f"--max-drop {d:g}: the budget is a fraction of accuracy "
                               f"(0.01 = one point lost), so it must be below 1; for "
                               f"{d:g} points use --max-drop {d / 100:g}")
            if d <= 0:
                raise LabError(f"--max-drop {d:g}: every compression loses something, so a "
                               f"budget of {d:g} admits no candidate; allow a little, e.g. "
                               f"--max-drop 0.005 (half a point)")
        if self.min_retained is not None:
            r = self.min_retained
            if r > 1 or r <= 0 or not math.isfinite(r):
                raise LabError(f"--min-retained {r:g}: the share of accuracy kept is between "
                               f"0 and 1 (0.99 keeps 99 %)" + (
                                   f"; for {r:g} % use --min-retained {r / 100:g}" if r > 1
                                   else ""))
            if r == 1:
                raise LabError("--min-retained 1 admits no candidate (every compression loses "
                               "something); allow a little, e.g. --min-retained 0.99")
        if self.batch not in BATCHES:
            raise LabError(f"--batch {self.batch}: every job is timed at batch "
                           f"{' and '.join(map(str, BATCHES))}, so a paired speedup exists "
                           f"only there; use one of them")
        if self.objective not in OBJECTIVES:
            raise LabError(f"--objective {self.objective}: use speed or size")
        if not self.minutes > 0:
            raise LabError(f"--minutes {self.minutes:g}: give the search some time, e.g. "
                           f"--minutes 60")
        for name, v in (("--max-latency-ms", self.max_latency_ms),
                        ("--max-size-mb", self.max_size_mb)):
            if v is not None and not v > 0:
                raise LabError(f"{name} {v:g}: a ceiling must be above 0")

    def allowed_drop(self, start_val: float) -> float:
        """The validation points (fraction) a candidate may lose against `start_val`."""
        drops = [d for d in (self.max_drop,
                             None if self.min_retained is None
                             else start_val * (1 - self.min_retained)) if d is not None]
        return min(drops)

    def budget_text(self) -> str:
        parts = []
        if self.max_drop is not None:
            parts.append(f"at most {100 * self.max_drop:.2g} points lost")
        if self.min_retained is not None:
            parts.append(f"at least {100 * self.min_retained:.3g} % of the accuracy kept")
        return " and ".join(parts)


@dataclass(frozen=True)
class Step:
    """One job of a chain: the method and the config values it is submitted with."""

    method: str
    values: tuple[tuple[str, Any], ...]
    label: str

    def config(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.values}

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "config": self.config(), "label": self.label}


def step(method: str, label: str, **values: Any) -> Step:
    return Step(method, tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                     for k, v in values.items())), label)


@dataclass(eq=False)  # one candidate is one object (a search keys its state on it)
class Candidate:
    """A chain with its predictions (filled by `predict`) and, once run, its outcome."""

    steps: tuple[Step, ...]
    effect: dict[str, Any]  # what the chain does to the architecture (see `effect`)
    predicted: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return " → ".join(s.label for s in self.steps)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class LatencyTable:
    """ms at one batch size and length, eager, on one device: fixed (embeddings, pooler,
    classifier: a model with no encoder layer), per layer (one full layer), per head (one
    head's share of a layer: q/k/v rows, scores, output columns). The rest of a layer
    (layer_ms - heads * head_ms) is its feed-forward block and norms."""

    fixed_ms: float
    layer_ms: float
    head_ms: float
    layers: int
    heads: int  # per layer
    hidden: int
    intermediate: int
    batch: int
    device: str = ""
    int8_speedup: dict[str, float] = field(default_factory=dict)  # measured here, by scheme

    @property
    def full_ms(self) -> float:
        return self.fixed_ms + self.layers * self.layer_ms

    def ffn_ms(self) -> float:
        return max(0.0, self.layer_ms - self.heads * self.head_ms)


# --------------------------------------------------------------------------- candidates


def plan(layers: int, heads: int, methods: tuple[str, ...], schemes: tuple[str, ...],
         sensitivity: dict[str, Any] | None = None, train_steps: int = 0) -> list[Candidate]:
    """Every chain the search may try on a model of `layers` x `heads` (per layer): distill to
    fewer layers, drop layers (prune kind=layers), remove heads (prune kind=heads), low-rank
    feed-forward blocks, each alone or followed by one int8 `schemes` step (quantize is always
    last: a quantized model is not compressed further), and int8 alone. With a sensitivity
    map, distill and layer dropping keep the layers whose loss hurts most."""
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


def _layer_drops(sensitivity: dict[str, Any] | None, layers: int) -> list[float] | None:
    if not sensitivity or sensitivity.get("layers") != layers:
        return None
    drops = [0.0] * layers
    for row in sensitivity.get("layer_drop", []):
        if 0 <= row["layer"] < layers:
            drops[row["layer"]] = max(0.0, float(row["acc_drop"]))
    return drops


# --------------------------------------------------------------------------- prediction


def effect_shape(eff: dict[str, Any], table: LatencyTable) -> dict[str, Any]:
    """Layers kept, heads kept per layer, the FFN cost factor, and the int8 scheme."""
    kept = eff.get("kept_layers", list(range(table.layers)))
    heads = table.heads - round(table.heads * eff.get("heads_removed", 0.0))
    rank = eff.get("ffn_rank")
    if rank:  # two thin matrices instead of one: r*min(m,n)*(m+n) of m*n multiply-adds
        m, n = table.hidden, table.intermediate
        ffn = min(1.0, rank * min(m, n) * (m + n) / (m * n))
    else:
        ffn = 1.0
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
    """The effect of the first n steps of `c` (int8 is last; heads come after depth)."""
    methods = [s.method for s in c.steps[:n]]
    eff = dict(c.effect)
    if "quantize" not in methods:
        eff.pop("int8", None)
    labels = [s.label for s in c.steps[:n]]
    if not any("heads" in lab for lab in labels):
        eff.pop("heads_removed", None)
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
