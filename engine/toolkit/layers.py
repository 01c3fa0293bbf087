"""The encoder layers of a BERT-style model, and dropping whole layers from it: shared by the
prune method (kind=layers) and the sensitivity map (each layer dropped alone).

Layer indices are those of the current model; `config.kept_layers` records the ORIGINAL
numbers of the layers left, so the numbering survives saving and later jobs.
"""

from __future__ import annotations

from torch import nn

from engine.toolkit.config import LabError
from engine.toolkit.heads import pruned_map


def encoder_layers(model) -> nn.ModuleList:
    """The encoder's layer list of a BERT-style model (BERT, MiniLM, RoBERTa...)."""
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    ok = layers is not None and all(
        hasattr(getattr(layer, "attention", None), "self")
        and hasattr(layer.attention.self, "query") for layer in layers)
    if not ok:
        raise LabError(f"pruning supports BERT-style encoders (BERT, MiniLM, RoBERTa); "
                       f"{type(model).__name__} has another layout: distill it into a BERT "
                       f"student first")
    return layers



def drop_layers(model, drop: list[int]) -> list[int]:
    """Remove whole encoder layers (current indices); returns the kept current indices.

    The config records what the ORIGINAL model was, so the numbering survives saving and
    later jobs (quantize, another drop): `kept_layers` (original numbers of the layers left)
    and `original_layers` (how many the unpruned model had)."""
    cfg, layers = model.config, encoder_layers(model)
    keep = [i for i in range(len(layers)) if i not in set(drop)]
    assert keep, "at least one layer must stay"
    original = list(getattr(cfg, "kept_layers", None) or range(len(layers)))
    cfg.kept_layers = [int(original[i]) for i in keep]
    cfg.original_layers = int(getattr(cfg, "original_layers", None) or len(layers))
    model.base_model.encoder.layer = nn.ModuleList([layers[i] for i in keep])
    for new, layer in enumerate(model.base_model.encoder.layer):
        for module in layer.modules():  # the KV-cache index, unused by encoders but kept right
            if hasattr(module, "layer_idx"):
                module.layer_idx = new
    pruned = pruned_map(cfg)
    cfg.num_hidden_layers = len(keep)
    cfg.pruned_heads = {new: pruned[old] for new, old in enumerate(keep) if old in pruned}
    return keep

