"""Low-rank factorisation of an encoder's Linear layers by truncated SVD, its replay on a
skeleton, and arithmetic estimates.

A Linear y = W x + b with W [out, in] becomes W ~ U_r S_r V_r^T: nn.Sequential(
Linear(in, r, no bias) with weight sqrt(S_r) V_r^T [r, in], Linear(r, out) with weight
U_r sqrt(S_r) [out, r] and the original bias). Modules are named by their encoder layer's
ORIGINAL number (config.kept_layers, as prune's drop_layers records it) and their path inside
the layer, so a later layer drop does not shift them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engine.toolkit.config import LabError

TARGETS = {
    "ffn": ("intermediate.dense", "output.dense"),
    "attention": ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"),
}
TARGETS["both"] = TARGETS["attention"] + TARGETS["ffn"]


def encoder_layers(model) -> nn.ModuleList:
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if layers is None:
        raise LabError(f"lowrank supports BERT-style encoders; {type(model).__name__} has "
                       f"another layout")
    return layers


def original_numbers(config) -> list[int]:
    """Original layer number of each current encoder layer."""
    return [int(i) for i in (getattr(config, "kept_layers", None)
                             or range(config.num_hidden_layers))]


def _set(layer: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(layer.get_submodule(parent) if parent else layer, name, module)


def choose_rank(s: torch.Tensor, rank: float, energy: float) -> int:
    """Rank to keep from singular values `s` (descending): the smallest r whose squared
    singular values hold `energy` of the total (energy > 0), else round(rank x full rank);
    at least 1."""
    full = s.numel()
    if energy > 0:
        share = torch.cumsum(s.double() ** 2, 0) / (s.double() ** 2).sum().clamp_min(1e-30)
        r = int((share < energy - 1e-12).sum()) + 1
    else:
        r = round(rank * full)
    return max(1, min(full, r))


def factorised_linear(lin: nn.Linear, r: int) -> tuple[nn.Sequential, float]:
    """The two thinner Linears of rank `r` that approximate `lin`, and the share of the
    squared singular values (spectral energy) they keep."""
    w = lin.weight.detach().double()
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    root = s[:r].sqrt()
    first = nn.Linear(lin.in_features, r, bias=False, device=lin.weight.device,
                      dtype=lin.weight.dtype)
    second = nn.Linear(r, lin.out_features, bias=lin.bias is not None,
                       device=lin.weight.device, dtype=lin.weight.dtype)
    with torch.no_grad():
        first.weight.copy_((root[:, None] * vh[:r]).to(lin.weight.dtype))
        second.weight.copy_((u[:, :r] * root[None, :]).to(lin.weight.dtype))
        if lin.bias is not None:
            second.bias.copy_(lin.bias.detach())
    kept = float((s[:r] ** 2).sum() / (s ** 2).sum().clamp_min(1e-30))
    return nn.Sequential(first, second), kept


def targets(model, target: str, layers: list[int]) -> list[tuple[int, int, str, nn.Linear]]:
    """(current layer, original layer, path, Linear) of every plain, non-empty Linear that
    `target` names in the chosen current `layers` (empty: all)."""
    original = original_numbers(model.config)
    out = []
    for i, layer in enumerate(encoder_layers(model)):
        if layers and i not in layers:
            continue
        for path in TARGETS[target]:
            m = layer.get_submodule(path)
            if isinstance(m, nn.Linear) and m.weight.numel():
                out.append((i, original[i], path, m))
    return out


def factorise(model, target: str, rank: float, energy: float, layers: list[int],
              progress=None) -> list[dict[str, Any]]:
    """Factorise the chosen Linears in place. Returns one record per module: {layer (original
    number), module (path in the layer), rank, full_rank, in, out, energy}."""
    chosen = targets(model, target, layers)
    records = []
    for k, (i, orig, path, lin) in enumerate(chosen):
        s = torch.linalg.svdvals(lin.weight.detach().double())
        r = choose_rank(s, rank, energy)
        seq, kept = factorised_linear(lin, r)
        _set(encoder_layers(model)[i], path, seq)
        records.append({"layer": orig, "module": path, "rank": r, "full_rank": s.numel(),
                        "in": lin.in_features, "out": lin.out_features,
                        "energy": round(kept, 5)})
        if progress:
            progress((k + 1) / len(chosen))
    return records


def rebuild(model, change: dict[str, Any], saved_config):
    """Replay of a factorised change on a skeleton: the recorded modules become two Linears
    of the recorded rank (weights come from the checkpoint). Layers dropped later are
    skipped."""
    original = original_numbers(model.config)
    layers = encoder_layers(model)
    for m in change.get("modules", []):
        if m["layer"] not in original:
            continue
        layer = layers[original.index(m["layer"])]
        lin = layer.get_submodule(m["module"])
        if not isinstance(lin, nn.Linear):
            raise LabError(f"lowrank: cannot replay the factorisation of layer {m['layer']} "
                           f"{m['module']}: it is not a plain Linear in the rebuilt model")
        r = int(m["rank"])
        seq = nn.Sequential(
            nn.Linear(lin.in_features, r, bias=False, dtype=lin.weight.dtype),
            nn.Linear(r, lin.out_features, bias=lin.bias is not None, dtype=lin.weight.dtype))
        _set(layer, m["module"], seq)
    return model


def encoder_macs_per_token(model, seq_len: int) -> float:
    """Multiply-adds per token through the encoder: every Linear's weights (factorised ones
    count both thin matrices) plus the attention scores and mixing (2 x seq x heads' width)."""
    total = 0.0
    for layer in encoder_layers(model):
        total += sum(m.weight.numel() for m in layer.modules() if isinstance(m, nn.Linear))
        sa = layer.attention.self
        width = getattr(sa, "all_head_size", None)
        if width is None:
            width = sa.num_attention_heads * sa.attention_head_size
        total += 2 * seq_len * width
    return total
