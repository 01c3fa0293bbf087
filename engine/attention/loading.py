"""The model behind the Attention page: loaded once with eager attention, cached by its path,
and its layers and heads mapped to the ORIGINAL grid (see engine/attention/__init__.py).

Pruned models (engine/methods/prune/surgery.py):
`config.pruned_heads` maps a layer (as the saved model
numbers it) to the original numbers of its removed heads; dropped layers are read from
`kept_layers` (the parent's layer numbers that remain) or `dropped_layers` / `pruned_layers`,
on the config, in lab_meta.json or in the notes (metrics) of the job that made the model. So
"original" means the parent's numbering, which is what a side-by-side comparison needs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.toolkit.config import LabError

CACHED_MODELS = 4  # two side by side, plus room to switch back without reloading
DEFAULT_EVAL_LENGTH = 64  # EvaluateConfig's default max_length, for models with no record

_cache: OrderedDict[str, Loaded] = OrderedDict()
# One lock for every use of a cached model: Streamlit serves sessions from several threads,
# and ablation hooks on a shared model must never leak into another session's forward pass.
model_lock = threading.RLock()


@dataclass
class Loaded:
    """A model ready for attention work, with its layers and heads mapped to original ones."""

    model_id: str
    model: Any  # torch.nn.Module, eval mode, eager attention
    tokenizer: Any
    layers: int  # original layer count (rows of every grid)
    heads: int  # original heads per layer (columns of every grid)
    layer_index: list[int]  # original index of each layer the model still has
    kept_heads: list[list[int]]  # per present layer: original indices of its heads, in order
    label_names: list[str]
    max_tokens: int  # the longest input the model takes (tokens, specials included)
    eval_length: int  # tokens per example when scoring (the length it was evaluated at)
    dataset: str | None  # the dataset it was trained or evaluated on, when known
    device: str = "cpu"
    # True when a record (kept_layers, dropped layers) says which original layer each of its
    # layers is; False when none does (its layers are numbered by position)
    mapped: bool = False
    # False for a base encoder (minilm-l6): its maps are real, its classifier head is random
    classifier: bool = True
    # (dataset id, examples) -> predictions with every head on: the reference of every
    # what-if, computed once per model (it goes with the model when the cache drops it)
    baselines: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)

    @property
    def kept(self) -> np.ndarray:
        """[layers, heads] bool: True where the model still has that head."""
        grid = np.zeros((self.layers, self.heads), dtype=bool)
        for layer, heads in zip(self.layer_index, self.kept_heads):
            grid[layer, heads] = True
        return grid

    @property
    def head_dim(self) -> int:
        cfg = self.model.config
        return cfg.hidden_size // cfg.num_attention_heads


def load(model_id: str) -> Loaded:
    """The model `model_id` with eager attention, from the cache when it was loaded before.

    Keyed by the model's path, so `default` and `job:1` (the same directory) share one copy."""
    from engine.toolkit.checkpoints import resolve

    ref = resolve(model_id)
    with model_lock:
        hit = _cache.get(ref.path)
        if hit is not None:
            _cache.move_to_end(ref.path)
            return hit
        loaded = _load(ref)
        _cache[ref.path] = loaded
        while len(_cache) > CACHED_MODELS:
            _cache.popitem(last=False)
        return loaded


def clear_cache() -> None:
    with model_lock:
        _cache.clear()


def _load(ref) -> Loaded:
    from engine.toolkit import device as dev
    from engine.toolkit.checkpoints import load_classifier, load_tokenizer, read_meta
    from storage import jobs as store

    device = dev.setup()
    classifier = has_classifier(ref)
    model = load_classifier(ref, eager_attention=True, require_head=classifier).to(device)
    tokenizer = load_tokenizer(ref)
    meta = read_meta(ref.path) if ref.source not in ("preset", "hub") else {}
    row = store.find_model(ref.id) if ref.source == "job" else None
    info = (row.info or {}) if row is not None else {}
    notes: dict[str, Any] = {}
    # Models pruned before drop_layers wrote kept_layers into config.json: their job's notes
    if ref.job_id is not None and not getattr(model.config, "kept_layers", None):
        try:
            metrics = store.job_as_dict(store.get_job(ref.job_id))["metrics"]
            notes = {k: metrics[k] for k in ("kept_layers", "dropped_layers") if metrics.get(k)}
            # Students distilled before config.json recorded kept_layers: a teacher-layers
            # student's layers ARE those teacher layers (a random-init student's
            # teacher_layers_used only says which layers its loss matched, so not that)
            if metrics.get("student_kind") == "teacher-layers" and \
                    metrics.get("teacher_layers_used") and "kept_layers" not in notes:
                notes["kept_layers"] = metrics["teacher_layers_used"]
        except store.JobNotFound:
            pass
    return prepare(model, tokenizer, ref.id, meta={**info, **notes, **meta}, device=device,
                   classifier=classifier)


