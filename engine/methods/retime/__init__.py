"""Re-time two stored models interleaved in one process: a paired end-to-end speedup.

`python -m engine submit retime --model job:LEAF --set against=job:ROOT` times the job's
input model (role self) and `against` (role parent) in one `measure` call per length, under
the same runtime(s), and stores latency rows and speedup metrics exactly like any job
(speedup_vs_parent is against `against`; `paired_with` names it): a chain's speedup over its
root measured, not multiplied along the chain. No accuracy pass and no new model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.methods.registry import register
from engine.toolkit.config import ConfigError, MethodConfig, param


@dataclass(frozen=True)
class RetimeConfig(MethodConfig):
    """Time the input model against another stored model, interleaved."""

    method = "retime"
    version = 1
    produces_model = False
    measures_accuracy = False  # the runner skips the accuracy pass (engine/runner/evaluating)

    against: str = param("default", "The model to time against (role parent): a model id such "
                         "as job:ROOT, default (the teacher, the usual root of a chain), or a "
                         "local model directory.")
    max_length: int = param(64, "Sequence length of the timed inputs (tokens).", min=8,
                            max=512)
    batch_sizes: list[int] = param([1, 32], "Batch sizes at which latency is measured.",
                                   min=1, max=1024)
    runtimes: list[str] = param(["eager", "compiled"], "Runtimes both models are timed under "
                                "(each ratio compares one runtime).",
                                choices=("eager", "compiled"))
    warmup: int = param(3, "Untimed runs before timing, per batch size.", min=0, max=100,
                        advanced=True)
    latency_runs: int = param(30, "Timed runs per batch size, at least.", min=2, max=1000,
                              advanced=True)
    latency_max_runs: int = param(60, "Timed runs at most (goes on until the medians move "
                                  "by under 2 %).", min=0, max=5000, advanced=True)

    def check(self) -> None:
        if not self.against.strip():
            raise ConfigError("retime: say which model to time against, e.g. "
                              "--set against=job:1 (the root of the chain)")
        # whether it exists and is long enough is checked at submit (check_input)

    def pair_with(self) -> str | None:
        """The model the runner times as the parent (engine/runner/evaluating.pair_with)."""
        return self.against.strip()


def check_input(cfg: RetimeConfig, card: dict[str, Any], dataset) -> None:
    """`against` must be a model this lab can load, and long enough for max_length."""
    from engine.toolkit.timing import check_length, check_other_model

    check_other_model(cfg.against, [cfg.max_length], "retime")
    check_length(card, [cfg.max_length], "retime")


@register(RetimeConfig)
def apply(cfg: RetimeConfig, ctx) -> None:
    """Nothing to do before timing: the runner times the input against `cfg.against`."""
    return None
