"""The export method: ONNX graphs of a tiny BERT (plain, head-pruned, layer-dropped) give the
logits PyTorch gives; ORT int8 exports run through the runner and are evaluated and timed as
runtime onnxruntime; a torchao int8 input is exported from its float source; the folder runs
with the lines it ships."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from engine.methods.export import onnx_runtime as X
from engine.methods.prune import surgery as P
from engine.submit import submit
from engine.worker import run_claimed
from storage import jobs as store
from tests.conftest import NEGATIVE, POSITIVE


def _tiny(tiny_model_dir):
    from transformers import AutoTokenizer, BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(
        tiny_model_dir, attn_implementation="sdpa").eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("surgery", ["none", "heads", "layers"])
def test_onnx_graph_gives_the_pytorch_logits(tiny_model_dir, tmp_path, surgery) -> None:
    model, tok = _tiny(tiny_model_dir)
    if surgery == "heads":
        P.remove_heads(model, {0: [1, 2], 1: [0]})
    elif surgery == "layers":
        P.drop_layers(model, [0])
    X.export_onnx(model, tok, tmp_path / X.ONNX_FILE, max_length=32, opset=18)
    model.config.save_pretrained(tmp_path)
    ort_model = X.OrtClassifier(tmp_path, threads=1)
    # batch sizes and lengths the export never saw: the axes are dynamic
    for texts in (POSITIVE[:1], POSITIVE[:3] + NEGATIVE[:4]):
        batch = dict(tok(texts, padding=True, return_tensors="pt"))
        with torch.inference_mode():
            ref = model(**batch).logits
        assert torch.allclose(ort_model(**batch).logits, ref, atol=1e-4), surgery
    # the parameter count comes from the graph: removed heads and layers are really gone
    count = sum(t.numel() for t in ort_model.state_dict().values())
    assert abs(count - sum(p.numel() for p in model.parameters())) / count < 0.01


@pytest.fixture
def no_compile(monkeypatch) -> None:
    """Compiling is stubbed out: these tests check the export, not torch.compile."""
    import engine.toolkit.timing as T

    monkeypatch.setattr(T, "compile_for_timing", lambda model, device="cpu": model)


def run(job_id: int) -> dict:
    assert store.claim(None, job_id=job_id) is not None
    run_claimed(job_id)
    return store.job_as_dict(store.get_job(job_id))


def test_ort_int8_export_is_evaluated_timed_and_runs_from_its_folder(tiny_model_dir, tiny_csv,
                                                                     no_compile) -> None:
    job = run(submit("export", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=["max_length=32", "quantize=int8-dynamic"]))
    assert job["status"] == "done", job["error"]
    m = job["metrics"]
    assert 0 <= m["accuracy"] <= 1 and m["test_examples"] > 0
    assert {r["runtime"] for r in m["latency"]} == {"onnxruntime"}
    assert m["speedup_vs_parent"].keys() == {"1", "32"} and m["parent_runtime"] == "eager"
    assert "change of runtime" in m["speedup_note"]
    # int8 MatMul weights; the embedding tables (most of a tiny model) stay float in ORT
    assert m["size_ratio_vs_parent"] > 1
    assert "ONNX Runtime dynamic int8" in m["explanation"]
    folder = store.find_model(job["output_model"]).path
    out = subprocess.run([sys.executable, f"{folder}/run_onnx.py", "a wonderful film"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\t")[0] in ("negative", "positive")


def test_static_int8_calibrates_on_training_examples(tiny_model_dir, tiny_csv,
                                                     no_compile) -> None:
    job = run(submit("export", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=["max_length=32", "quantize=int8-static",
                           "calibration_examples=16"]))
    assert job["status"] == "done", job["error"]
    assert "16 training examples" in job["metrics"]["explanation"]


def test_a_torchao_int8_model_is_exported_from_its_float_source(tiny_model_dir, tiny_csv,
                                                                no_compile) -> None:
    q = run(submit("quantize", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                   sets=["max_length=32", "runtime=eager"]))
    assert q["status"] == "done", q["error"]
    job = run(submit("export", from_job=q["id"], dataset=f"csv:{tiny_csv}",
                     sets=["max_length=32", "quantize=none"]))
    assert job["status"] == "done", job["error"]
    assert "pytorch/ao#3392" in job["metrics"]["export_source"]


def test_missing_onnxruntime_is_a_clear_refusal(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    reason = X.onnxruntime_problem()
    assert reason and "onnxruntime" in reason and "requirements" in reason
