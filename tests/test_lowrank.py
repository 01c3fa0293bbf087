"""The lowrank method on a tiny random BERT: SVD factorisation, replay, chains both ways."""

from __future__ import annotations

import copy

import pytest
import torch

from engine.methods.lowrank import LowRankConfig, explain_slow
from engine.methods.lowrank import factorise as F
from engine.submit import submit
from engine.toolkit.checkpoints import ModelRef, load_classifier, read_meta, resolve
from engine.toolkit.data import load_dataset
from engine.toolkit.evaluation import predict
from engine.worker import run_claimed
from storage import jobs as store
from tests.conftest import run_done as run

FAST = ["max_length=32", "batch_size=8", "eval_every=2"]




def tiny(tiny_model_dir):
    return load_classifier(ModelRef("tiny", str(tiny_model_dir), "local")).eval()


def inputs() -> dict:
    torch.manual_seed(1)
    ids = torch.randint(1000, 2000, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def same_predictions_after_reload(job: dict, tiny_csv) -> None:
    """The stored model, loaded again through the one loader, predicts what the job stored."""
    model = load_classifier(resolve(job["output_model"]))
    texts = load_dataset(f"csv:{tiny_csv}").test.texts
    preds, probs = predict(model, load_tokenizer_of(job), texts, 32)
    stored = store.predictions(job["id"])
    assert [p.pred for p in stored] == [int(p) for p in preds]
    assert [p.confidence for p in stored] == pytest.approx(
        [float(probs[i, p]) for i, p in enumerate(preds)], abs=1e-5)


def load_tokenizer_of(job: dict):
    from engine.toolkit.checkpoints import load_tokenizer

    return load_tokenizer(resolve(job["output_model"]))


@pytest.mark.parametrize("target", ["ffn", "attention", "both"])
def test_full_rank_gives_the_same_outputs(tiny_model_dir, target) -> None:
    model = tiny(tiny_model_dir)
    ref = copy.deepcopy(model)
    records = F.factorise(model, target, 1.0, 0.0, [])
    assert len(records) == 2 * len(F.TARGETS[target])
    assert all(isinstance(m, torch.nn.Sequential) for m in
               [model.bert.encoder.layer[0].get_submodule(p) for p in F.TARGETS[target]])
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs()).logits, ref(**inputs()).logits,
                                   atol=1e-5, rtol=1e-5)


def test_rank_by_fraction_and_by_energy() -> None:
    s = torch.tensor([4.0, 2.0, 1.0, 1.0])  # energies 16, 4, 1, 1 of 22
    assert F.choose_rank(s, 0.5, 0.0) == 2
    assert F.choose_rank(s, 0.01, 0.0) == 1
    assert F.choose_rank(s, 0.5, 0.7) == 1  # 16/22 = 0.727
    assert F.choose_rank(s, 0.5, 0.9) == 2  # 20/22 = 0.909
    assert F.choose_rank(s, 0.5, 0.99) == 4


def test_truncation_is_the_best_rank_r_approximation(tiny_model_dir) -> None:
    lin = tiny(tiny_model_dir).bert.encoder.layer[0].intermediate.dense
    seq, kept = F.factorised_linear(lin, 8)
    w = lin.weight.detach().double()
    approx = (seq[1].weight @ seq[0].weight).detach().double()
    s = torch.linalg.svdvals(w)
    # Eckart-Young: the Frobenius error is the energy of the dropped singular values
    assert float(torch.linalg.norm(w - approx)) == pytest.approx(float(s[8:].norm()), rel=1e-4)
    assert kept == pytest.approx(float((s[:8] ** 2).sum() / (s ** 2).sum()), rel=1e-6)


def test_job_saves_replays_and_reloads(tiny_model_dir, tiny_csv) -> None:
    job = run(submit("lowrank", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=[*FAST, "target=ffn", "rank=0.25", "recovery_steps=4"]))
    m = job["metrics"]
    assert m["factorised_modules"] == 4 and m["recovery_steps"] == 4
    assert store.get_job(job["id"]).curves.get("train_loss"), "recovery reports its curve"
    change = read_meta(store.find_model(job["output_model"]).path)["changes"][-1]
    assert change["kind"] == "factorised" and len(change["modules"]) == 4
    reloaded = load_classifier(resolve(job["output_model"]))
    dense = reloaded.bert.encoder.layer[1].intermediate.dense
    assert isinstance(dense, torch.nn.Sequential) and dense[0].out_features == 8  # 32 * 0.25
    same_predictions_after_reload(job, tiny_csv)


def test_recovery_cancels(tiny_model_dir, tiny_csv) -> None:
    job_id = submit("lowrank", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                    sets=[*FAST, "recovery_steps=50"])
    store.claim(None, job_id=job_id)
    store.request_cancel(job_id)
    assert run_claimed(job_id) == "cancelled"


def test_prune_then_lowrank_reloads_identically(tiny_model_dir, tiny_csv) -> None:
    pruned = run(submit("prune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                        sets=["heads=0:1,1:2", "recovery_steps=0", "max_length=32"]))
    job = run(submit("lowrank", from_job=pruned["id"], dataset=f"csv:{tiny_csv}",
                     sets=[*FAST, "target=both", "rank=0.5", "recovery_steps=0"]))
    kinds = [c["kind"] for c in read_meta(store.find_model(job["output_model"]).path)["changes"]]
    assert kinds == ["heads_removed", "factorised"]
    reloaded = load_classifier(resolve(job["output_model"]))
    query = reloaded.bert.encoder.layer[0].attention.self.query
    assert isinstance(query, torch.nn.Sequential) and query[1].out_features == 3 * 8
    assert job["metrics"]["heads"] == pruned["metrics"]["heads"]
    same_predictions_after_reload(job, tiny_csv)


def test_lowrank_then_int8_reloads_identically(tiny_model_dir, tiny_csv) -> None:
    low = run(submit("lowrank", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=[*FAST, "target=ffn", "energy=0.9", "recovery_steps=0"]))
    job = run(submit("quantize", from_job=low["id"], dataset=f"csv:{tiny_csv}",
                     sets=["max_length=32", "runtime=eager"]))
    kinds = [c["kind"] for c in read_meta(store.find_model(job["output_model"]).path)["changes"]]
    assert kinds == ["factorised", "quantized"]
    reloaded = load_classifier(resolve(job["output_model"]))
    second = reloaded.bert.encoder.layer[0].intermediate.dense[1]
    assert type(second.weight).__name__ == "Int8Tensor"
    same_predictions_after_reload(job, tiny_csv)


def test_a_quantized_input_is_refused(tiny_model_dir, tiny_csv) -> None:
    q = run(submit("quantize", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                   sets=["max_length=32", "runtime=eager"]))
    job_id = submit("lowrank", from_job=q["id"], dataset=f"csv:{tiny_csv}",
                    sets=[*FAST, "recovery_steps=0"])
    store.claim(None, job_id=job_id)
    run_claimed(job_id)
    job = store.job_as_dict(store.get_job(job_id))
    assert job["status"] == "failed" and "quantize afterwards" in job["error"]


def test_explain_slow_uses_the_jobs_own_figures() -> None:
    cfg = LowRankConfig(rank=0.9)
    why = explain_slow(cfg, "cpu (2 threads)", {"lowrank_weight_ratio": 0.7,
                                                "lowrank_no_gain_modules": 4,
                                                "estimated_compute_ratio": 0.8})
    assert "save nothing" in why or "saves nothing" in why
    assert "0.70x" in why and "0.80x" in why
