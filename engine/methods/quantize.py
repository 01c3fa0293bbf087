"""Quantize a model: int8 (dynamic or calibrated static), bf16/fp16, and int8/int4/fp8 weights on
GPUs, with torchao's `quantize_`.

Which scheme pays off depends on the hardware. On a CPU, int8 activations x int8 weights use
the int8 dot-product instructions (VNNI) and are fast once torch.compile fuses the activation
quantization into the matmuls; bf16 pays off only on CPUs with bf16 instructions. On a GPU, fp16
and bf16 use the tensor cores; weight-only int8/int4 shrink the weights read from memory (what
limits small batches); fp8 needs Hopper-class (sm89+) tensor cores.

The saved model keeps its integer data and scales in safetensors (torchao's flattening of its
tensor subclasses) and reloads through `load` below.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import ConfigError, MethodConfig, param
from engine.registry import register

SCHEMES = ("int8-dynamic", "int8-static", "bf16", "fp16", "int8-weight-only",
           "int4-weight-only", "fp8")
CPU_SCHEMES = ("int8-dynamic", "int8-static", "bf16")
FLOAT_SCHEMES = {"bf16": "bfloat16", "fp16": "float16"}
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class QuantizeConfig(MethodConfig):
    """Defaults are the CPU recommendation: int8 dynamic, embeddings too, compiled."""

    method = "quantize"
    version = 1

    scheme: str = param(
        "int8-dynamic",
        "What to store and compute in. CPU: int8-dynamic (int8 weights, activations quantized "
        "per token at run time), int8-static (activation scales fixed by calibration), bf16. "
        "GPU: fp16, bf16, int8-weight-only, int4-weight-only, fp8 (sm89+), int8-dynamic.",
        choices=SCHEMES)
    embeddings: bool = param(
        True, "Store the embedding tables as int8 too (one scale per row). They are about half "
              "of a small model's size (MiniLM: 47 of 91 MB) but cost little time.")
    runtime: str = param(
        "auto", "How the quantized model runs. compiled: torch.compile fuses the quantization "
                "of activations into the matmuls (int8 on the CPU is fast only so); eager: no "
                "compile step. auto: compiled for int8/int4/fp8, eager for bf16/fp16. The "
                "parent is timed under the same runtime (and eager too).",
        choices=("auto", "eager", "compiled"))
    calibration_examples: int = param(
        256, "int8-static: training examples run through the model to fix each layer's "
             "activation scale.", min=1, max=20000)
    observer: str = param(
        "minmax", "int8-static: how a layer's activation range is chosen from calibration. "
                  "minmax: the largest value seen (no clipping, coarser steps); mse: the clip "
                  "range with the least squared error (clips rare outliers, finer steps).",
        choices=("minmax", "mse"))
    max_length: int = param(64, "Tokens per example for calibration, evaluation and timing.",
                            min=8, max=512)
    group_size: int = param(128, "int4-weight-only: weights sharing one scale (smaller: more "
                            "accurate, larger file).", choices=(32, 64, 128, 256),
                            advanced=True)
    seed: int = param(0, "Seed for picking the calibration examples.", min=0, advanced=True)

    def resolved_runtime(self) -> str:
        if self.runtime != "auto":
            return self.runtime
        return "eager" if self.scheme in FLOAT_SCHEMES else "compiled"


# ------------------------------------------------------------------------------ availability

_SM = re.compile(r"\(sm(\d+)\)")


def availability(cfg: QuantizeConfig, device: str) -> str | None:
    """Why `cfg.scheme` cannot run on `device` (a worker description such as "cpu (2 threads)"
    or "cuda:NVIDIA H100 80GB HBM3 (sm90)"), with a scheme that can; None when it can."""
    s = cfg.scheme
    if not device.startswith("cuda"):
        if s in CPU_SCHEMES:
            return None
        why = {
            "fp16": "fp16 is a GPU scheme: CPUs have no fast fp16 matrix kernels, so it runs "
                    "slower than fp32 there",
            "int8-weight-only": "int8 weight-only pays off on GPUs, where small batches wait on "
                                "reading weights from memory; on the CPU the weights are "
                                "converted back to float for every matmul (measured slower than "
                                "fp32: 277 vs 259 ms at batch 32)",
            "int4-weight-only": "int4 weight-only needs a CUDA GPU (its tinygemm kernel is a "
                                "GPU kernel, sm80 or newer)",
            "fp8": "fp8 needs an NVIDIA GPU with fp8 tensor cores (Hopper sm90, or Ada sm89)",
        }[s]
        return (f"{why}; the worker here runs on {device}. Use scheme=int8-dynamic (int8 "
                f"matmuls on the CPU, about 3x faster; add embeddings=true for a 4x smaller "
                f"file) or scheme=bf16.")
    match = _SM.search(device)
    sm = int(match.group(1)) if match else 0
    if s == "fp8" and sm < 89:
        return (f"fp8 needs fp8 tensor cores (sm89 Ada or sm90 Hopper); this GPU is sm{sm} "
                f"({device}). Use scheme=fp16 or scheme=int8-weight-only.")
    if s in ("int4-weight-only", "bf16") and sm < 80:
        return (f"{s} needs an sm80+ GPU (Ampere or newer); this one is sm{sm} ({device}). "
                f"Use scheme=fp16.")
    return None


def _float_dtype_name(scheme: str) -> str:
    """The dtype of the model's float parts (activations, LayerNorm, biases)."""
    if scheme in FLOAT_SCHEMES:
        return FLOAT_SCHEMES[scheme]
    # tinygemm int4 and row-wise fp8 kernels take bf16 activations
    return "bfloat16" if scheme in ("int4-weight-only", "fp8") else "float32"


