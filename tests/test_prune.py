"""The prune method on a tiny random BERT: head surgery, layers, sparsity, scores, reload."""

from __future__ import annotations

import copy

import pytest
import torch

from engine.methods.prune import PruneConfig, parse_heads, semi_structured_problem
from engine.methods.prune import importance as HI
from engine.methods.prune import surgery as P
from engine.submit import submit
from engine.toolkit.checkpoints import ModelRef, checkpoint_card, load_classifier, read_meta
from engine.toolkit.config import ConfigError, LabError
from engine.worker import run_claimed
from storage import jobs as store

FAST = ["max_length=32", "batch_size=8", "scoring_examples=16", "eval_every=2"]


def run(job_id: int) -> dict:
    assert store.claim(None, job_id=job_id) is not None
    run_claimed(job_id)
    return store.job_as_dict(store.get_job(job_id))


def prune(tiny_model_dir, tiny_csv, *sets: str) -> dict:
    job = run(submit("prune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=[*FAST, *sets]))
    assert job["status"] == "done", job["error"]
    return job


def tiny(tiny_model_dir, eager: bool = True):
    return load_classifier(ModelRef("tiny", str(tiny_model_dir), "local"),
                           eager_attention=eager).eval()


def inputs() -> dict:
    torch.manual_seed(1)
    ids = torch.randint(1000, 2000, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0  # padding must be handled alike
    return {"input_ids": ids, "attention_mask": mask}


def masked_logits(model, remove: dict[int, list[int]]) -> torch.Tensor:
    """Logits with the given heads' outputs multiplied by zero (the reference for removal)."""
    h = model.config.num_attention_heads
    gates = [torch.ones(h) for _ in range(model.config.num_hidden_layers)]
    for layer, heads in remove.items():
        gates[layer][heads] = 0

    def gate(i):
        def hook(module, args, out):
            b, t, _ = out[0].shape
            return ((out[0].view(b, t, h, -1) * gates[i].view(1, 1, h, 1)).view(b, t, -1),
                    *out[1:])
        return hook

    handles = [layer.attention.self.register_forward_hook(gate(i))
               for i, layer in enumerate(P.encoder_layers(model))]
    with torch.no_grad():
        out = model(**inputs()).logits
    for handle in handles:
        handle.remove()
    return out


@pytest.mark.parametrize("eager", [True, False], ids=["eager", "sdpa"])
def test_head_removal_equals_masking_and_shrinks(tiny_model_dir, eager) -> None:
    model = tiny(tiny_model_dir, eager)
    remove = {0: [0, 1, 2, 3], 1: [1, 3]}  # layer 0 loses every head
    reference = masked_logits(model, remove)
    pruned = copy.deepcopy(model)
    assert P.remove_heads(pruned, remove) == 6
    with torch.no_grad():
        out = pruned(**inputs()).logits
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-4)
    before = sum(p.numel() for p in model.parameters())
    after = sum(p.numel() for p in pruned.parameters())
    # Per head (d=8, hidden 32): q, k, v rows 3 * (8 * 32 + 8), output columns 32 * 8.
    assert before - after == 6 * (3 * (8 * 32 + 8) + 32 * 8)
    assert P.heads_per_layer(pruned.config) == [0, 2]
    assert pruned.config.pruned_heads == {0: [0, 1, 2, 3], 1: [1, 3]}


def test_pruning_twice_keeps_original_numbering(tiny_model_dir) -> None:
    model = tiny(tiny_model_dir)
    reference = masked_logits(model, {1: [0, 2, 3]})
    P.remove_heads(model, {1: [2]})
    P.remove_heads(model, {1: [0, 3]})
    assert P.kept_heads(model.config, 1) == [1]
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs()).logits, reference, atol=1e-5, rtol=1e-4)
    with pytest.raises(LabError, match="head 1:2 is not in the model"):
        P.remove_heads(model, {1: [2]})


