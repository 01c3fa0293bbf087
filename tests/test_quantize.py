"""The quantize method on a tiny random BERT: each CPU scheme applies, stays close to its
parent, saves int8 data and reloads to the same outputs; schemes that cannot run here are
refused with a reason (test_quantize_devices.py); the runner times a compiled model against its
parent both ways. GPU schemes run only where CUDA is available.

Tolerances (relative L2 error of the logits against the fp32 parent, on 12 sentences): int8
schemes 5%, bf16 3% (int8 embeddings add up to 2%). Random weights give small logits, so these
are loose next to the ~1% measured, but tight next to a broken scheme (errors of order 100%).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.methods import quantize as Q
from engine.methods.quantize import torchao_support as QZ
from engine.submit import submit
from engine.worker import run_claimed
from storage import jobs as store
from tests.conftest import NEGATIVE, POSITIVE

CPU = "cpu (2 threads)"
TOLERANCE = {"int8-dynamic": 0.05, "int8-static": 0.05, "bf16": 0.03}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="GPU scheme: needs a CUDA GPU (none visible here)")


@pytest.fixture(scope="module")
def parent(tiny_model_dir):
    """(fp32 tiny BERT classifier, tokenizer, a tokenized batch, its reference logits)."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    batch = dict(tok(POSITIVE[:6] + NEGATIVE[:6], padding=True, return_tensors="pt"))
    with torch.inference_mode():
        ref = model(**batch).logits
    return model, tok, batch, ref


def logits(model, batch: dict) -> torch.Tensor:
    with torch.inference_mode():
        return model(**batch).logits.float()


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).norm() / ref.norm())


