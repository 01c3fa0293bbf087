"""Quantization machinery of the quantize method (engine/methods/quantize/): calibration of
static activation scales, and saving / reloading a quantized model as safetensors (torchao's
flattening of its tensor subclasses, no pickle). Which layers get quantized, torchao imported
quietly and int8 embedding tables are shared with the sensitivity map (engine/toolkit/int8.py).

Importing this module does not import torch or torchao (the method module imports it, and pages
build forms from that); each function imports them itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.toolkit.int8 import (  # noqa: F401
    gather_rows_first,
    import_torchao,
    is_body_linear,
    quantize_embeddings,
)

WEIGHTS_FILE = "model.safetensors"


# ------------------------------------------------------------------------------ calibration


def calibration_texts(texts: list[str], n: int, seed: int) -> list[str]:
    """`n` of `texts` picked at random (fixed by `seed`), in their original order."""
    import numpy as np

    idx = np.random.RandomState(seed).permutation(len(texts))[:n]
    return [texts[i] for i in sorted(idx)]


def calibrate(model, tokenizer, texts: list[str], max_length: int, observer: str = "minmax",
              batch_size: int = 32, max_rows: int = 4096,
              progress=None) -> dict[str, tuple[Any, Any]]:
    """Run `texts` through the float model and choose each Linear input's int8 scale.

    Returns {linear fqn: (scale, zero_point)}, shaped [1] * input ndim (one scale per tensor,
    symmetric, so zero_point is 0). minmax sees every batch; mse (a search for the clip range
    with the least squared error) sees up to `max_rows` token rows per layer, sampled evenly."""
    import torch

    import_torchao()
    from torchao.quantization import (
        AffineQuantizedMinMaxObserver,
        MappingType,
        PerTensor,
    )
    from torchao.quantization.observer import AffineQuantizedMSEObserver

    kind = {"minmax": AffineQuantizedMinMaxObserver, "mse": AffineQuantizedMSEObserver}[observer]
    observers: dict[str, Any] = {}
    samples: dict[str, list] = {}
    ndims: dict[str, int] = {}
    n_batches = max(1, -(-len(texts) // batch_size))
    per_batch = max(1, max_rows // n_batches)
    gen = torch.Generator().manual_seed(0)

    def hook(fqn: str):
        def observe(module, args) -> None:
            x = args[0].detach().float()
            if fqn not in observers:
                observers[fqn] = kind(MappingType.SYMMETRIC, torch.int8, PerTensor(),
                                      eps=torch.finfo(torch.float32).eps,
                                      scale_dtype=torch.float32, zero_point_dtype=torch.int8)
                samples[fqn] = []
                ndims[fqn] = x.ndim
            if observer == "minmax":
                observers[fqn](x)
            else:  # the mse observer keeps only its last call: gather rows, observe once
                rows = x.reshape(-1, x.shape[-1])
                pick = torch.randperm(rows.shape[0], generator=gen)[:per_batch]
                samples[fqn].append(rows[pick])
        return observe

    handles = [m.register_forward_pre_hook(hook(fqn)) for fqn, m in model.named_modules()
               if is_body_linear(m, fqn)]
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            for b in range(n_batches):
                chunk = texts[b * batch_size:(b + 1) * batch_size]
                batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length,
                                  return_tensors="pt").to(device)
                model(**batch)
                if progress:
                    progress((b + 1) / n_batches)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for fqn, obs in observers.items():
        if observer == "mse":
            obs(torch.cat(samples[fqn]))
        scale, zero_point = obs.calculate_qparams()
        # torchao checks that a static scale has the activation's ndim ([1, 1, 1] for [B, T, H])
        shape = [1] * ndims[fqn]
        out[fqn] = (scale.reshape(shape).to(device), zero_point.reshape(shape).to(device))
    return out


# ------------------------------------------------------------------------------ save / load


def save_quantized(model, tokenizer, out_dir: Path) -> None:
    """config.json, tokenizer, and model.safetensors holding the integer data and scales of
    each quantized weight (torchao's flattening: `<module>._weight_qdata`, `..._scale`), with
    what rebuilds the tensor subclasses in the file's metadata. No pickle."""
    from safetensors.torch import save_file

    import_torchao()
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    state = {k: v.detach().contiguous() if type(v).__name__ == "Tensor" else v
             for k, v in model.state_dict().items()}
    tensors, metadata = flatten_tensor_state_dict(state)
    save_file({k: v.contiguous() for k, v in tensors.items()}, out_dir / WEIGHTS_FILE,
              metadata=metadata)


def rebuild_quantized(model, change: dict[str, Any], saved_config):
    """Replay of a quantized change before the weights load: the float parts in the saved
    dtype, no gradients (the integer weights are assigned in by `read_quantized`)."""
    import torch

    model = model.to(getattr(torch, change.get("dtype") or "float32"))
    model.requires_grad_(False)
    return model


def read_quantized(path: Path, change: dict[str, Any]) -> dict[str, Any]:
    """The state dict of a folder saved by `save_quantized`: torchao tensor subclasses rebuilt
    from their flattened safetensors parts (plain tensors for bf16/fp16 without int8 tables)."""
    from safetensors import safe_open

    import_torchao()
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    with safe_open(str(Path(path) / WEIGHTS_FILE), framework="pt") as f:
        metadata = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if "tensor_names" not in metadata:
        return tensors
    state, leftover = unflatten_tensor_state_dict(tensors, metadata)
    assert not leftover, f"unexpected tensors in {path}: {sorted(leftover)[:5]}"
    return state


def finish_quantized(model, change: dict[str, Any]):
    """Replay after the weights load: int8 embedding tables gather rows before dequantizing."""
    if change.get("embeddings"):
        gather_rows_first(model)
    return model
