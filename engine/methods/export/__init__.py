"""Export a model to ONNX and run it on ONNX Runtime (optionally int8-quantized by ORT itself),
evaluated and timed like every model: the serving runtime most BERT deployments use on CPUs.

The exported graph keeps the model's shape (removed heads, dropped layers, factorised layers):
the exporter traces the model as it is. torchao's int8 tensors do not export (pytorch/ao#3392),
and fp16/bf16 models would export in half precision: for those the export takes the float
model they were made from and quantizes it with ONNX Runtime instead, and says so. The runner
times the ORT session (runtime `onnxruntime`) interleaved with the parent under PyTorch, with
the same inputs, batch sizes, sequence length and threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.methods.export.onnx_runtime import onnxruntime_problem
from engine.methods.registry import register
from engine.toolkit.architecture import chain, register_change
from engine.toolkit.config import MethodConfig, param


@dataclass(frozen=True)
class ExportConfig(MethodConfig):
    """Defaults: ONNX, int8 dynamic quantization by ONNX Runtime (per-channel weights)."""

    method = "export"
    version = 1

    format: str = param("onnx", "File format of the export.", choices=("onnx",))
    quantize: str = param(
        "int8-dynamic",
        "ONNX Runtime's own quantization. none: the float graph; int8-dynamic: int8 weights, "
        "activations quantized per batch at run time; int8-static: activation ranges fixed by "
        "calibration on training examples (QDQ).",
        choices=("none", "int8-dynamic", "int8-static"))
    per_channel: bool = param(True, "int8: one weight scale per output channel (more "
                                    "accurate than one per tensor).")
    calibration_examples: int = param(256, "int8-static: training examples run through the "
                                      "graph to fix activation ranges.", min=1, max=20000)
    max_length: int = param(64, "Tokens per example for calibration, evaluation and timing.",
                            min=8, max=512)
    opset: int = param(18, "ONNX opset of the exported graph.", min=14, max=21, advanced=True)
    seed: int = param(0, "Seed for picking the calibration examples.", min=0, advanced=True)


def availability(cfg: ExportConfig, device: str) -> str | None:
    """ORT runs on the CPU execution provider here whatever the worker's device; only a
    missing ONNX Runtime stops it."""
    return onnxruntime_problem()


def _load(path: Path, change: dict[str, Any], eager_attention: bool = False):
    """An exported folder as an ORT session the harness calls like a model (the one loader,
    engine/toolkit/architecture.py, calls this for the `exported` change)."""
    from engine.methods.export.onnx_runtime import OrtClassifier
    from engine.toolkit.config import LabError

    if eager_attention:
        raise LabError("an ONNX export has no attention maps to show; open the PyTorch model "
                       "it was exported from")
    return OrtClassifier(path)


register_change("exported", load=_load)


def explain_slow(cfg: ExportConfig, device: str, metrics: dict[str, Any]) -> str | None:
    if cfg.quantize == "none":
        return ("The float graph does the same arithmetic as PyTorch; ONNX Runtime gains by "
                "fusing operations (attention, LayerNorm, GELU), which matters less when a "
                "few large matrix products dominate (long batches).")
    return ("ONNX Runtime's int8 pays off where matrix products dominate; at batch 1 the "
            "per-call overhead and the activation quantization weigh more.")


def _float_source(ctx, model):
    """The model to export: the input when it is plain float32, else the nearest float model
    it was made from (lab_meta.json's input_model chain). Returns (model, its ref, note or
    None)."""
    from engine.methods.export.onnx_runtime import is_plain_float
    from engine.toolkit.checkpoints import load_classifier, read_meta, resolve
    from engine.toolkit.config import LabError

    if is_plain_float(model):
        return model, ctx.input_ref, None
    ref = ctx.input_ref
    while True:
        parent = read_meta(ref.path).get("input_model") if ref.source == "job" else None
        if not parent:
            raise LabError(f"export: {ctx.job.model} holds quantized weights that do not "
                           f"export to ONNX (pytorch/ao#3392) and no float model it was made "
                           f"from is recorded; export the float model instead")
        ref = resolve(parent)
        candidate = load_classifier(ref, label_names=ctx.dataset.label_names)
        if is_plain_float(candidate):
            return candidate, ref, (
                f"{ctx.job.model} holds quantized or half-precision weights, which do not "
                f"export to ONNX (torchao tensor subclasses: pytorch/ao#3392); its float "
                f"source {ref.id} was exported and quantized by ONNX Runtime instead")


@register(ExportConfig)
def apply(cfg: ExportConfig, ctx):
    """Export, optionally quantize with ORT; the runner saves, reloads (an ORT session),
    evaluates and times it against the parent."""
    import shutil
    import tempfile

    from engine.methods.export import onnx_runtime as X
    from engine.toolkit.contract import Produced
    from engine.toolkit.data import sample_texts

    ctx.progress(0.0, "loading the model", force=True)
    model, source, note = _float_source(ctx, ctx.load_input().cpu())
    work = Path(tempfile.mkdtemp(prefix="lab-onnx-"))
    try:
        ctx.progress(0.1, "exporting to ONNX", force=True)
        float_file = work / "float.onnx"
        X.export_onnx(model, ctx.tokenizer, float_file, cfg.max_length, cfg.opset)
        final = work / X.ONNX_FILE
        if cfg.quantize == "none":
            float_file.rename(final)
        else:
            ctx.progress(0.5, f"quantizing with ONNX Runtime ({cfg.quantize})", force=True)
            calib = []
            if cfg.quantize == "int8-static":
                texts = sample_texts(ctx.dataset.train.texts, cfg.calibration_examples, cfg.seed)
                calib = X.feeds(ctx.tokenizer, texts, cfg.max_length)
            X.quantize_onnx(float_file, final, cfg.quantize, calib, cfg.per_channel)
        ctx.progress(0.75, "exported", force=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise

    def save(out_dir: Path) -> None:
        shutil.move(str(final), out_dir / X.ONNX_FILE)
        shutil.rmtree(work, ignore_errors=True)
        model.config.save_pretrained(out_dir)
        ctx.tokenizer.save_pretrained(out_dir)
        X.write_run_snippet(out_dir, cfg.max_length)

    how = {"none": "the float graph, no quantization",
           "int8-dynamic": "ONNX Runtime dynamic int8 (int8 weights"
                           f"{' per channel' if cfg.per_channel else ''}, activations quantized "
                           "at run time)",
           "int8-static": f"ONNX Runtime static int8 (QDQ, activation ranges from "
                          f"{cfg.calibration_examples} training examples)"}[cfg.quantize]
    notes = {"explanation": f"Exported to ONNX (opset {cfg.opset}, dynamic batch and sequence "
                            f"axes) and run on ONNX Runtime's CPU execution provider: {how}.",
             "export_quantize": cfg.quantize}
    if note:
        notes["explanation"] += " " + note + "."
        notes["export_source"] = note
    return Produced(model=model, tokenizer=ctx.tokenizer, notes=notes, save=save, device="cpu",
                    runtime="onnxruntime",
                    meta={"loader": "export", "runtime": "onnxruntime", "changes": chain(
                        source, {"kind": "exported", "format": "onnx",
                                 "quantize": cfg.quantize})})
