"""Quantize a model: int8 (dynamic or calibrated static), bf16/fp16, and int8/int4/fp8 weights on
GPUs, with torchao's `quantize_`.

Which scheme pays off depends on the hardware. On a CPU, int8 activations x int8 weights use
the int8 dot-product instructions (VNNI) and are fast once torch.compile fuses the activation
quantization into the matmuls; bf16 pays off only on CPUs with bf16 instructions. On a GPU, fp16
and bf16 use the tensor cores; weight-only int8/int4 shrink the weights read from memory (what
limits small batches); fp8 needs Hopper-class (sm89+) tensor cores.

The saved model keeps its integer data and scales in safetensors (torchao's flattening of its
tensor subclasses); it records a `quantized` architecture change that the lab's one loader
(engine/toolkit/architecture.py) replays with the readers registered below. The machinery
(int8 embeddings, calibration, saving and reloading) is in torchao_support.py beside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.methods.quantize.checks import check_input  # noqa: F401
from engine.methods.quantize.torchao_support import (
    calibrate,
    calibration_texts,
    finish_quantized,
    import_torchao,
    is_body_linear,
    quantize_embeddings,
    read_quantized,
    rebuild_quantized,
    save_quantized,
)
from engine.methods.registry import register
from engine.toolkit.architecture import register_change
from engine.toolkit.config import ConfigError, MethodConfig, param
from engine.toolkit.device import compute_capability

SCHEMES = ("int8-dynamic", "int8-static", "bf16", "fp16", "int8-weight-only",
           "int4-weight-only", "fp8")
CPU_SCHEMES = ("int8-dynamic", "int8-static", "bf16")
FLOAT_SCHEMES = {"bf16": "bfloat16", "fp16": "float16"}
MAX_DROP_SCHEMES = ("int8-dynamic", "int8-static")  # what the sensitivity map measures

# {"kind": "quantized", "scheme", "dtype" (of the float parts), "embeddings" (int8 tables)}:
# always the last change of a chain (a quantized model is not compressed further)
register_change("quantized", rebuild=rebuild_quantized, read_state=read_quantized,
                finish=finish_quantized)


@dataclass(frozen=True)
class QuantizeConfig(MethodConfig):
    """Defaults are the CPU recommendation: int8 dynamic, embeddings too, compiled."""

    method = "quantize"
    version = 2  # 2: max_drop, max_drop_examples

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
             "activation scale.", min=1, max=20000,
        applies_when={"scheme": ("int8-static",)})
    observer: str = param(
        "minmax", "int8-static: how a layer's activation range is chosen from calibration. "
                  "minmax: the largest value seen (no clipping, coarser steps); mse: the clip "
                  "range with the least squared error (clips rare outliers, finer steps).",
        choices=("minmax", "mse"), applies_when={"scheme": ("int8-static",)})
    max_length: int = param(64, "Tokens per example for calibration, evaluation and timing.",
                            min=8, max=512)
    group_size: int = param(128, "int4-weight-only: weights sharing one scale (smaller: more "
                            "accurate, larger file).", choices=(32, 64, 128, 256),
                            advanced=True, applies_when={"scheme": ("int4-weight-only",)})
    seed: int = param(0, "Seed for picking the calibration examples.", min=0, advanced=True,
                      applies_when={"scheme": ("int8-static",)})
    max_drop: float = param(
        0.0, "Accuracy-aware int8: the validation accuracy the model may lose, as a fraction "
             "(0.005 = half a point). The most sensitive parts (from the model's sensitivity "
             "map, measured here when it has none) stay float until the measured drop is "
             "within it. 0: off, every part int8.")
    max_drop_examples: int = param(
        500, "max_drop: validation examples the drop is measured on (the validation split's "
             "judging half, which training never picks checkpoints on; never the test "
             "split); 0: all of it.", min=0, max=100_000, advanced=True)

    def check(self) -> None:
        if not 0 <= self.max_drop < 1:
            raise ConfigError(
                f"quantize: max_drop={self.max_drop} is not an accuracy budget: give the "
                f"fraction of accuracy the model may lose, from 0 (off) up to but not "
                f"including 1, e.g. max_drop=0.005 for half a point")
        if self.max_drop and self.scheme not in MAX_DROP_SCHEMES:
            raise ConfigError(
                f"quantize: max_drop keeps int8 parts in float, so it needs an int8 scheme "
                f"({', '.join(MAX_DROP_SCHEMES)}); scheme={self.scheme} has no int8 parts to "
                f"keep. Set max_drop=0 or scheme=int8-dynamic")

    def resolved_runtime(self) -> str:
        if self.runtime != "auto":
            return self.runtime
        return "eager" if self.scheme in FLOAT_SCHEMES else "compiled"


# ------------------------------------------------------------------------------ availability

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
                                "converted back to float for every matmul, so it runs no faster "
                                "than fp32",
            "int4-weight-only": "int4 weight-only needs a CUDA GPU (its tinygemm kernel is a "
                                "GPU kernel, sm80 or newer)",
            "fp8": "fp8 needs an NVIDIA GPU with fp8 tensor cores (Hopper sm90, or Ada sm89)",
        }[s]
        return (f"{why}; the worker here runs on {device}. Use scheme=int8-dynamic (int8 "
                f"matmuls on the CPU; add embeddings=true for a file about 4x smaller) or "
                f"scheme=bf16.")
    sm = compute_capability(device) or 0
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


def quantize_model(model, cfg: QuantizeConfig, act_scales: dict[str, Any] | None = None,
                   keep_float: Collection[str] = ()) -> None:
    """Quantize `model` in place for `cfg.scheme`; `act_scales` ({linear fqn: (scale,
    zero_point)}) are required for int8-static. `keep_float`: names of modules left as they
    are (Linear layers, or the embeddings block: its tables stay float; max_drop)."""
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
    floats = set(keep_float)

    def body(module, fqn: str) -> bool:
        return is_body_linear(module, fqn) and fqn not in floats

    if s == "int8-dynamic":
        # per-token activation scales, per-output-row weight scales, both symmetric
        quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=body)
    elif s == "int8-static":
        assert act_scales, "int8-static needs calibrated activation scales"
        configs = {f"{fqn}.weight": Int8StaticActivationInt8WeightConfig(
            act_quant_scale=scale, act_quant_zero_point=zero_point,
            granularity=[PerTensor(), PerRow()]) for fqn, (scale, zero_point) in
            act_scales.items() if fqn not in floats}
        quantize_(model, FqnToConfig(configs), filter_fn=None)
    elif s == "int8-weight-only":
        quantize_(model, Int8WeightOnlyConfig(), filter_fn=body)
    elif s == "int4-weight-only":
        # tile_packed_to_4d is tinygemm's layout: needs only torch on an sm80+ GPU (the default
        # "plain" layout needs the separate mslk kernels package)
        from torchao.quantization.quantize_.workflows import Int4PackingFormat

        quantize_(model, Int4WeightOnlyConfig(
            group_size=cfg.group_size, int4_packing_format=Int4PackingFormat.TILE_PACKED_TO_4D),
            filter_fn=body)
    elif s == "fp8":
        quantize_(model, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
                  filter_fn=body)
    if int8_embeddings(model, cfg, floats):
        quantize_embeddings(model)


def int8_embeddings(model, cfg: QuantizeConfig, keep_float: Collection[str]) -> bool:
    """Whether the embedding tables become int8: asked for, and not kept float (max_drop)."""
    names = {id(m): n for n, m in model.named_modules()}
    return cfg.embeddings and names.get(id(model.base_model.embeddings)) not in set(keep_float)


# ------------------------------------------------------------------------------ load


def load(path: Path, meta: dict[str, Any], eager_attention: bool = False):
    """A model this method saved, through the lab's one loader (on the CPU; the caller moves
    it); a folder saved before change lists is read as a quantize output."""
    from engine.toolkit.architecture import load_saved

    return load_saved(path, {"loader": "quantize", **meta}, eager_attention=eager_attention)


# ------------------------------------------------------------------------------ explanations


def _fmt(x: float) -> str:
    return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"


def explain(model, cfg: QuantizeConfig, act_scales: dict[str, Any] | None = None,
            calibrated: int = 0) -> str:
    """What the scheme did, in plain words, with one real layer's numbers; `calibrated` is
    the number of calibration examples (int8-static)."""
    body = [(n, m) for n, m in model.named_modules() if is_body_linear(m, n)]
    # a quantized one when some stay float (max_drop)
    fqn, linear = next((nm for nm in body if hasattr(nm[1].weight, "qdata")),
                       body[0] if body else (None, None))
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


def explain_slow(cfg: QuantizeConfig, device: str, metrics: dict[str, Any]) -> str | None:
    """Why this scheme may not beat its parent on `device` (the runner asks only when a paired
    speedup is small; `metrics` are the job's measured facts)."""
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
# (last: `@register` reads the module-level hooks `availability` and `explain_slow` when it
# runs)


@register(QuantizeConfig)
def apply(cfg: QuantizeConfig, ctx):
    """Quantize the input model in memory; the runner saves, reloads, evaluates and times it."""
    from engine.toolkit.architecture import chain, has_kind
    from engine.toolkit.config import LabError
    from engine.toolkit.contract import Produced

    if has_kind(chain(ctx.input_ref), "quantized"):
        raise LabError(f"quantize: {ctx.job.model} is quantized already; quantize its float "
                       f"parent instead")
    ctx.progress(0.0, "loading the model", force=True)
    model = ctx.load_input()
    ctx.progress(0.1, f"quantizing ({cfg.scheme})", force=True)
    act_scales, texts = None, []
    if cfg.scheme == "int8-static":
        texts = calibration_texts(ctx.dataset.train.texts, cfg.calibration_examples, cfg.seed)
        act_scales = calibrate(model, ctx.tokenizer, texts, cfg.max_length, cfg.observer,
                               progress=lambda f: ctx.progress(0.1 + 0.7 * f, "calibrating"))
    aware: dict[str, Any] = {}
    floats: list[str] = []
    if cfg.max_drop:
        from engine.methods.quantize import accuracy_aware as AA

        kept, aware = AA.choose_float_parts(
            cfg, ctx, model, lambda m, keep: quantize_model(m, cfg, act_scales, keep))
        floats = [p.fqn for p in kept]
        plain = AA.plain_int8_run(ctx.job.model, ctx.job.dataset, cfg.scheme, cfg.embeddings)
        aware["plain_int8_job"] = plain["job"] if plain else None
        aware["accuracy_aware"] = AA.describe(aware, plain)
    embeddings = int8_embeddings(model, cfg, floats)
    quantize_model(model, cfg, act_scales, floats)
    ctx.progress(0.9, "quantized", force=True)
    runtime = cfg.resolved_runtime()
    change = {"kind": "quantized", "scheme": cfg.scheme, "dtype": _float_dtype_name(cfg.scheme),
              "embeddings": embeddings}
    if floats:  # a record only: float Linears reload as plain weights, nothing to replay
        change["float_modules"] = floats
    meta = {"loader": "quantize", "scheme": cfg.scheme, "embeddings": embeddings,
            "dtype": _float_dtype_name(cfg.scheme), "runtime": runtime,
            "changes": chain(ctx.input_ref, change)}
    notes = {"scheme": cfg.scheme, "runtime": runtime,
             "explanation": explain(model, dataclasses.replace(cfg, embeddings=embeddings),
                                    act_scales, len(texts)), **aware}
    if aware:
        notes["explanation"] += " " + aware["accuracy_aware"]
    if act_scales is not None:
        notes["calibration_examples"] = len(texts)
    holder = [model]  # dropped once saved: the runner reloads the model from disk

    def save(out_dir: Path) -> None:
        save_quantized(holder.pop(), ctx.tokenizer, out_dir)

    return Produced(model=model, tokenizer=ctx.tokenizer, meta=meta, notes=notes, save=save,
                    device=ctx.device, runtime=runtime)
