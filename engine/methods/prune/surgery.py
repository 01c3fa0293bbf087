"""Pruning surgery on BERT-style encoders: physical head removal, magnitude sparsity, 2:4 masks,
and rebuilding a pruned checkpoint from disk (layer dropping is shared with the sensitivity map
in engine/toolkit/layers.py; head scores come from engine/toolkit/head_scoring.py).

Head numbers are always those of the ORIGINAL model (`config.num_attention_heads` heads per
layer); `config.pruned_heads` maps a layer index to the original numbers of its removed heads,
so a model pruned twice, saved and reloaded keeps one consistent numbering. Layer indices are
those of the current model. transformers 5 has no `prune_heads`, hence the slicing here.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.toolkit.config import LabError
from engine.toolkit.heads import head_size, heads_per_layer, kept_heads, pruned_map
from engine.toolkit.layers import drop_layers, encoder_layers

# the grid and the layer list (shared with the sensitivity map), re-exported
__all__ = ["drop_layers", "encoder_layers", "head_size", "heads_per_layer", "kept_heads",
           "pruned_map"]

# ------------------------------------------------------------------------ structure


class _NoHeads:
    """Mixin for a self-attention with every head removed: it outputs a [B, T, 0] tensor, so
    the attention block adds only the output bias before its LayerNorm, exactly what masking
    all of the layer's heads gives. Attention maps come back as [B, 0, T, T]."""

    def forward(self, hidden_states, attention_mask=None, *args, **kwargs):
        b, t = hidden_states.shape[:2]
        empty = hidden_states.new_zeros(b, t, 0)
        return empty, hidden_states.new_zeros(b, 0, t, t)


_NO_HEADS_CLASSES: dict[type, type] = {}


def linear_with(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """A new nn.Linear holding copies of `weight` [out, in] and `bias` [out] (or none)."""
    with warnings.catch_warnings():  # a layer with no heads left has zero-size weights
        warnings.filterwarnings("ignore", "Initializing zero-element tensors")
        out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                        device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            out.bias.copy_(bias)
    return out


def _slice_attention(attention: nn.Module, keep: list[int], d: int) -> None:
    """Keep the heads at positions `keep` (of the module's current heads): slice the rows of
    query/key/value [n*d, hidden] and the columns of the output projection [hidden, n*d]."""
    sa, dense = attention.self, attention.output.dense
    idx = torch.tensor([p * d + j for p in keep for j in range(d)], dtype=torch.long,
                       device=dense.weight.device)
    for name in ("query", "key", "value"):
        lin = getattr(sa, name)
        setattr(sa, name, linear_with(lin.weight.data[idx], None if lin.bias is None
                                  else lin.bias.data[idx]))
    attention.output.dense = linear_with(dense.weight.data[:, idx], dense.bias.data
                                     if dense.bias is not None else None)
    sa.num_attention_heads = len(keep)
    sa.all_head_size = len(keep) * d
    if not keep and not isinstance(sa, _NoHeads):
        # Swap in a subclass (not another class) so hooks that look for the model's
        # self-attention class (output_attentions capture) still find this layer.
        cls = type(sa)
        if cls not in _NO_HEADS_CLASSES:
            _NO_HEADS_CLASSES[cls] = type(f"{cls.__name__}NoHeads", (_NoHeads, cls), {})
        sa.__class__ = _NO_HEADS_CLASSES[cls]


def remove_heads(model, remove: dict[int, list[int]]) -> int:
    """Physically remove heads (layer -> ORIGINAL head numbers) and record them in
    config.pruned_heads. Returns the number of heads removed now."""
    cfg, layers = model.config, encoder_layers(model)
    pruned, d, count = pruned_map(cfg), head_size(cfg), 0
    for layer, heads in sorted(remove.items()):
        if not 0 <= layer < len(layers):
            raise LabError(f"layer {layer} does not exist: the model has layers 0 to "
                           f"{len(layers) - 1}")
        kept = kept_heads(cfg, layer)
        for h in heads:
            if h not in kept:
                raise LabError(f"head {layer}:{h} is not in the model (heads are numbered 0 "
                               f"to {cfg.num_attention_heads - 1}; removed already: "
                               f"{pruned.get(layer, [])})")
        gone = set(heads)
        if not gone:
            continue
        _slice_attention(layers[layer].attention, [p for p, h in enumerate(kept)
                                                   if h not in gone], d)
        pruned[layer] = sorted(set(pruned.get(layer, [])) | gone)
        count += len(gone)
        cfg.pruned_heads = pruned
    cfg.pruned_heads = {k: v for k, v in pruned.items() if v}
    return count


def layers_to_drop(n_layers: int, amount: float, strategy: str) -> list[int]:
    """Sajjad et al.'s strategies: the top or bottom k layers, or every other layer from the
    top (the last layer kept), with k = round(amount * n_layers)."""
    k = min(n_layers - 1, round(amount * n_layers))
    if strategy == "top":
        return list(range(n_layers - k, n_layers))
    if strategy == "bottom":
        return list(range(k))
    alternate = list(range(n_layers - 2, -1, -2))  # L-2, L-4, ...: keeps the top layer
    return sorted(alternate[:k])


# ------------------------------------------------------------------------ weight sparsity


def prunable_linears(model) -> list[tuple[str, nn.Linear]]:
    """The encoder's linear layers (attention and feed-forward): what weight pruning touches.
    Embeddings, the pooler and the classifier stay dense (small, and accuracy-critical)."""
    layers = encoder_layers(model)
    return [(f"layer.{i}.{name}", m) for i, layer in enumerate(layers)
            for name, m in layer.named_modules()
            if isinstance(m, nn.Linear) and m.weight.numel() > 0]


def magnitude_masks(model, amount: float, scope: str) -> dict[str, torch.Tensor]:
    """Boolean keep-masks that zero the `amount` fraction of smallest |w|, over all encoder
    linear weights together (global) or within each weight matrix (per-layer)."""
    linears = prunable_linears(model)
    if scope == "global":
        flat = torch.cat([m.weight.detach().abs().flatten().float().cpu() for _, m in linears])
        k = int(amount * flat.numel())
        threshold = flat.kthvalue(k).values.item() if k else -1.0
        return {n: m.weight.detach().abs().float() > threshold for n, m in linears}
    masks = {}
    for n, m in linears:
        w = m.weight.detach().abs().float()
        k = int(amount * w.numel())
        threshold = w.flatten().kthvalue(k).values.item() if k else -1.0
        masks[n] = w > threshold
    return masks


def two_four_masks(model) -> dict[str, torch.Tensor]:
    """2:4 keep-masks: in every group of 4 consecutive input weights, the 2 largest |w|."""
    masks = {}
    for n, m in prunable_linears(model):
        w = m.weight.detach()
        if w.shape[1] % 4:
            continue
        groups = w.abs().reshape(w.shape[0], -1, 4)
        top = groups.topk(2, dim=-1).indices
        mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True)
        masks[n] = mask.reshape_as(w)
    return masks


