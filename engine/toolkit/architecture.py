"""One way to rebuild a compressed model: the ordered list of architecture changes a saved model
records in its lab_meta.json, the registry of change kinds, and the loader that replays them.

A lab-saved model folder holds config.json, safetensors weights and lab_meta.json, whose
`changes` is the ordered list of what was done to the architecture since the plain BERT that
config.json describes, the parent's changes first (a chain distill -> prune -> lowrank ->
quantize lists every step). Each change is a JSON object with a `kind` and that kind's own
fields, e.g.

    {"kind": "heads_removed", "heads": {"0": [1, 3]}}       (prune: layer -> original heads)
    {"kind": "layers_dropped", "dropped": [4, 5], "kept": [0, 1, 2, 3]}  (original numbers)
    {"kind": "ffn_narrowed", "from": 1536, "to": 768}  (prune kind=ffn: neurons per layer)
    {"kind": "sparsified", "pattern": "2:4", "semi_structured": true}
    {"kind": "factorised", "modules": [{"layer": 2, "module": "intermediate.dense",
                                        "rank": 96}]}  (lowrank; layer: original number)
    {"kind": "quantized", "scheme": "int8-dynamic", "dtype": "float32", "embeddings": true}
    {"kind": "mean_pooled"}  (finetune: the head reads the mean of the token states, not the
                              pooler; engine/toolkit/pooling.py)

A method package registers the kinds it makes (`register_change`) when it is imported; the
loader imports the method packages through the registry (by name, so this shared module does
not import upwards). Replaying means: build the model config.json describes with empty weights
(`skeleton`), call each change's `rebuild` in order (shape changes), read the weights (a
change may supply its own reader, e.g. torchao's flattened int8 tensors), load them, then call
each change's `finish` in order (e.g. wrap int8 embeddings, move 2:4 weights to sparse kernels).

Rebuilds run against the config as saved (its final layer count, its `pruned_heads`, its
`kept_layers`), so each must be written to reach the saved shape from the plain skeleton,
whatever came after it; a kind that the config already fully describes has
nothing to rebuild (layers dropped; ffn_narrowed: its intermediate_size). Importing this
module does not import torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.toolkit.config import LabError

Change = dict[str, Any]  # {"kind": ..., kind-specific fields}


@dataclass(frozen=True)
class ChangeKind:
    """How to replay one kind of change. rebuild(model, change, saved_config) -> model, before
    the weights load (on the CPU, empty weights); read_state(path, change) -> state dict,
    replacing the plain safetensors read (loaded with assign=True); finish(model, change) ->
    model, after the weights load. load(path, change, eager_attention) -> model: the change
    replaced the PyTorch model by another runtime's artifact (an ONNX graph); as the last
    change it loads the folder alone."""

    kind: str
    rebuild: Callable[[Any, Change, Any], Any] | None = None
    read_state: Callable[[Path, Change], dict[str, Any]] | None = None
    finish: Callable[[Any, Change], Any] | None = None
    load: Callable[[Path, Change, bool], Any] | None = None


_KINDS: dict[str, ChangeKind] = {}


def register_change(kind: str, rebuild=None, read_state=None, finish=None, load=None) -> None:
    """Called by a method package at import time for each change kind it makes."""
    _KINDS[kind] = ChangeKind(kind, rebuild, read_state, finish, load)


def change_kind(kind: str) -> ChangeKind:
    if kind not in _KINDS:
        # the method packages register their kinds when imported; import them by name (the
        # registry sits above this module)
        importlib.import_module("engine.methods.registry").methods()
    if kind not in _KINDS:
        raise LabError(f"a saved model records an architecture change {kind!r} that no method "
                       f"of this lab makes; upgrade the lab or re-run the job that made it")
    return _KINDS[kind]


# ------------------------------------------------------------------------------ the record


def changes_of(meta: dict[str, Any], config: dict[str, Any] | None = None) -> list[Change]:
    """The ordered change list of a saved model's lab metadata. Folders saved before the list
    existed name a `loader` instead: their list is rebuilt from what they recorded
    (`config`: their config.json as a dict, for the pruned heads)."""
    if "changes" in meta:
        return list(meta["changes"] or [])
    loader = meta.get("loader")
    if not loader:
        return []
    out: list[Change] = []
    if (config or {}).get("pruned_heads") or config is None:
        out.append({"kind": "heads_removed"})
    if loader == "prune" and meta.get("semi_structured"):
        out.append({"kind": "sparsified", "pattern": "2:4", "semi_structured": True})
    if loader == "quantize":
        out.append({"kind": "quantized", "scheme": meta.get("scheme"),
                    "dtype": meta.get("dtype", "float32"),
                    "embeddings": bool(meta.get("embeddings"))})
    return out


def inherited(ref) -> list[Change]:
    """The change list of the model `ref` (a ModelRef) points to: what a new model made from it
    starts from. Empty for hub models, presets and plain folders."""
    import json

    from engine.toolkit.checkpoints import read_meta

    if ref.source in ("hub", "preset"):
        return []
    config_file = Path(ref.path) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return changes_of(read_meta(ref.path), config)


def chain(ref, *new: Change) -> list[Change]:
    """The parent's changes followed by `new`: what a method puts in its Produced.meta
    ["changes"]."""
    return [*inherited(ref), *new]


def weight_changes(ref) -> list[Change]:
    """The parent's changes that made its weights other than plain float BERT weights: all
    but mean_pooled (a pooling; no weight changed), which distill copies to a student."""
    return [c for c in inherited(ref) if c.get("kind") != "mean_pooled"]


def has_kind(changes: list[Change], kind: str) -> bool:
    return any(c.get("kind") == kind for c in changes)


# ------------------------------------------------------------------------------ the loader


def skeleton(path: str | Path, eager_attention: bool = False):
    """The plain model config.json in `path` describes (its saved layer count; no heads removed
    yet: `pruned_heads` is emptied and replayed by the heads_removed change), with empty
    weights on the CPU. Non-persistent buffers (position ids) are set as the model would.
    Returns (model, saved config)."""
    import copy

    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    saved = AutoConfig.from_pretrained(path, trust_remote_code=False)
    config = copy.deepcopy(saved)
    config._attn_implementation = "eager" if eager_attention else "sdpa"
    config.pruned_heads = {}
    with torch.device("meta"):  # no time spent initialising weights that are overwritten
        model = AutoModelForSequenceClassification.from_config(
            config, attn_implementation=config._attn_implementation)
    model = model.to_empty(device="cpu")
    emb = model.base_model.embeddings
    with torch.no_grad():
        if hasattr(emb, "position_ids"):
            emb.position_ids.copy_(torch.arange(emb.position_ids.shape[-1]).expand(1, -1))
        if hasattr(emb, "token_type_ids"):
            emb.token_type_ids.zero_()
    return model, saved


def _plain_state(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for f in sorted(Path(path).glob("*.safetensors")):
        state.update(load_file(str(f)))
    return state


def load_saved(path: str | Path, meta: dict[str, Any], eager_attention: bool = False):
    """Rebuild a lab-saved model from its folder: skeleton, replay `changes_of(meta)`, load the
    weights, finish. On the CPU (the caller moves it); LabError when the weights do not fit."""
    import json

    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    changes = changes_of(meta, config)
    kinds = [change_kind(c["kind"]) for c in changes]
    if kinds and kinds[-1].load is not None:  # another runtime's artifact, not a state dict
        return kinds[-1].load(path, changes[-1], eager_attention)
    model, saved = skeleton(path, eager_attention)
    for kind, change in zip(kinds, changes):
        if kind.rebuild is not None:
            model = kind.rebuild(model, change, saved) or model
    from engine.toolkit.heads import pruned_map

    if pruned_map(model.config) != pruned_map(saved):
        raise LabError(f"{path}: config.json records removed heads that its change list does "
                       f"not rebuild; re-run the job that made it")
    readers = [(k, c) for k, c in zip(kinds, changes) if k.read_state is not None]
    if readers:
        kind, change = readers[-1]
        state = kind.read_state(path, change)
    else:
        state = _plain_state(path)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=bool(readers))
    # non-persistent buffers (position ids) are never saved: skeleton() set them
    real_missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if real_missing or unexpected:
        raise LabError(f"{path}: the weights do not match the rebuilt model (missing "
                       f"{real_missing[:3]}, unexpected {unexpected[:3]}); re-run the job")
    for kind, change in zip(kinds, changes):
        if kind.finish is not None:
            model = kind.finish(model, change) or model
    return model.eval()