def safetensors_dtypes(path: Path) -> dict[str, str]:
    """Tensor name -> dtype, read from the safetensors header (no tensor loaded)."""
    with (path / QZ.WEIGHTS_FILE).open("rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    return {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}


CASES = [("int8-dynamic", False, "minmax"), ("int8-dynamic", True, "minmax"),
         ("int8-static", False, "minmax"), ("int8-static", True, "mse"),
         ("bf16", False, "minmax"), ("bf16", True, "minmax")]


@pytest.mark.parametrize(("scheme", "embeddings", "observer"), CASES)
def test_cpu_scheme_applies_stays_close_and_reloads(parent, tmp_path, scheme, embeddings,
                                                    observer) -> None:
    model, tok, batch, ref = parent
    cfg = Q.QuantizeConfig(scheme=scheme, embeddings=embeddings, observer=observer)
    assert Q.availability(cfg, CPU) is None
    q = copy.deepcopy(model)
    scales = None
    if scheme == "int8-static":
        scales = QZ.calibrate(q, tok, POSITIVE + NEGATIVE, 32, observer)
        assert all(s.numel() == 1 and float(s) > 0 for s, _ in scales.values())
    Q.quantize_model(q, cfg, scales)
    out = logits(q, batch)
    tol = TOLERANCE[scheme] + (0.02 if embeddings else 0.0)
    assert rel_error(out, ref.float()) < tol

    QZ.save_quantized(q, tok, tmp_path)
    dtypes = safetensors_dtypes(tmp_path)
    query = "bert.encoder.layer.0.attention.self.query"
    word = "bert.embeddings.word_embeddings"
    if scheme.startswith("int8"):
        assert dtypes[f"{query}._weight_qdata"] == "I8", "int8 weights stored as int8"
        assert "classifier.weight" in dtypes, "the classifier stays in float"
    else:
        assert dtypes[f"{query}.weight"] == "BF16"
    if embeddings:
        assert dtypes[f"{word}._weight_qdata"] == "I8"
    meta = {"dtype": Q._float_dtype_name(scheme), "embeddings": embeddings}
    again = Q.load(tmp_path, meta)
    assert torch.equal(logits(again, batch), out), "the reload computes the same outputs"


def test_embeddings_make_the_file_much_smaller(parent, tmp_path) -> None:
    model, tok, _, _ = parent
    sizes = {}
    for embeddings in (False, True):
        q = copy.deepcopy(model)
        Q.quantize_model(q, Q.QuantizeConfig(embeddings=embeddings))
        QZ.save_quantized(q, tok, tmp_path / str(embeddings))
        sizes[embeddings] = (tmp_path / str(embeddings) / QZ.WEIGHTS_FILE).stat().st_size
    # the tiny model is mostly its 30522 x 32 word embeddings, as small real models are
    assert sizes[True] < sizes[False] / 3


def test_row_gather_embedding_matches_torchao(parent) -> None:
    """The row-gathering lookup computes what torchao's (whole-table) lookup does."""
    model, _, batch, _ = parent
    q = copy.deepcopy(model)
    QZ.quantize_embeddings(q)
    emb = q.bert.embeddings.word_embeddings
    assert type(emb).__name__ == "RowGatherEmbedding"
    ids = batch["input_ids"]
    expected = torch.nn.functional.embedding(ids, emb.weight)  # torchao: dequantize, gather
    assert torch.allclose(emb(ids), expected, atol=1e-6)


def test_compiled_quantized_model_matches_eager(parent) -> None:
    """What the runner times under runtime=compiled (inductor, freezing) computes the same
    logits as the eager model that was evaluated."""
    model, _, batch, _ = parent
    q = copy.deepcopy(model)
    Q.quantize_model(q, Q.QuantizeConfig(scheme="int8-dynamic", embeddings=True))
    from engine.toolkit.timing import compile_for_timing

    eager = logits(q, batch)
    compiled = logits(compile_for_timing(q), batch)
    assert rel_error(compiled, eager) < 0.02


def test_compiled_timing_folds_the_int8_weights_into_the_graph(parent) -> None:
    """The graph the runner times takes only the inputs, not one argument per weight: with the
    weights as arguments, inductor re-reads them and recomputes their row sums on every call
    (batch-1 int8 was 25 % slower). Counted in inductor's generated wrapper code."""
    import re

    from torch._inductor.utils import run_and_get_code

    from engine.toolkit.timing import compile_for_timing

    model, _, batch, _ = parent
    q = copy.deepcopy(model)
    Q.quantize_model(q, Q.QuantizeConfig(scheme="int8-dynamic", embeddings=False))
    compiled = compile_for_timing(q)
    with torch.inference_mode():
        _, code = run_and_get_code(compiled, **batch)
    unpacked = re.findall(r"^\s*(arg\d+_1(?:, arg\d+_1)*) = args$", "\n".join(code), re.M)
    assert unpacked, "inductor's wrapper changed shape: update this test"
    n_args = max(len(line.split(", ")) for line in unpacked)
    n_weights = sum(1 for _ in q.parameters())
    assert n_args < n_weights / 4, f"{n_args} graph arguments for {n_weights} weights"


def test_importing_torchao_leaves_the_log_clean() -> None:
    """On a machine without CUDA, a bare `import torchao` warns about each CUDA-only kernel
    library it skips; a job's log should not."""
    from tests.conftest import ROOT

    code = ("import logging; logging.basicConfig(level=logging.INFO); "
            "from engine.methods.quantize.torchao_support import import_torchao; import_torchao()")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Failed to load" not in done.stderr and "register_constant" not in done.stderr


# ------------------------------------------------------------------------ through the runner


def run(job_id: int) -> dict:
    assert store.claim(None, job_id=job_id) is not None
    run_claimed(job_id)
    return store.job_as_dict(store.get_job(job_id))


FAST = ["max_length=32"]


def test_runner_quantizes_evaluates_and_pairs_with_the_parent(tiny_model_dir, tiny_csv,
                                                              monkeypatch) -> None:
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))  # a quiet machine
    job = run(submit("quantize", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=FAST + ["runtime=eager"]))
    assert job["status"] == "done", job["error"]
    m = job["metrics"]
    assert m["speedup_vs_parent"].keys() == {"1", "32"}
    assert m["runtime"] == m["parent_runtime"] == "eager"
    assert m["size_ratio_vs_parent"] > 3, "int8 Linear layers and embeddings"
    assert abs(m["accuracy_delta_vs_parent"]) <= 0.25
    assert "scale" in m["explanation"] and "speed_summary" in m
    assert "if_not_faster" not in m and "timing_warning" not in m
    assert m["params"] > 0 and m["layers"] == 2

    from engine.toolkit.checkpoints import load_classifier, resolve

    reloaded = load_classifier(resolve(job["output_model"]))
    assert type(reloaded.bert.encoder.layer[0].output.dense.weight).__name__ == "Int8Tensor"
    # the Models page's card counts parameters, not the scale tensors stored beside them
    from engine.toolkit.checkpoints import checkpoint_card

    assert checkpoint_card(job["output_model"])["params"] == m["params"]