def _calibration_texts(texts: list[str], n: int, seed: int) -> list[str]:
    import numpy as np

    idx = np.random.RandomState(seed).permutation(len(texts))[:n]
    return [texts[i] for i in sorted(idx)]


def _is_body_linear(module, fqn: str) -> bool:
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


def quantize_model(model, cfg: QuantizeConfig, act_scales: dict[str, Any] | None = None) -> None:
    """Quantize `model` in place for `cfg.scheme`; `act_scales` ({linear fqn: (scale,
    zero_point)}) are required for int8-static."""
    import torch

    import_torchao()
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        FqnToConfig,
        Int4WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8StaticActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        PerRow,
        PerTensor,
        quantize_,
    )

    dtype = getattr(torch, _float_dtype_name(cfg.scheme))
    model.to(dtype)
    s = cfg.scheme
    if s == "int8-dynamic":
        # per-token activation scales, per-output-row weight scales, both symmetric
        quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=_is_body_linear)
    elif s == "int8-static":
        assert act_scales, "int8-static needs calibrated activation scales"
        configs = {f"{fqn}.weight": Int8StaticActivationInt8WeightConfig(
            act_quant_scale=scale, act_quant_zero_point=zero_point,
            granularity=[PerTensor(), PerRow()]) for fqn, (scale, zero_point) in
            act_scales.items()}
        quantize_(model, FqnToConfig(configs), filter_fn=None)
    elif s == "int8-weight-only":
        quantize_(model, Int8WeightOnlyConfig(), filter_fn=_is_body_linear)
    elif s == "int4-weight-only":
        # tile_packed_to_4d is tinygemm's layout: needs only torch on an sm80+ GPU (the default
        # "plain" layout needs the separate mslk kernels package)
        from torchao.quantization.quantize_.workflows import Int4PackingFormat

        quantize_(model, Int4WeightOnlyConfig(
            group_size=cfg.group_size, int4_packing_format=Int4PackingFormat.TILE_PACKED_TO_4D),
            filter_fn=_is_body_linear)
    elif s == "fp8":
        quantize_(model, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
                  filter_fn=_is_body_linear)
    if cfg.embeddings:
        quantize_embeddings(model)


def quantize_embeddings(model) -> None:
    """int8 embedding tables, one symmetric scale per row (torchao IntxWeightOnlyConfig), each
    wrapped so that a lookup dequantizes only the rows it gathers."""
    import torch

    import_torchao()
    from torchao.quantization import IntxWeightOnlyConfig, PerAxis, quantize_

    quantize_(model, IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
              filter_fn=_is_embedding)
    _gather_rows_first(model)


