"""Mean pooling for a BERT sequence classifier: the head reads the mean of the token states
under the attention mask instead of BERT's pooler (a dense layer and tanh on the [CLS] state).

Why: the embedded encoder, all-MiniLM-L6-v2, was trained as a sentence encoder with mean
pooling; its [CLS] state and pooler were never trained for a sentence-level task. Measured
here once, seed 0, with a scratch form of tests/benchmarks/bench_teacher_recipes.py (Rotten
Tomatoes, 2 CPU threads, 365 steps; mean pooling in bf16, the pooler in fp32 and bf16, which
tracked each other):
83.2 % test accuracy with mean pooling against 82.25 % with the pooler, 80.25 % against
77.85 % after 100 steps. tests/benchmarks/bench_teacher.py measures the recipe as shipped.

The model keeps BertForSequenceClassification's modules and weight names, so every method
(prune, distill, lowrank, quantize, export) and the Attention page work on it unchanged: the
pooler becomes `FirstToken` (no weights; its output is overwritten) and a forward hook on the
encoder replaces `pooler_output` with the masked mean. A saved model records it as the
architecture change {"kind": "mean_pooled"} (registered by the finetune method, which makes
it; distill gives a mean-pooled teacher's student the same), and the one loader replays it.
Import this module only where torch is already wanted.
"""

from __future__ import annotations

from typing import Any

import torch

MEAN_POOLED = "mean_pooled"  # the change kind


class FirstToken(torch.nn.Module):
    """Stands where BertPooler stood: hidden [B, T, H] -> hidden[:, 0] [B, H], no weights.
    A placeholder only: `_mean_hook` replaces what it returns."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden[:, 0]


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of hidden [B, T, H] over the positions where mask [B, T] is 1 -> [B, H]."""
    if mask is None:
        return hidden.mean(dim=1)
    m = mask[:, :hidden.shape[1]].unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def _mean_hook(module, args: tuple, kwargs: dict, output: Any) -> Any:
    """Forward hook on BertModel: pooler_output := masked mean of last_hidden_state."""
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1:
        mask = args[1]
    if isinstance(output, tuple):
        return (output[0], masked_mean(output[0], mask), *output[2:])
    output["pooler_output"] = masked_mean(output["last_hidden_state"], mask)
    return output


def is_mean_pooled(model) -> bool:
    return isinstance(getattr(model.base_model, "pooler", None), FirstToken)


def use_mean_pooling(model):
    """Switch `model` (a BERT sequence classifier) to mean pooling in place; returns it.
    Idempotent. The pooler's weights leave the model (and its state dict)."""
    if is_mean_pooled(model):
        return model
    base = model.base_model
    base.pooler = FirstToken()
    base.register_forward_hook(_mean_hook, with_kwargs=True)
    return model


def pooling_changes(model) -> list[dict[str, Any]]:
    """The architecture change that records `model`'s pooling: [] for BERT's own pooler."""
    return [{"kind": MEAN_POOLED}] if is_mean_pooled(model) else []
