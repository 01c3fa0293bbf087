"""Evaluate a model: accuracy, macro-F1, per-example predictions, latency, size."""

from __future__ import annotations

from engine.methods.evaluate.checks import check_input
from engine.methods.registry import register
from engine.toolkit.measuring import EvaluateConfig

__all__ = ["EvaluateConfig", "apply", "check_input"]


@register(EvaluateConfig)
def apply(cfg: EvaluateConfig, ctx) -> None:
    """Nothing to produce: the runner evaluates the input model with `cfg`."""
    return None