def apply_masks(model, masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, m in prunable_linears(model):
            if n in masks:
                m.weight.mul_(masks[n].to(m.weight.device, m.weight.dtype))


def keep_masked(model, masks: dict[str, torch.Tensor]) -> list[Any]:
    """Gradient hooks that zero the gradients of pruned weights, so recovery training keeps
    them at zero (AdamW's moments stay zero too). Returns the handles to remove."""
    handles = []
    for n, m in prunable_linears(model):
        if n in masks:
            mask = masks[n].to(m.weight.device, m.weight.dtype)
            handles.append(m.weight.register_hook(lambda g, mask=mask: g * mask))
    return handles


def sparsity(model) -> dict[str, float]:
    """Fraction of zeros in the encoder's linear weights and in all parameters."""
    linears = prunable_linears(model)
    zeros = sum(int((m.weight == 0).sum()) for _, m in linears)
    count = sum(m.weight.numel() for _, m in linears)
    all_zeros = sum(int((p == 0).sum()) for p in model.parameters())
    all_count = sum(p.numel() for p in model.parameters())
    return {"encoder_linear": round(zeros / max(1, count), 5),
            "all_params": round(all_zeros / max(1, all_count), 5)}


# ------------------------------------------------------------------------ 2:4 on the GPU


def to_semi_structured(model) -> list[str]:
    """Half precision, then every 2:4-masked encoder linear weight as a sparse semi-structured
    tensor (CUDA only). Returns the names of weights left dense (shape not supported)."""
    from torch.sparse import to_sparse_semi_structured

    model.half()
    dense = []
    for n, m in prunable_linears(model):
        try:
            m.weight = nn.Parameter(to_sparse_semi_structured(m.weight.detach()),
                                    requires_grad=False)
        except (RuntimeError, ValueError):
            dense.append(n)
    return dense


# ------------------------------------------------------------------------ estimates, loading


def encoder_flops_per_token(config, seq_len: int) -> float:
    """Multiply-adds x 2 per token through the encoder (projections, attention scores and
    mixing, feed-forward), from the config; embeddings and head are negligible."""
    h, d, i = config.hidden_size, head_size(config), config.intermediate_size
    total = 0.0
    for n in heads_per_layer(config):
        total += 2 * (4 * h * n * d + 2 * seq_len * n * d + 2 * h * i)
    return total


def rebuild_heads(model, change: dict, saved_config):
    """Replay of a heads_removed change: remove what the saved config.pruned_heads lists and
    the model still has (idempotent, so a model pruned twice replays both at the first)."""
    target = pruned_map(saved_config)
    todo = {layer: [h for h in heads if h in kept_heads(model.config, layer)]
            for layer, heads in target.items()}
    remove_heads(model, {k: v for k, v in todo.items() if v})
    return model


def finish_sparsified(model, change: dict):
    """Replay of a sparsified change after the weights load: 2:4 weights go to the GPU's
    semi-structured kernels when one is there (zeros are already in the weights)."""
    if change.get("semi_structured") and torch.cuda.is_available():
        model = model.cuda()
        to_semi_structured(model)
    return model


def load(path: Path, meta: dict, eager_attention: bool = False):
    """A pruned checkpoint through the lab's one loader (a folder saved before change lists
    is read as a prune output)."""
    from engine.toolkit.architecture import load_saved

    return load_saved(path, {"loader": "prune", **meta}, eager_attention=eager_attention)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def ffn_share(config, seq_len: int) -> float:
    """Share of the encoder's arithmetic (encoder_flops_per_token) in the feed-forward blocks."""
    total = encoder_flops_per_token(config, seq_len)
    ffn = 2 * 2 * config.hidden_size * config.intermediate_size * config.num_hidden_layers
    return ffn / total if total else 0.0


def fewer_params(params_before: int, model) -> str:
    """"the model has 40% fewer parameters (22.7M -> 13.6M)", for explanations."""
    after = sum(p.numel() for p in model.parameters())
    return (f"the model has {1 - after / params_before:.0%} fewer parameters "
            f"({params_before / 1e6:.1f}M -> {after / 1e6:.1f}M)")


def plain_attention(model) -> bool:
    """True when every attention projection is a single nn.Linear (head surgery slices them)."""
    return all(isinstance(getattr(layer.attention.self, k), nn.Linear)
               and isinstance(layer.attention.output.dense, nn.Linear)
               for layer in encoder_layers(model) for k in ("query", "key", "value"))
