"""quantize's submit-time checks against the input model's facts (no torch)."""

from __future__ import annotations

from typing import Any

from engine.toolkit.config import MethodConfig, check_head_fits


def check_input(cfg: MethodConfig, card: dict[str, Any], dataset: Any) -> None:
    """Quantization keeps the model's own classifier: it must exist and fit the dataset."""
    check_head_fits("quantize", card, dataset)
