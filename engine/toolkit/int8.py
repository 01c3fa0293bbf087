"""int8 with torchao, shared by the quantize method and the sensitivity map: which Linear
layers get int8, torchao imported quietly, int8 Linear layers picked by name, and int8
embedding tables that dequantize only the rows a lookup gathers.

Importing this module does not import torch or torchao (the quantize method imports it, and
pages build forms from that); each function imports them itself.
"""

from __future__ import annotations

import functools
from collections.abc import Collection


def is_body_linear(module, fqn: str) -> bool:
    """The Linear layers to quantize: all but the final classifier (a few output rows: int8
    saves nothing there, and its rounding errors go straight into the logits)."""
    import torch

    return isinstance(module, torch.nn.Linear) and fqn.rsplit(".", 1)[-1] != "classifier"


def _is_embedding(module, fqn: str) -> bool:
    import torch

    return isinstance(module, torch.nn.Embedding)


def import_torchao():
    """torchao, imported with its load-time warnings silenced: on a machine without CUDA it
    warns about each CUDA-only kernel library it skips, and torch 2.13 about an Enum it
    registers; neither matters to a job and both would clutter its log."""
    import logging
    import warnings

    # torch.compile of a model with torchao weights warns once that its tensors do not hash
    # for the AOT cache (they are recompiled per process: expected here)
    warnings.filterwarnings("ignore", message=".*_stable_hash_for_caching.*")
    quiet = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        import torchao
        import torchao.prototype.safetensors.safetensors_support  # save/load; warns too
        import torchao.quantization
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    return torchao


def int8_linears(model, fqns: Collection[str]) -> None:
    """int8 weights and per-token int8 activations (torchao Int8DynamicActivationInt8Weight,
    as quantize's int8-dynamic scheme) for the Linear layers named in `fqns` only, in place."""
    import torch

    import_torchao()
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    wanted = set(fqns)
    quantize_(model, Int8DynamicActivationInt8WeightConfig(),
              filter_fn=lambda m, fqn: isinstance(m, torch.nn.Linear) and fqn in wanted)


# ------------------------------------------------------------------------------ int8 embeddings


def quantize_embeddings(model) -> None:
    """int8 embedding tables, one symmetric scale per row (torchao IntxWeightOnlyConfig), each
    wrapped so that a lookup dequantizes only the rows it gathers."""
    import torch

    import_torchao()
    from torchao.quantization import IntxWeightOnlyConfig, PerAxis, quantize_

    quantize_(model, IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
              filter_fn=_is_embedding)
    gather_rows_first(model)


def gather_rows_first(model) -> None:
    """Swap each int8 nn.Embedding for RowGatherEmbedding (same parameter, same state-dict key).

    torchao's embedding op dequantizes the whole table on every call (30522 x 384 floats,
    47 MB, for MiniLM), which in eager costs more than the rest of a batch-1 forward pass."""
    import torch

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Embedding) and hasattr(child.weight, "qdata"):
                setattr(module, name, _row_gather_embedding_class()(child))


@functools.cache
def _row_gather_embedding_class():
    """The class is built on first use: importing this module (the quantize method imports it,
    and pages build forms from that) must not import torch."""
    import torch

    class RowGatherEmbedding(torch.nn.Module):
        """An int8 embedding: look up int8 rows and their scales, then dequantize.

        weight: torchao IntxUnpackedToInt8Tensor [vocab, hidden] (qdata int8, scale and
        zero_point [vocab, 1]). input ids [B, T] -> [B, T, hidden] in the weight's dtype."""

        def __init__(self, embedding: torch.nn.Embedding):
            super().__init__()
            self.weight = embedding.weight
            self.padding_idx = embedding.padding_idx

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            w = self.weight
            q = w.qdata[ids].to(w.scale.dtype)
            if w.zero_point is not None:
                q = q - w.zero_point[ids].to(q.dtype)
            return (q * w.scale[ids]).to(w.dtype)

        def extra_repr(self) -> str:
            return f"{self.weight.shape[0]}, {self.weight.shape[1]}, int8 rows"

    return RowGatherEmbedding