def test_head_job_saves_reloads_and_counts(tiny_model_dir, tiny_csv) -> None:
    job = prune(tiny_model_dir, tiny_csv, "amount=0.5", "importance=magnitude",
                "recovery_steps=0")
    m = job["metrics"]
    assert m["heads"] == 4 and m["layers"] == 2
    assert len(m["head_importance"]) == 2 and all(len(r) == 4 for r in m["head_importance"])
    assert "4 of 8 attention heads" in m["explanation"] and m["estimated_compute_ratio"] > 1
    assert m["speedup_vs_parent"].keys() == {"1", "32"}
    path = store.find_model(job["output_model"]).path
    assert read_meta(path)["loader"] == "prune"
    card = checkpoint_card(job["output_model"])
    assert card["heads"] == 4 and card["params"] == m["params"]
    # Reload with eager attention (attention maps): one map per layer, kept heads only.
    ref = ModelRef(job["output_model"], path, "job", job["id"])
    model = load_classifier(ref, eager_attention=True)
    with torch.no_grad():
        out = model(**inputs(), output_attentions=True)
    assert [a.shape[1] for a in out.attentions] == P.heads_per_layer(model.config)
    sdpa = load_classifier(ref)
    with torch.no_grad():
        torch.testing.assert_close(sdpa(**inputs()).logits, out.logits, atol=1e-5, rtol=1e-4)


def test_layer_with_no_heads_left_saves_and_reloads(tiny_model_dir, tiny_csv) -> None:
    job = prune(tiny_model_dir, tiny_csv, "heads=0:0,0:1,0:2,0:3,1:2", "recovery_steps=0")
    m = job["metrics"]
    assert m["heads"] == 3 and m["heads_per_layer"] == [0, 3]
    assert "lost every head" in m["explanation"]
    model = tiny(tiny_model_dir)
    reference = masked_logits(model, {0: [0, 1, 2, 3], 1: [2]})
    reloaded = load_classifier(ModelRef("p", store.find_model(job["output_model"]).path, "job"))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs()).logits, reference, atol=1e-5,
                                   rtol=1e-4)


def test_layers_drop_as_asked(tiny_model_dir, tiny_csv) -> None:
    assert P.layers_to_drop(6, 0.5, "top") == [3, 4, 5]
    assert P.layers_to_drop(6, 0.34, "bottom") == [0, 1]
    assert P.layers_to_drop(6, 0.5, "alternate") == [0, 2, 4]
    assert P.layers_to_drop(12, 0.34, "alternate") == [4, 6, 8, 10]
    job = prune(tiny_model_dir, tiny_csv, "kind=layers", "layers=[0]", "recovery_steps=0")
    m = job["metrics"]
    assert m["layers"] == 1 and m["dropped_layers"] == [0] and m["kept_layers"] == [1]
    # The kept layer is the original layer 1, unchanged.
    model = tiny(tiny_model_dir)
    reloaded = load_classifier(ModelRef("p", store.find_model(job["output_model"]).path, "job"))
    torch.testing.assert_close(reloaded.bert.encoder.layer[0].output.dense.weight,
                               model.bert.encoder.layer[1].output.dense.weight)


def test_heads_then_layers_keep_the_bookkeeping(tiny_model_dir) -> None:
    model = tiny(tiny_model_dir)
    P.remove_heads(model, {0: [1], 1: [0, 2]})
    P.drop_layers(model, [0])
    assert model.config.num_hidden_layers == 1
    assert model.config.pruned_heads == {0: [0, 2]}
    assert P.heads_per_layer(model.config) == [2]


def test_unstructured_reaches_the_sparsity_and_keeps_it(tiny_model_dir, tiny_csv) -> None:
    job = prune(tiny_model_dir, tiny_csv, "kind=unstructured", "amount=0.6",
                "recovery_steps=3", "distill_weight=0.5")
    m = job["metrics"]
    assert m["sparsity"] == pytest.approx(0.6, abs=0.005), "recovery keeps pruned weights zero"
    assert m["recovery_steps"] == 3
    assert "dense" in m["why_not_faster"] and "zero" in m["explanation"]
    assert m["size_ratio_vs_parent"] == pytest.approx(1.0, abs=0.01), "zeros are still stored"
    model = tiny(tiny_model_dir)
    masks = P.magnitude_masks(model, 0.3, "per-layer")
    P.apply_masks(model, masks)
    for _, lin in P.prunable_linears(model):  # per layer: every matrix at the target
        assert float((lin.weight == 0).float().mean()) == pytest.approx(0.3, abs=0.02)


