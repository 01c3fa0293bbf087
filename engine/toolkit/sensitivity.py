"""Where int8 and dropping a layer hurt a model: the measuring functions behind the sensitivity
map (the `sensitivity` method) and accuracy-aware quantization (quantize with max_drop), which
both use them without importing each other.

A model's parts: the embeddings (layer None: word, position and token-type tables together,
made int8 as quantize makes them) and, per encoder layer, six Linear layers: query, key, value
(attention.self.*), attn_out (attention.output.dense), ffn_in (intermediate.dense) and ffn_out
(output.dense). Everything is measured on the validation split, never the test split; the
stored shape is described in engine/reports/sensitivity.py. Importing this does not import
torch.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from engine.toolkit.config import LabError

PARTS = ("embeddings", "query", "key", "value", "attn_out", "ffn_in", "ffn_out")
PART_PATHS = {"query": "attention.self.query", "key": "attention.self.key",
              "value": "attention.self.value", "attn_out": "attention.output.dense",
              "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}
# logits identical to the float model's give an infinite SQNR, which JSON cannot hold
SQNR_CAP_DB = 150.0

Progress = Callable[[float, str], None] | None


@dataclass(frozen=True)
class Part:
    """One part of the map: `layer` (current index; None for the embeddings), `part` (one of
    PARTS) and `fqn`, the module's name in the model (a Linear, or the embeddings module)."""

    layer: int | None
    part: str
    fqn: str

    @property
    def label(self) -> str:
        return "embeddings" if self.layer is None else f"layer {self.layer} {self.part}"


def model_parts(model) -> list[Part]:
    """Every part int8 can take, in map order (embeddings, then each layer's six Linears).
    A part that is not one nn.Linear with weights (factorised by lowrank, a layer whose heads
    were all removed) is left out: it has no single int8 matrix to score."""
    from torch import nn

    from engine.toolkit.layers import encoder_layers

    names = {id(m): n for n, m in model.named_modules()}
    out = [Part(None, "embeddings", names[id(model.base_model.embeddings)])]
    for i, layer in enumerate(encoder_layers(model)):
        for part, path in PART_PATHS.items():
            try:
                module = layer.get_submodule(path)
            except AttributeError:
                continue
            if isinstance(module, nn.Linear) and module.weight.numel():
                out.append(Part(i, part, names[id(module)]))
    return out


def validation_sample(dataset, n: int) -> tuple[list[str], list[int]]:
    """The first `n` examples of the judging half of the dataset's fixed validation split
    (Dataset.val_judge; 0: all of it): never the test split, never the half training picked
    its checkpoints on. LabError when the split is empty."""
    val = dataset.val_judge
    if not len(val):
        raise LabError(f"{dataset.name} has no validation examples to score on; use a larger "
                       f"dataset (the validation split is 20 % of it)")
    n = len(val) if n <= 0 else min(n, len(val))
    return list(val.texts[:n]), list(val.labels[:n])


def logits_of(model, tokenizer, texts: list[str], max_length: int, device: str,
              batch_size: int = 32):
    """The model's logits for `texts`, [N, num_labels] float32 on the CPU, in text order."""
    import torch

    out = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(device)
            out.append(model(**batch).logits.float().cpu())
    return torch.cat(out)


def accuracy(logits, labels: Sequence[int]) -> float:
    """Share of rows whose largest logit is the label (0..1)."""
    import torch

    return float((logits.argmax(-1) == torch.as_tensor(list(labels))).float().mean())


def sqnr_db(reference, output) -> float:
    """Signal-to-quantization-noise ratio of `output` against `reference` (same shape), in dB:
    10 log10(sum ref^2 / sum (ref - out)^2); SQNR_CAP_DB when they are identical."""
    noise = float(((reference - output) ** 2).sum())
    signal = float((reference ** 2).sum())
    if noise == 0.0:
        return SQNR_CAP_DB
    return round(min(SQNR_CAP_DB, 10 * math.log10(max(signal, 1e-30) / noise)), 3)


def with_int8(model, parts: Collection[Part]):
    """A copy of `model` with only `parts` int8 (Linears: torchao int8 dynamic, as quantize's
    int8-dynamic; embeddings: quantize's int8 tables). `model` itself is unchanged."""
    from engine.toolkit.int8 import int8_linears, quantize_embeddings

    out = copy.deepcopy(model)
    linears = [p.fqn for p in parts if p.layer is not None]
    if linears:
        int8_linears(out, linears)
    if any(p.layer is None for p in parts):
        quantize_embeddings(out)
    return out.eval()