def _gather_rows_first(model) -> None:
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
    """The class is built on first use: importing this module (pages build forms from it)
    must not import torch."""
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


# ------------------------------------------------------------------------------ calibration


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
               if _is_body_linear(m, fqn)]
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


def load(path: Path, meta: dict[str, Any], eager_attention: bool = False):
    """Rebuild a model saved by `save_quantized` (on the CPU; the caller moves it)."""
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForSequenceClassification

    import_torchao()
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    config._attn_implementation = "eager" if eager_attention else "sdpa"
    dtype = getattr(torch, meta.get("dtype", "float32"))
    model = AutoModelForSequenceClassification.from_config(config).to(dtype).eval()
    with safe_open(str(Path(path) / WEIGHTS_FILE), framework="pt") as f:
        metadata = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if "tensor_names" in metadata:
        state, leftover = unflatten_tensor_state_dict(tensors, metadata)
        assert not leftover, f"unexpected tensors in {path}: {sorted(leftover)[:5]}"
    else:  # bf16 / fp16 without int8 embeddings: plain tensors
        state = tensors
    model.requires_grad_(False)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    # non-persistent buffers (position ids) are rebuilt by the model itself, never saved
    persistent = set(model.state_dict())
    assert not unexpected and not (set(missing) & persistent - set(state)), \
        f"{path}: weights do not match the model (missing {missing[:5]}, extra {unexpected[:5]})"
    if meta.get("embeddings"):
        _gather_rows_first(model)
    return model.eval()


# ------------------------------------------------------------------------------ explanations


def _fmt(x: float) -> str:
    return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"


def explain(model, cfg: QuantizeConfig, act_scales: dict[str, Any] | None = None,
            calibrated: int = 0) -> str:
    """What the scheme did, in plain words, with one real layer's numbers; `calibrated` is
    the number of calibration examples (int8-static)."""
    fqn, linear = next(((n, m) for n, m in model.named_modules() if _is_body_linear(m, n)),
                       (None, None))
    w = getattr(linear, "weight", None)
    s = cfg.scheme
    parts = []
    if s in ("int8-dynamic", "int8-static", "int8-weight-only") and hasattr(w, "qdata"):
        scales = w.scale.float().flatten()
        parts.append(
            f"Each weight matrix is stored as int8 (-127..127) with one scale per output row: "
            f"weight = scale x q, zero point 0 (symmetric). In `{fqn}` the scales run from "
            f"{_fmt(float(scales.min()))} to {_fmt(float(scales.max()))}, so a weight is "
            f"rounded to the nearest of 255 steps of that size: 4x less memory than fp32.")
        if s == "int8-dynamic":
            parts.append("At run time each token's activations get their own scale (its "
                         "largest absolute value / 127), the matmul runs in int8 with int32 "
                         "sums, and the result is rescaled to float.")
        elif s == "int8-static" and act_scales:
            a_scale, _ = act_scales[fqn]
            parts.append(
                f"Activations use one scale per layer fixed by calibration on "
                f"{calibrated} training examples ({cfg.observer} observer): "
                f"e.g. {_fmt(float(a_scale.flatten()[0]))} for `{fqn}`'s input, zero point 0. "
                f"No per-batch range to compute, but values beyond the calibrated range are "
                f"clipped.")
        else:
            parts.append("Activations stay in float: each weight is converted back to float "
                         "for the matmul, so the gain is memory traffic, not arithmetic.")
    elif s in FLOAT_SCHEMES:
        parts.append(
            f"Every weight and activation is cast to {s} (16 bits instead of 32: half the "
            f"memory). "
            + ("bf16 keeps fp32's range with fewer mantissa bits (about 3 significant digits)."
               if s == "bf16" else
               "fp16 has more precision than bf16 but a smaller range (up to 65504)."))
    elif s == "int4-weight-only":
        parts.append(f"Weights are stored in 4 bits (16 levels) with a scale and zero point "
                     f"per group of {cfg.group_size} weights; activations stay in bf16 and the "
                     f"GPU kernel unpacks the weights on the fly: 8x less weight memory.")
    elif s == "fp8":
        parts.append("Weights and activations are cast to fp8 (e4m3: 8 bits, 3 of mantissa) "
                     "with one scale per row (weights) and per token (activations); the matmul "
                     "runs on fp8 tensor cores.")
    if cfg.embeddings:
        parts.append("The embedding tables are int8 too, one scale per row (per token of the "
                     "vocabulary); a lookup dequantizes only the rows it needs.")
    if cfg.resolved_runtime() == "compiled":
        parts.append("It is timed under torch.compile, which fuses the quantize/rescale steps "
                     "around the int8 matmuls; the speedup is against the parent compiled the "
                     "same way, and the gain from compiling alone is shown apart. Accuracy is "
                     "measured in eager mode (the same int8 arithmetic, no compile step).")
    return " ".join(parts)


