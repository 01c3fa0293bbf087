"""Feed-forward neuron pruning (prune kind=ffn): score each layer's intermediate neurons, remove
the lowest-scoring share of every layer, and slice the two FFN matrices to match.

A BERT layer's feed-forward block is intermediate.dense [I, hidden] -> GELU -> output.dense
[hidden, I]; neuron j is row j of the first and column j of the second, so removing it is exact
(nothing else reads the intermediate activations). Every layer keeps the same number of neurons,
so `config.intermediate_size` describes the pruned model and it reloads from its config.json
with no replay. At MiniLM's shape (hidden 384, I = 1536) the FFN is about two thirds of a
layer's multiply-adds at 64 tokens: the widest structured cut a model has after its depth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from engine.methods.prune.surgery import fewer_params, linear_with, timed
from engine.toolkit.config import LabError
from engine.toolkit.head_scoring import gate_gradients, scoring_sample
from engine.toolkit.layers import encoder_layers


def plain_ffn(model) -> bool:
    """True when every layer's feed-forward block is two single nn.Linear (not factorised)."""
    return all(isinstance(layer.intermediate.dense, nn.Linear)
               and isinstance(layer.output.dense, nn.Linear) for layer in encoder_layers(model))


def neuron_importance(model, tokenizer, texts: list[str], labels: list[int], method: str,
                      max_length: int = 64, batch_size: int = 32, seed: int = 0,
                      device: str = "cpu",
                      progress: Callable[[float], None] | None = None) -> list[torch.Tensor]:
    """[I] scores per layer, higher = more important.

    gradient: the mean over examples of |dL(x)/dgate_j| for a gate on neuron j's activation
    (after GELU), i.e. |sum over tokens of a_j dL/da_j| (first-order Taylor, Molchanov et al.
    2017), one backward pass per batch. magnitude: ||row j of intermediate.dense|| x ||column
    j of output.dense|| (what the neuron can add to the residual stream). random: uniform
    from `seed` (a baseline)."""
    layers = encoder_layers(model)
    counts = [layer.intermediate.dense.out_features for layer in layers]
    if method == "random":
        g = torch.Generator().manual_seed(seed)
        return [torch.rand(n, generator=g) for n in counts]
    if method == "magnitude":
        return [(layer.intermediate.dense.weight.detach().float().norm(dim=1)
                 * layer.output.dense.weight.detach().float().norm(dim=0)).cpu()
                for layer in layers]
    if method != "gradient":
        raise LabError(f"unknown importance {method!r}; use gradient, magnitude or random")

    def gate_neurons(output: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return output * gate.unsqueeze(1).to(output.dtype)  # [B, T, I] x [B, 1, I]

    return gate_gradients(model, [layer.intermediate for layer in layers], counts,
                          gate_neurons, tokenizer, texts, labels, max_length, batch_size,
                          device, progress)


def neurons_to_keep(scores: list[torch.Tensor], amount: float) -> list[list[int]]:
    """The indices each layer keeps: the highest-scoring round((1 - amount) x I) of its I
    neurons (at least one; ties: the lower index), ascending so the order of what stays is
    the order it had. The same count in every layer (config.intermediate_size is one number)."""
    width = {int(s.numel()) for s in scores}
    if len(width) > 1:
        raise LabError(f"prune: the layers' feed-forward widths differ ({sorted(width)}); "
                       f"kind=ffn keeps one width for all layers")
    n = width.pop() if width else 0
    keep = max(1, round((1 - amount) * n))
    if keep >= n:
        raise LabError(f"prune: amount={amount} of {n} feed-forward neurons per layer rounds "
                       f"to none; raise it to at least {0.5 / n:.4f}")
    out = []
    for s in scores:
        # stable sort on -score: equal scores keep the lower index first
        order = sorted(range(n), key=lambda j: (-float(s[j]), j))
        out.append(sorted(order[:keep]))
    return out


def remove_neurons(model, keep: list[list[int]]) -> int:
    """Keep only the neurons `keep[i]` (current indices) of layer i's feed-forward block and set
    config.intermediate_size; returns the number of neurons removed over all layers."""
    layers = encoder_layers(model)
    if len(keep) != len(layers) or len({len(k) for k in keep}) > 1:
        raise LabError("prune: kind=ffn keeps the same number of neurons in every layer")
    removed = 0
    for layer, kept in zip(layers, keep):
        inter, out = layer.intermediate, layer.output
        idx = torch.tensor(kept, dtype=torch.long, device=inter.dense.weight.device)
        removed += inter.dense.out_features - len(kept)
        first, second = inter.dense, out.dense  # rows j of the first, columns j of the second
        inter.dense = linear_with(first.weight.data[idx],
                                  None if first.bias is None else first.bias.data[idx])
        out.dense = linear_with(second.weight.data[:, idx],
                                None if second.bias is None else second.bias.data)
    if keep:
        model.config.intermediate_size = len(keep[0])
    return removed


def narrow_ffn(cfg: Any, model, ctx, params_before: int) -> dict[str, Any]:
    """prune kind=ffn's step (`cfg`: a PruneConfig): score every layer's feed-forward neurons
    on a seeded training sample (never the test split), remove the lowest `cfg.amount` of each
    layer's; returns the job's notes (counts, scoring, explanation)."""
    texts, labels = scoring_sample(ctx.dataset.train, cfg.scoring_examples, cfg.seed)
    before = int(model.config.intermediate_size)
    ctx.progress(0.02, f"scoring feed-forward neurons by {cfg.importance}", force=True)
    scores, seconds = timed(lambda: neuron_importance(
        model, ctx.tokenizer, texts, labels, cfg.importance, max_length=cfg.max_length,
        batch_size=cfg.batch_size, seed=cfg.seed, device=ctx.device,
        progress=lambda f: ctx.progress(0.02 + 0.18 * f, "scoring feed-forward neurons")))
    keep = neurons_to_keep(scores, cfg.amount)
    removed = remove_neurons(model, keep)
    after = int(model.config.intermediate_size)
    layers = len(keep)
    return {"ffn_neurons_before": before, "ffn_neurons_per_layer": after,
            "ffn_importance_method": cfg.importance,
            "ffn_importance_examples": len(texts) if cfg.importance == "gradient" else 0,
            "ffn_importance_seconds": round(seconds, 2),
            "explanation": (
                f"Removed {removed} of {before * layers} feed-forward neurons ({before - after}"
                f" of {before} in each of the {layers} layers, lowest {cfg.importance} "
                f"importance): those rows of each layer's first FFN matrix and columns of its "
                f"second are gone, so {fewer_params(params_before, model)}. The FFN is the "
                f"larger part of a layer's arithmetic; attention is untouched.")}
