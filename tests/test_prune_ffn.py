"""prune kind=ffn on a tiny random BERT (hidden 32, 2 layers, FFN width 64): removal equals
zeroing the neurons, scores are the Taylor term per example, the job saves and reloads."""

from __future__ import annotations

import copy

import pytest
import torch

from engine.methods.prune import neurons as N
from engine.methods.prune import surgery as P
from engine.submit import submit
from engine.toolkit.checkpoints import ModelRef, checkpoint_card, load_classifier, read_meta
from engine.toolkit.config import ConfigError, LabError
from storage import jobs as store
from tests.test_prune import inputs, prune, run, tiny, tiny_model_tokenizer


def zeroed_logits(model, keep: list[list[int]]) -> torch.Tensor:
    """Logits with every neuron outside `keep` multiplied by zero after its GELU."""
    def gate(kept: list[int]):
        mask = torch.zeros(model.config.intermediate_size)
        mask[kept] = 1

        def hook(module, args, out):
            return out * mask
        return hook

    handles = [layer.intermediate.register_forward_hook(gate(k))
               for layer, k in zip(P.encoder_layers(model), keep)]
    with torch.no_grad():
        out = model(**inputs()).logits
    for h in handles:
        h.remove()
    return out


def test_neuron_removal_equals_zeroing_and_shrinks(tiny_model_dir) -> None:
    model = tiny(tiny_model_dir)
    keep = [list(range(0, 64, 2)), list(range(32, 64))]
    reference = zeroed_logits(model, keep)
    pruned = copy.deepcopy(model)
    assert N.remove_neurons(pruned, keep) == 64
    with torch.no_grad():
        torch.testing.assert_close(pruned(**inputs()).logits, reference, atol=1e-5, rtol=1e-4)
    assert pruned.config.intermediate_size == 32
    before = sum(p.numel() for p in model.parameters())
    after = sum(p.numel() for p in pruned.parameters())
    # per neuron: a row of the first matrix (32) and its bias, a column of the second (32)
    assert before - after == 64 * (32 + 1 + 32)
    with pytest.raises(LabError, match="same number of neurons"):
        N.remove_neurons(copy.deepcopy(model), [list(range(10)), list(range(12))])


def test_neurons_to_keep_takes_the_highest_per_layer() -> None:
    scores = [torch.tensor([0.1, 0.9, 0.5, 0.5]), torch.tensor([4.0, 3.0, 2.0, 1.0])]
    # ties (0.5, 0.5) go to the lower index; the result is in the layer's own order
    assert N.neurons_to_keep(scores, 0.5) == [[1, 2], [0, 1]]
    assert N.neurons_to_keep(scores, 0.75) == [[1], [0]]
    assert N.neurons_to_keep(scores, 0.99) == [[1], [0]]  # one neuron always stays
    with pytest.raises(LabError, match="rounds to none"):
        N.neurons_to_keep(scores, 0.1)
    with pytest.raises(LabError, match="widths differ"):
        N.neurons_to_keep([torch.ones(4), torch.ones(3)], 0.5)


def test_gradient_scores_are_the_taylor_term_per_example(tiny_model_dir, tiny_csv) -> None:
    from engine.toolkit.data import load_dataset

    data = load_dataset(f"csv:{tiny_csv}")
    model = tiny(tiny_model_dir)
    tok = tiny_model_tokenizer(tiny_model_dir)
    texts, labels = data.train.texts[:6], data.train.labels[:6]
    # by hand: one example at a time, |sum over tokens of a * dL/da| on each layer's GELU output
    acts: list[torch.Tensor] = []
    handles = [layer.intermediate.register_forward_hook(
        lambda m, a, out: acts.append(out) or out.retain_grad())
        for layer in P.encoder_layers(model)]
    total = [torch.zeros(64), torch.zeros(64)]
    for text, y in zip(texts, labels):
        acts.clear()
        batch = tok([text], truncation=True, max_length=32, return_tensors="pt")
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, torch.tensor([y]))
        loss.backward()
        for i, a in enumerate(acts):
            total[i] += (a * a.grad).sum(dim=(0, 1)).abs().detach()
    for h in handles:
        h.remove()
    model.zero_grad()
    by_hand = [t / len(texts) for t in total]
    for batch_size in (1, 4):
        got = N.neuron_importance(model, tok, texts, labels, "gradient", max_length=32,
                                  batch_size=batch_size)
        for a, b in zip(got, by_hand):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    assert all(p.requires_grad for p in model.parameters())  # flags restored
    mag = N.neuron_importance(model, tok, texts, labels, "magnitude")
    assert [m.shape for m in mag] == [torch.Size([64])] * 2
    r1 = N.neuron_importance(model, tok, texts, labels, "random", seed=3)
    r2 = N.neuron_importance(model, tok, texts, labels, "random", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(r1, r2))


def test_ffn_job_saves_reloads_and_explains(tiny_model_dir, tiny_csv) -> None:
    job = prune(tiny_model_dir, tiny_csv, "kind=ffn", "amount=0.5", "recovery_steps=2")
    m = job["metrics"]
    assert m["ffn_neurons_before"] == 64 and m["ffn_neurons_per_layer"] == 32
    assert "64 of 128 feed-forward neurons" in m["explanation"]
    assert m["estimated_compute_ratio"] > 1 and "recovery_best_step" in m
    path = store.find_model(job["output_model"]).path
    changes = read_meta(path)["changes"]
    assert {"kind": "ffn_narrowed", "from": 64, "to": 32} in changes
    ref = ModelRef(job["output_model"], path, "job", job["id"])
    model = load_classifier(ref)
    assert [layer.intermediate.dense.out_features for layer in P.encoder_layers(model)] == [32, 32]
    assert checkpoint_card(job["output_model"])["params"] == m["params"]
    # heads removed after the neurons (a chain) reload with both changes
    second = run(submit("prune", from_job=job["id"], dataset=f"csv:{tiny_csv}",
                        sets=["max_length=32", "amount=0.5", "importance=magnitude",
                              "recovery_steps=0"]))
    assert second["status"] == "done", second["error"]
    both = load_classifier(ModelRef("b", store.find_model(second["output_model"]).path, "job"))
    assert P.heads_per_layer(both.config) and both.config.intermediate_size == 32


def test_ffn_bad_amounts_are_refused_at_submit(tiny_model_dir, tiny_csv) -> None:
    with pytest.raises(ConfigError, match="rounds to none"):
        submit("prune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
               sets=["kind=ffn", "amount=0.001"])
    with pytest.raises(ConfigError, match="amount=0 removes nothing"):
        submit("prune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
               sets=["kind=ffn", "amount=0"])