def _if_not_faster(cfg: QuantizeConfig, device: str) -> str:
    """Why this scheme may not beat its parent here (the runner keeps it only when it did
    not)."""
    s = cfg.scheme
    if not device.startswith("cuda"):
        if s == "bf16":
            return ("bf16 on a CPU is fast only with bf16 matrix instructions (AVX512-BF16 or "
                    "AMX) and kernels that use them; otherwise each value is converted back to "
                    "fp32. It still halves the size. For speed on the CPU, use int8-dynamic.")
        if cfg.resolved_runtime() == "eager":
            return ("In eager mode torchao quantizes activations with several separate "
                    "operations around each int8 matmul, which eats most of the gain on a CPU; "
                    "use runtime=compiled (torch.compile fuses them).")
        return ("Small batches of short sequences leave little matmul work to speed up: the "
                "rest (attention softmax, LayerNorm, quantizing activations) does not get "
                "faster with int8.")
    if s in ("int8-weight-only", "int4-weight-only"):
        return ("Weight-only schemes save memory traffic, which limits small batches; at "
                "large batches the GPU is compute-bound and the weights must still be "
                "unpacked to bf16/fp16, so they can be slower than plain fp16.")
    return ("A small model on a large GPU is limited by kernel launch overhead rather than "
            "arithmetic: lower precision saves little until batches or models are larger.")


# ------------------------------------------------------------------------------ apply
# (last: `@register` reads the module-level hooks `availability` and `load` when it runs)


@register(QuantizeConfig)
def apply(cfg: QuantizeConfig, ctx):
    """Quantize the input model in memory; the runner saves, reloads, evaluates and times it."""
    from engine.device import describe
    from engine.runner import Produced

    reason = availability(cfg, describe(ctx.device))
    if reason:
        raise ConfigError(reason)
    ctx.progress(0.0, "loading the model", force=True)
    model = ctx.load_input()
    ctx.progress(0.1, f"quantizing ({cfg.scheme})", force=True)
    act_scales, texts = None, []
    if cfg.scheme == "int8-static":
        texts = _calibration_texts(ctx.dataset.train.texts, cfg.calibration_examples, cfg.seed)
        act_scales = calibrate(model, ctx.tokenizer, texts, cfg.max_length, cfg.observer,
                               progress=lambda f: ctx.progress(0.1 + 0.7 * f, "calibrating"))
    quantize_model(model, cfg, act_scales)
    ctx.progress(0.9, "quantized", force=True)
    runtime = cfg.resolved_runtime()
    meta = {"loader": "quantize", "scheme": cfg.scheme, "embeddings": cfg.embeddings,
            "dtype": _float_dtype_name(cfg.scheme), "runtime": runtime}
    notes = {"scheme": cfg.scheme, "runtime": runtime,
             "explanation": explain(model, cfg, act_scales, len(texts)),
             "if_not_faster": _if_not_faster(cfg, describe(ctx.device))}
    if act_scales is not None:
        notes["calibration_examples"] = len(texts)
    holder = [model]  # dropped once saved: the runner reloads the model from disk

    def save(out_dir: Path) -> None:
        save_quantized(holder.pop(), ctx.tokenizer, out_dir)

    return Produced(model=model, tokenizer=ctx.tokenizer, meta=meta, notes=notes, save=save,
                    device=ctx.device, runtime=runtime)