def test_importance_one_value_per_head_and_seeded(tiny_model_dir, tiny_csv) -> None:
    from engine.toolkit.data import load_dataset

    data = load_dataset(f"csv:{tiny_csv}")
    model = tiny(tiny_model_dir)
    args = (model, tiny_model_tokenizer(tiny_model_dir), data.train.texts[:16],
            data.train.labels[:16])
    grad = HI.head_importance(*args, "gradient", max_length=32, batch_size=8)
    assert len(grad) == 2 and all(len(row) == 4 for row in grad)
    assert grad == HI.head_importance(*args, "gradient", max_length=32, batch_size=8)
    for row in grad:  # normalised per layer (L2)
        assert sum(v * v for v in row) == pytest.approx(1.0, abs=1e-4)
    assert all(p.requires_grad for p in model.parameters()), "scoring restores the flags"
    rand = HI.head_importance(*args, "random", seed=3)
    assert rand == HI.head_importance(*args, "random", seed=3)
    assert rand != HI.head_importance(*args, "random", seed=4)
    P.remove_heads(model, {1: [2]})
    after = HI.head_importance(*args, "magnitude")
    assert after[1][2] is None and all(v is not None for v in after[0])
    assert HI.lowest_heads([[0.5, 0.1], [0.2, None]], 0.67) == {0: [1], 1: [0]}
    assert HI.lowest_heads([[0.5, 0.1], [0.2, None]], 0.1) == {}


def tiny_model_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_score_only_job_stores_scores_and_makes_no_model(tiny_model_dir, tiny_csv) -> None:
    job = prune(tiny_model_dir, tiny_csv, "score_only=true")
    m = job["metrics"]
    assert job["output_model"] is None and m["heads"] == 8
    assert m["head_importance_method"] == "gradient" and m["head_importance_examples"] == 16
    assert len(m["head_importance"]) == 2 and m["head_importance_seconds"] >= 0
    assert store.list_models() == [], "no model registered"


