"""The search's vocabulary: its constants and priors, the constraints a user gives, a step
of a chain, a candidate chain, and the latency table measured on this machine."""

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
# heads and ffn (2026-12-08, the finetune-v4 teacher, a 3-layer student of it, judging half):
# half the heads then half the FFN neurons, each with its 300 recovery steps, moved the
# judging accuracy by -0.6 / +0.6 and +0.2 / +0.2 points in two chains (test: -0.05 / +0.2,
# -0.85 / -0.05); half the heads of the 6-layer v3 teacher lost 0.8 (2026-12-07): 0.01 per unit
# removed, on the layers kept, is 0.5 points for half of either on a 3-layer student.
# ffn: the five FFN steps of those chains (half or two thirds of the neurons, 300 recovery
# steps distilled from the parent) moved the judging drop by -0.40 points on average
# (gains) and the test drop by +0.10: 0.003 per unit (0.2 points for two thirds of a
# 4-layer student's neurons), not 0.01, which put the 4-layer deep chain past the budget.
PRIOR_DROP = {"distill": 0.02, "layers": 0.035, "heads": 0.01, "ffn": 0.003, "lowrank": 0.01}
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

    @staticmethod
    def over_budget(drop: float, allowed: float) -> bool:
        """Whether a measured drop (fraction) exceeds `allowed`. Accuracies are counts over n
        examples, so a drop of exactly the budget comes out as 0.854 - 0.834 =
        0.020000000000000018 in floats: "at most 2 points" must admit it (a 60-minute search
        stopped distill-to-3 chains at "lost 2.00 points" that way)."""
        return drop > allowed + 1e-9

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
