"""Mean pooling (engine/toolkit/pooling.py): finetune gives a base encoder's new head the mean
of its token states and records it; the change survives save and reload, distillation, head
pruning, int8 and the ONNX export; padding does not move a text's logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.submit import submit
from engine.toolkit.checkpoints import load_classifier, read_meta, resolve
from engine.toolkit.pooling import is_mean_pooled, masked_mean, use_mean_pooling
from storage import jobs as store
from tests.conftest import NEGATIVE, POSITIVE
from tests.conftest import run_done as run


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT encoder with no classification head (as minilm-l6 is)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from engine.toolkit.checkpoints import embedded_minilm_path

    out = tmp_path_factory.mktemp("tiny-encoder")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(embedded_minilm_path()).save_pretrained(out)
    return out




def kinds(job: dict) -> list[str]:
    return [c["kind"] for c in read_meta(store.find_model(job["output_model"]).path)["changes"]]


def stored_predictions_match(job: dict, data: str) -> None:
    """The reloaded model predicts what the job stored for it (same weights, same pooling)."""
    from engine.toolkit.checkpoints import load_tokenizer
    from engine.toolkit.data import load_dataset
    from engine.toolkit.evaluation import predict

    ref = resolve(job["output_model"])
    model = load_classifier(ref)
    preds, probs = predict(model, load_tokenizer(ref), load_dataset(data).test.texts, 32)
    stored = store.predictions(job["id"])
    assert [p.pred for p in stored] == [int(p) for p in preds]
    assert [p.confidence for p in stored] == pytest.approx(
        [float(probs[i, p]) for i, p in enumerate(preds)], abs=1e-5)


def test_masked_mean_ignores_padding() -> None:
    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = masked_mean(hidden, mask)
    assert torch.allclose(out[0], hidden[0, :2].mean(0))
    assert torch.allclose(out[1], hidden[1].mean(0))


def test_padding_does_not_move_a_texts_logits(tiny_model_dir) -> None:
    from transformers import AutoTokenizer, BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cls_logits = model(**tok(POSITIVE[:1], return_tensors="pt")).logits
    use_mean_pooling(model)
    assert is_mean_pooled(model) and not any("pooler" in k for k in model.state_dict())
    with torch.inference_mode():
        alone = model(**tok(POSITIVE[:1], return_tensors="pt")).logits
        padded = model(**tok([POSITIVE[0], NEGATIVE[0] + " and more words " * 5],
                             padding=True, return_tensors="pt")).logits[:1]
    assert torch.allclose(alone, padded, atol=1e-5)
    assert not torch.allclose(alone, cls_logits, atol=1e-3), "the head reads other features"
    # the timing runtime: the hook survives torch.compile (freezing, as the lab times)
    from engine.toolkit.timing import compile_for_timing

    batch = tok(POSITIVE[:2] + NEGATIVE[:2], padding="max_length", max_length=16,
                return_tensors="pt")
    with torch.inference_mode():
        eager = model(**batch).logits
        compiled = compile_for_timing(model)(**batch).logits
    assert torch.allclose(eager, compiled, atol=1e-4)


def test_finetune_gives_a_new_head_mean_pooling_and_the_chain_keeps_it(tiny_encoder_dir,
                                                                       tiny_csv) -> None:
    data = f"csv:{tiny_csv}"
    train = ["max_steps=4", "eval_every=2", "batch_size=8", "max_length=32"]
    teacher = run(submit("finetune", model=str(tiny_encoder_dir), dataset=data, sets=train))
    assert kinds(teacher) == ["mean_pooled"] and teacher["metrics"]["pooling"] == "mean"
    stored_predictions_match(teacher, data)

    student = run(submit("distill", from_job=teacher["id"], dataset=data,
                         sets=["student_layers=[1]", "max_steps=2", "eval_every=2",
                               "batch_size=8", "max_length=32"]))
    assert kinds(student) == ["mean_pooled"], "the student reads its tokens as the teacher"
    pruned = run(submit("prune", from_job=student["id"], dataset=data,
                        sets=["heads=0:1", "recovery_steps=0", "max_length=32"]))
    quant = run(submit("quantize", from_job=pruned["id"], dataset=data,
                       sets=["max_length=32", "runtime=eager"]))
    assert kinds(quant) == ["mean_pooled", "heads_removed", "quantized"]
    assert is_mean_pooled(load_classifier(resolve(quant["output_model"])))
    stored_predictions_match(quant, data)


def test_cls_pooling_keeps_berts_pooler(tiny_encoder_dir, tiny_csv) -> None:
    job = run(submit("finetune", model=str(tiny_encoder_dir), dataset=f"csv:{tiny_csv}",
                     sets=["max_steps=2", "eval_every=2", "batch_size=8", "max_length=32",
                           "pooling=cls"]))
    assert kinds(job) == [] and job["metrics"]["pooling"] == "cls"
    assert not is_mean_pooled(load_classifier(resolve(job["output_model"])))


def test_a_model_with_a_head_keeps_its_pooling(tiny_model_dir, tiny_csv) -> None:
    job = run(submit("finetune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=["max_steps=2", "eval_every=2", "batch_size=8", "max_length=32"]))
    assert kinds(job) == [] and job["metrics"]["pooling"] == "cls"


def test_the_onnx_graph_of_a_mean_pooled_model_gives_its_logits(tiny_model_dir,
                                                                 tmp_path) -> None:
    from transformers import AutoTokenizer, BertForSequenceClassification

    from engine.methods.export import onnx_runtime as X

    model = use_mean_pooling(BertForSequenceClassification.from_pretrained(
        tiny_model_dir, attn_implementation="sdpa").eval())
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    X.export_onnx(model, tok, tmp_path / X.ONNX_FILE, max_length=32, opset=18)
    model.config.save_pretrained(tmp_path)
    ort_model = X.OrtClassifier(tmp_path, threads=1)
    batch = dict(tok(POSITIVE[:3] + NEGATIVE[:4], padding=True, return_tensors="pt"))
    with torch.inference_mode():
        ref = model(**batch).logits
    assert torch.allclose(ort_model(**batch).logits, ref, atol=1e-4)


@pytest.mark.parametrize("method, sets", [
    ("sensitivity", ["latency_batches=2", "batch_size=8"]),
    ("lowrank", ["target=ffn", "rank=0.5", "recovery_steps=0"]),
    ("prune", ["kind=layers", "layers=[0]", "recovery_steps=0"]),
])
def test_every_method_runs_on_a_mean_pooled_model(tiny_encoder_dir, tiny_csv, method,
                                                  sets) -> None:
    data = f"csv:{tiny_csv}"
    teacher = run(submit("finetune", model=str(tiny_encoder_dir), dataset=data,
                         sets=["max_steps=2", "eval_every=2", "batch_size=8", "max_length=32"]))
    job = run(submit(method, from_job=teacher["id"], dataset=data,
                     sets=["max_length=32", *sets]))
    if method != "sensitivity":  # the others make a model: it keeps the pooling
        assert kinds(job)[0] == "mean_pooled"
        stored_predictions_match(job, data)


def test_a_mean_pooled_checkpoint_student_keeps_its_pooling(tiny_encoder_dir, tiny_csv) -> None:
    data = f"csv:{tiny_csv}"
    train = ["max_steps=2", "eval_every=2", "batch_size=8", "max_length=32"]
    teacher = run(submit("finetune", model=str(tiny_encoder_dir), dataset=data, sets=train))
    other = run(submit("finetune", model=str(tiny_encoder_dir), dataset=data,
                       sets=[*train, "seed=1"]))
    student = run(submit("distill", from_job=teacher["id"], dataset=data,
                         sets=["student=checkpoint", f"student_model={other['output_model']}",
                               *train]))
    assert kinds(student) == ["mean_pooled"]
    stored_predictions_match(student, data)