@dataclass
class Scorer:
    """The float model's validation logits, and what a variant of it scores against them."""

    model: Any
    tokenizer: Any
    texts: list[str]
    labels: list[int]
    max_length: int
    device: str
    batch_size: int = 32

    def __post_init__(self) -> None:
        self.reference = self.logits(self.model)
        self.base_accuracy = accuracy(self.reference, self.labels)

    def logits(self, model):
        return logits_of(model, self.tokenizer, self.texts, self.max_length, self.device,
                         self.batch_size)

    def score(self, variant) -> tuple[float, float]:
        """(accuracy drop: base - variant's, 0..1; SQNR of its logits in dB)."""
        out = self.logits(variant)
        return round(self.base_accuracy - accuracy(out, self.labels), 6), \
            sqnr_db(self.reference, out)


def quant_sensitivity(scorer: Scorer, parts: list[Part],
                      progress: Progress = None) -> list[dict[str, Any]]:
    """One row per part, with only that part int8: {layer, part, acc_drop, sqnr_db}."""
    rows = []
    for k, part in enumerate(parts):
        if progress:
            progress(k / len(parts), f"int8 {part.label} alone")
        variant = with_int8(scorer.model, [part])
        drop, sqnr = scorer.score(variant)
        del variant
        rows.append({"layer": part.layer, "part": part.part, "acc_drop": drop, "sqnr_db": sqnr})
    return rows


def layer_drop_sensitivity(scorer: Scorer, progress: Progress = None) -> list[dict[str, Any]]:
    """One row per encoder layer, with only that layer dropped (the prune method's layer
    surgery, engine/toolkit/layers.drop_layers, on a copy): {layer, acc_drop}. Empty for a
    one-layer model (a layer must stay)."""
    from engine.toolkit.layers import drop_layers, encoder_layers

    n = len(encoder_layers(scorer.model))
    rows = []
    for i in range(n if n > 1 else 0):
        if progress:
            progress(i / n, f"layer {i} dropped")
        variant = copy.deepcopy(scorer.model)
        drop_layers(variant, [i])
        rows.append({"layer": i, "acc_drop": scorer.score(variant)[0]})
        del variant
    return rows


def latency_share(model, tokenizer, texts: list[str], parts: list[Part], max_length: int,
                  device: str, batch_size: int = 32,
                  batches: int = 5) -> tuple[list[dict[str, Any]], float]:
    """Each part's share of one forward pass, measured with forward hooks and wall-clock timers
    (CUDA synchronised at each hook) over `batches` passes of a batch of `batch_size` texts
    padded to `max_length` tokens, after one untimed pass, eager. A Linear part's time is its
    matmul and bias only; the embeddings' time is the whole embeddings block (three lookups,
    their sum, LayerNorm). What no part holds (attention scores, softmax and mixing,
    LayerNorms and residuals, the pooler, the classifier, the hooks themselves) is the rest of
    the total. Returns (rows {layer, part, ms, share of the total}, total ms per pass)."""
    import torch

    modules = dict(model.named_modules())
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    spent = {p: 0.0 for p in parts}
    started: dict[Part, float] = {}

    def before(part: Part):
        def hook(module, args) -> None:
            sync()
            started[part] = time.perf_counter()
        return hook

    def after(part: Part):
        def hook(module, args, output) -> None:
            sync()
            spent[part] += time.perf_counter() - started.pop(part)
        return hook

    handles = []
    for p in parts:
        handles.append(modules[p.fqn].register_forward_pre_hook(before(p)))
        handles.append(modules[p.fqn].register_forward_hook(after(p)))
    chunk = (texts * (batch_size // max(1, len(texts)) + 1))[:batch_size]
    batch = tokenizer(chunk, padding="max_length", truncation=True, max_length=max_length,
                      return_tensors="pt").to(device)
    total = 0.0
    model.eval()
    try:
        with torch.inference_mode():
            model(**batch)  # untimed: first-call allocations
            for p in parts:
                spent[p] = 0.0
            for _ in range(batches):
                sync()
                start = time.perf_counter()
                model(**batch)
                sync()
                total += time.perf_counter() - start
    finally:
        for h in handles:
            h.remove()
    total_ms = 1000 * total / batches
    rows = [{"layer": p.layer, "part": p.part, "ms": round(1000 * spent[p] / batches, 4),
             "share": round(spent[p] / total, 5) if total else 0.0} for p in parts]
    return rows, round(total_ms, 4)


def ranked(quant: list[dict[str, Any]]) -> list[tuple[int | None, str]]:
    """(layer, part) of a map's `quant` rows, the most sensitive first: the largest accuracy
    drop, then the lowest SQNR, then map order."""
    order = sorted(enumerate(quant), key=lambda kv: (-kv[1]["acc_drop"], kv[1]["sqnr_db"],
                                                     kv[0]))
    return [(row["layer"], row["part"]) for _, row in order]