def has_classifier(ref) -> bool:
    """Whether the model at `ref` has a trained classification head (a base encoder such as
    minilm-l6 has none: its attention is real, a prediction from it would be noise)."""
    import json
    from pathlib import Path

    if ref.source == "preset":
        return True  # random weights throughout; the Models page says so
    try:
        config = json.loads((Path(ref.path) / "config.json").read_text())
    except (OSError, ValueError):
        return True  # let the loader say what is wrong
    return any(str(a).endswith("ForSequenceClassification")
               for a in config.get("architectures") or [])


def prepare(model, tokenizer, model_id: str, meta: dict[str, Any] | None = None,
            device: str = "cpu", classifier: bool = True) -> Loaded:
    """Map a loaded classifier's layers and heads to the original grid (see the module doc)."""
    meta = meta or {}
    cfg = model.config
    present = len(encoder_layers(model))
    layer_index, mapped = _layer_index(cfg, meta, present)
    total_heads = cfg.num_attention_heads
    pruned = {int(k): {int(h) for h in v} for k, v in (getattr(cfg, "pruned_heads", None)
                                                      or {}).items()}
    kept_heads = [[h for h in range(total_heads) if h not in pruned.get(i, set())]
                  for i in range(present)]
    layers = max([max(layer_index) + 1 if layer_index else 0,
                  int(getattr(cfg, "original_layers", None) or meta.get("original_layers") or 0),
                  present])
    labels = [str(cfg.id2label[i]) if cfg.id2label and i in cfg.id2label else str(i)
              for i in range(cfg.num_labels)]
    positions = getattr(cfg, "max_position_embeddings", None) or 512
    tok_max = getattr(tokenizer, "model_max_length", None) or positions
    return Loaded(model_id=model_id, model=model, tokenizer=tokenizer, layers=layers,
                  heads=total_heads, layer_index=layer_index, kept_heads=kept_heads,
                  label_names=labels, max_tokens=int(min(positions, tok_max)),
                  eval_length=int(meta.get("max_length") or DEFAULT_EVAL_LENGTH),
                  dataset=meta.get("dataset"), device=device, mapped=mapped,
                  classifier=classifier)


def _layer_index(cfg, meta: dict[str, Any], present: int) -> tuple[list[int], bool]:
    """(original layer of each present layer, whether a record said so). Without a record
    the layers are numbered by position."""
    kept = getattr(cfg, "kept_layers", None) or meta.get("kept_layers")
    if kept:
        if len(kept) != present:
            raise LabError(f"kept_layers lists {len(kept)} layers but the model has {present}; "
                           f"its layer record is wrong, so its layers cannot be placed")
        return [int(i) for i in kept], True
    removed = (getattr(cfg, "pruned_layers", None) or meta.get("pruned_layers")
               or meta.get("dropped_layers"))
    if removed:
        gone = {int(i) for i in removed}
        return [i for i in range(present + len(gone)) if i not in gone], True
    return list(range(present)), False


def encoder_layers(model) -> list:
    """The transformer blocks, in order (BERT: encoder.layer; DistilBERT: transformer.layer)."""
    base = model.base_model
    for owner in ("encoder", "transformer"):
        blocks = getattr(getattr(base, owner, None), "layer", None)
        if blocks is not None:
            return list(blocks)
    raise LabError(f"{type(model).__name__}: the lab finds no encoder layers in this model, "
                   f"so its attention cannot be extracted; use a BERT-family classifier")