def test_runner_times_a_compiled_model_against_its_parent_compiled(
        tiny_model_dir, tiny_csv, monkeypatch) -> None:
    """runtime=compiled: self and parent are timed under both runtimes in one run, and
    speedup_vs_parent is the parent's compiled row over the model's compiled row (not the
    eager one). Compiling is stubbed out to keep the test fast (the real compile is checked
    above): only which rows are paired is under test."""
    import engine.toolkit.timing as B

    monkeypatch.setattr(B, "compile_for_timing", lambda model, device="cpu": model)
    monkeypatch.setenv("LAB_TIMING_RUNTIMES", "eager,compiled")
    monkeypatch.setattr("os.getloadavg", lambda: (64.0, 64.0, 64.0))  # a busy machine
    job = run(submit("quantize", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=FAST + ["embeddings=false"]))
    assert job["status"] == "done", job["error"]
    m = job["metrics"]
    assert m["runtime"] == "compiled" and m["parent_runtime"] == "compiled"
    own = {(r["runtime"], r["batch_size"]): r["p50_ms"] for r in m["latency"]}
    par = {(r["runtime"], r["batch_size"]): r["p50_ms"] for r in m["parent_latency"]}
    assert sorted(own) == sorted(par) == [(rt, bs) for rt in ("compiled", "eager")
                                          for bs in (1, 32)]
    for rt in ("compiled", "eager"):
        for bs in (1, 32):
            want = par[(rt, bs)] / own[(rt, bs)]
            assert m["speedup_by_runtime"][rt][str(bs)] == pytest.approx(want, abs=1e-3)
            lo, hi = m["speedup_ci_by_runtime"][rt][str(bs)]
            assert lo <= m["speedup_by_runtime"][rt][str(bs)] <= hi
        assert m["compile_gain_parent"][str(bs)] == pytest.approx(
            par[("eager", bs)] / par[("compiled", bs)], abs=1e-3)
    assert m["speedup_vs_parent"] == m["speedup_by_runtime"]["compiled"]
    assert m["speedup_vs_parent_ci"] == m["speedup_ci_by_runtime"]["compiled"]
    assert "compiled" in m["speed_summary"] and m["compile_seconds"] >= 0
    assert "busy" in m["timing_warning"] and m["timing_warning"] in m["speed_summary"]


def test_static_calibration_through_the_runner(tiny_model_dir, tiny_csv) -> None:
    job = run(submit("quantize", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=FAST + ["scheme=int8-static", "calibration_examples=16",
                                  "runtime=eager", "observer=mse"]))
    assert job["status"] == "done", job["error"]
    assert job["metrics"]["calibration_examples"] == 16
    assert "calibration" in job["metrics"]["explanation"]


# ------------------------------------------------------------------------ GPU schemes


@needs_cuda
@pytest.mark.parametrize("scheme", ["fp16", "bf16", "int8-weight-only", "int4-weight-only",
                                    "fp8", "int8-dynamic"])
def test_gpu_scheme_applies_and_reloads(parent, tmp_path, scheme) -> None:
    from engine.toolkit.device import describe

    model, tok, batch, ref = parent
    cfg = Q.QuantizeConfig(scheme=scheme, embeddings=False, group_size=32)  # hidden is 32
    why = Q.availability(cfg, describe("cuda"))
    if why:
        pytest.skip(why)
    q = copy.deepcopy(model).cuda()
    Q.quantize_model(q, cfg)
    cuda_batch = {k: v.cuda() for k, v in batch.items()}
    out = logits(q, cuda_batch)
    assert rel_error(out.cpu(), ref.float()) < 0.1
    QZ.save_quantized(q, tok, tmp_path)
    again = Q.load(tmp_path, {"dtype": Q._float_dtype_name(scheme)}).cuda()
    assert torch.allclose(logits(again, cuda_batch), out, atol=1e-3)


def test_a_pruned_model_quantizes_and_reloads_with_its_pruned_shape(tiny_model_dir,
                                                                   tiny_csv) -> None:
    """prune (heads) -> quantize: the quantized model reloads into the pruned shape."""
    pruned = run(submit("prune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                        sets=["heads=0:1,0:2", "recovery_steps=0", "max_length=32"]))
    assert pruned["status"] == "done", pruned["error"]
    job = run(submit("quantize", from_job=pruned["id"], dataset=f"csv:{tiny_csv}",
                     sets=FAST + ["runtime=eager"]))
    assert job["status"] == "done", job["error"]
    assert job["metrics"]["heads"] == pruned["metrics"]["heads"]

    from engine.toolkit.checkpoints import load_classifier, resolve

    reloaded = load_classifier(resolve(job["output_model"]))
    query = reloaded.bert.encoder.layer[0].attention.self.query.weight
    assert type(query).__name__ == "Int8Tensor" and query.shape[0] < query.shape[1]
