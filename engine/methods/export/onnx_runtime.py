"""ONNX export and ONNX Runtime: a float BERT classifier to an .onnx graph with dynamic batch
and sequence axes, ONNX Runtime's own int8 quantization (dynamic, or static with calibration),
and `OrtClassifier`, which the evaluation harness and the paired timing call like a PyTorch
model (`model(**batch).logits`).

torch and onnxruntime are imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine.toolkit.config import LabError

ONNX_FILE = "model.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# What a user needs to run the downloaded folder: written beside the .onnx file.
RUN_SNIPPET = '''"""Run this exported model with ONNX Runtime: python run_onnx.py "some text" ..."""
import json
import sys

import numpy as np
import onnxruntime as ort
from transformers import AutoTokenizer

here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
tokenizer = AutoTokenizer.from_pretrained(here)
session = ort.InferenceSession(f"{here}/model.onnx", providers=["CPUExecutionProvider"])
labels = json.load(open(f"{here}/config.json"))["id2label"]
texts = sys.argv[1:] or ["a wonderful, moving film"]
enc = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
feed = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
logits = session.run(None, feed)[0]
for text, row in zip(texts, logits):
    print(labels[str(int(row.argmax()))], text, sep="\\t")
'''


def onnxruntime_problem() -> str | None:
    """Why ONNX Runtime cannot be used here, or None (no import: cheap)."""
    import importlib.util

    missing = [m for m in ("onnxruntime", "onnx", "onnxscript")
               if importlib.util.find_spec(m) is None]
    if missing:
        return (f"the export method needs {', '.join(missing)}, which this environment lacks; "
                f"install the lab's requirements (pip install -r requirements.txt); the rest "
                f"of the lab works without it")
    return None


def is_plain_float(model) -> bool:
    """True when every weight is a plain float32 tensor: what the ONNX exporter can trace.
    torchao's int8/int4/fp8 weights are tensor subclasses that do not export
    (pytorch/ao#3392); fp16/bf16 models would export in half precision."""
    import torch

    return all(type(p.data) is torch.Tensor and p.dtype == torch.float32
               for p in model.parameters())


class _Logits(SimpleNamespace):
    logits: Any


def export_onnx(model, tokenizer, out: Path, max_length: int, opset: int) -> None:
    """Export `model` (float32, eval) to `out` (one file, no external data) with inputs
    input_ids, attention_mask, token_type_ids of shape [batch, seq] (both dynamic) and output
    logits [batch, num_labels]. Raises LabError naming the module the exporter could not
    trace."""
    import torch

    class _Wrap(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).logits

    model = model.float().eval().cpu()
    example = dict(tokenizer(["an example", "a second, longer example text"],
                             padding="max_length", truncation=True, max_length=min(16, max_length),
                             return_tensors="pt"))
    example.setdefault("token_type_ids", torch.zeros_like(example["input_ids"]))
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("seq", min=2, max=max(max_length, 512))
    shapes = {name: {0: batch, 1: seq} for name in INPUTS}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Wrap(model), tuple(example[n] for n in INPUTS), str(out),
                              input_names=list(INPUTS), output_names=["logits"],
                              dynamic_shapes=shapes, opset_version=opset, dynamo=True,
                              external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many types; name what failed
        text = str(exc).splitlines()
        where = next((line.strip() for line in text if "File " in line or "module" in line),
                     text[0] if text else "")
        raise LabError(f"export: the ONNX exporter could not trace this model "
                       f"({type(exc).__name__}: {where[:300]}); export its float parent "
                       f"instead, or report the layer named here") from exc


def quantize_onnx(src: Path, dst: Path, scheme: str, calibration: list[dict[str, Any]],
                  per_channel: bool) -> None:
    """ONNX Runtime int8: `int8-dynamic` (int8 weights, activations quantized at run time by
    MatMulInteger), or `int8-static` (QDQ nodes with activation ranges from `calibration`,
    a list of numpy input feeds)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if scheme == "int8-dynamic":
        quantize_dynamic(str(src), str(dst), per_channel=per_channel,
                         weight_type=QuantType.QInt8)
        return

    class _Reader(CalibrationDataReader):
        def __init__(self, feeds: list[dict[str, Any]]):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(src), str(dst), _Reader(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)


def feeds(tokenizer, texts: list[str], max_length: int, batch_size: int = 32) -> list[dict]:
    """Numpy input feeds for calibration: batches padded to `max_length`."""
    import numpy as np

    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], padding="max_length", truncation=True,
                        max_length=max_length, return_tensors="np")
        enc = {k: v.astype(np.int64) for k, v in enc.items()}
        enc.setdefault("token_type_ids", np.zeros_like(enc["input_ids"]))
        out.append({n: enc[n] for n in INPUTS})
    return out


def write_run_snippet(folder: Path, max_length: int) -> None:
    (folder / "run_onnx.py").write_text(RUN_SNIPPET.replace("MAX_LENGTH", str(max_length)))


def session_threads() -> int:
    """The lab's fixed thread count (LAB_THREADS, as torch uses it): ORT is timed alike."""
    import torch

    return torch.get_num_threads()


class OrtClassifier:
    """An ONNX Runtime session that the lab's harness calls like a classifier.

    `model(input_ids=[B, T], attention_mask=[B, T], token_type_ids=[B, T])` (torch tensors)
    returns an object whose `.logits` is a torch tensor [B, num_labels]. `.config` is the
    float model's config (layers, heads, labels); `state_dict()` lists the graph's
    initializers as meta tensors (for the parameter count, no memory)."""

    runtime = "onnxruntime"

    def __init__(self, folder: Path, threads: int | None = None):
        import onnxruntime as ort
        from transformers import AutoConfig

        self.folder = Path(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or session_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.folder / ONNX_FILE), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.config = AutoConfig.from_pretrained(self.folder, trust_remote_code=False)

    def __call__(self, **batch) -> _Logits:
        import numpy as np
        import torch

        ids = batch["input_ids"]
        batch.setdefault("token_type_ids", torch.zeros_like(ids))
        feed = {n: np.ascontiguousarray(batch[n].cpu().numpy().astype(np.int64))
                for n in self.input_names}
        return _Logits(logits=torch.from_numpy(self.session.run(None, feed)[0]))

    # the nn.Module surface the harness touches
    def eval(self) -> OrtClassifier:
        return self

    def to(self, *args, **kwargs) -> OrtClassifier:
        return self  # runs on the CPU execution provider

    def parameters(self):
        return iter(())

    def state_dict(self) -> dict[str, Any]:
        import onnx
        import torch

        graph = onnx.load(str(self.folder / ONNX_FILE), load_external_data=False).graph
        return {t.name: torch.empty(tuple(t.dims), device="meta") for t in graph.initializer}