def test_recovery_distils_with_progress_and_cancels(tiny_model_dir, tiny_csv) -> None:
    job = prune(tiny_model_dir, tiny_csv, "heads=1:1,1:2", "recovery_steps=4")
    assert job["metrics"]["recovery_steps"] == 4
    assert store.get_job(job["id"]).curves.get("train_loss"), "recovery reports its curve"
    job_id = submit("prune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                    sets=[*FAST, "recovery_steps=50"])
    store.claim(None, job_id=job_id)
    store.request_cancel(job_id)
    assert run_claimed(job_id) == "cancelled"


def test_config_names_and_cli_values() -> None:
    assert PruneConfig.from_sets(["kind=2:4"]).kind == "2:4", "YAML reads 2:4 as 124"
    assert PruneConfig.from_sets(["heads=1:3"]).heads == "1:3"
    assert parse_heads(PruneConfig.from_sets(["heads=0:3,2:7 2:8"]).heads) == {0: [3],
                                                                             2: [7, 8]}
    assert PruneConfig.from_sets(["kind=layers", "layers=4,5"]).layers == [4, 5]
    for sets, words in [(["heads=3"], "LAYER:HEAD"), (["amount=0"], "removes nothing"),
                        (["kind=layers", "heads=0:1"], "kind=heads"),
                        (["score_only=true", "kind=layers"], "kind=heads"),
                        (["kind=8:4"], "not one of")]:
        with pytest.raises(ConfigError, match=words):
            PruneConfig.from_sets(sets)
    names = {f["name"] for f in PruneConfig.fields_info()}
    assert {"kind", "amount", "layers", "importance", "recovery_steps"} <= names


def test_two_four_masks_keep_two_of_every_four(tiny_model_dir) -> None:
    model = tiny(tiny_model_dir)
    masks = P.two_four_masks(model)
    assert len(masks) == len(P.prunable_linears(model))
    for mask in masks.values():
        assert (mask.reshape(mask.shape[0], -1, 4).sum(-1) == 2).all()
    P.apply_masks(model, masks)
    assert P.sparsity(model)["encoder_linear"] == pytest.approx(0.5)


def test_two_four_is_refused_on_the_cpu(tiny_model_dir, tiny_csv) -> None:
    with pytest.raises(ConfigError, match="needs an NVIDIA GPU"):
        submit("prune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
               sets=["kind=2:4"], device="cpu (2 threads)")
    assert "sm75" in semi_structured_problem("cuda:Tesla T4 (sm75)")
    assert semi_structured_problem("cuda:NVIDIA H100 (sm90)") is None
    if not torch.cuda.is_available():
        job = run(submit("prune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                         sets=["kind=2:4"]))
        assert job["status"] == "failed" and "needs an NVIDIA GPU" in job["error"]


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="2:4 semi-structured sparsity needs a CUDA GPU (sm80+); none here")
def test_two_four_on_the_gpu(tiny_model_dir, tiny_csv) -> None:
    job = prune(tiny_model_dir, tiny_csv, "kind=2:4", "recovery_steps=2")
    m = job["metrics"]
    assert m["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert m["semi_structured_speedup_vs_dense_fp16"]


def _importance_by_hand(model, tok, texts, labels) -> list[list[float]]:
    """Michel et al. eq. 2 one example at a time: mean over x of |dL(x)/dgate_h|, then each
    layer's scores divided by their L2 norm."""
    h = model.config.num_attention_heads
    layers = P.encoder_layers(model)
    total = [torch.zeros(h) for _ in layers]
    for text, y in zip(texts, labels):
        gates = [torch.ones(h, requires_grad=True) for _ in layers]

        def gate(i, gates=gates):
            def hook(module, args, out):
                b, t, _ = out[0].shape
                return ((out[0].view(b, t, h, -1) * gates[i].view(1, 1, h, 1)).view(b, t, -1),
                        *out[1:])
            return hook

        handles = [layer.attention.self.register_forward_hook(gate(i))
                   for i, layer in enumerate(layers)]
        batch = tok([text], truncation=True, max_length=32, return_tensors="pt")
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, torch.tensor([y]))
        for i, g in enumerate(torch.autograd.grad(loss, gates)):
            total[i] += g.abs()
        for handle in handles:
            handle.remove()
    return [(t / len(texts) / (t / len(texts)).norm()).tolist() for t in total]


def test_gradient_importance_is_per_example_and_ignores_batch_size(tiny_model_dir,
                                                                   tiny_csv) -> None:
    from engine.toolkit.data import load_dataset

    data = load_dataset(f"csv:{tiny_csv}")
    model = tiny(tiny_model_dir)
    tok = tiny_model_tokenizer(tiny_model_dir)
    texts, labels = data.train.texts[:16], data.train.labels[:16]
    by_hand = _importance_by_hand(model, tok, texts, labels)
    one = HI.head_importance(model, tok, texts, labels, "gradient", max_length=32, batch_size=1)
    eight = HI.head_importance(model, tok, texts, labels, "gradient", max_length=32,
                               batch_size=8)
    for row_hand, row_one, row_eight in zip(by_hand, one, eight):
        assert row_one == pytest.approx(row_hand, abs=1e-5)
        assert row_eight == pytest.approx(row_one, abs=1e-5)


def test_explain_slow_estimates_from_the_model(tiny_model_dir) -> None:
    from engine.methods.prune import explain_slow

    model = tiny(tiny_model_dir)
    share = P.ffn_share(model.config, 32)
    assert 0 < share < 1
    why = explain_slow(PruneConfig(max_length=32), "cpu (2 threads)",
                       {"estimated_compute_ratio": 1.234, "ffn_share_of_compute": share})
    assert f"{share:.0%}" in why and "1.23x" in why and "ms" not in why
