"""engine.attention on a tiny random BERT: maps, views, ablation (the page itself:
tests/test_attention_page.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import attention as A
from engine.attention import ablation, compare
from engine.toolkit.checkpoints import ModelRef
from engine.toolkit.config import LabError
from storage import jobs as store
from tests.attention_support import (
    HOSTILE,
    SENTENCE,
    assert_offline,
    fresh_cache,  # noqa: F401 (an autouse fixture)
    inner,
    load_tiny,
    parsed,
    prune,
    seed_model,
    synthetic,
)


def test_maps_are_layers_by_heads_by_tokens_and_rows_sum_to_one(tiny_model_dir) -> None:
    model, tok = load_tiny(tiny_model_dir)
    att = A.extract(A.prepare(model, tok, "tiny"), SENTENCE)
    n = len(att.tokens)
    assert att.tokens[0] == "[CLS]" and att.tokens[-1] == "[SEP]"
    assert att.maps.shape == (2, 4, n, n)
    assert att.kept.all() and att.removed() == {}
    np.testing.assert_allclose(att.maps.sum(-1), 1.0, atol=1e-5)
    assert att.label in ("negative", "positive") and 0.5 <= att.confidence <= 1.0
    assert att.truncated == 0


def test_pruned_model_gives_maps_for_the_heads_it_kept(tiny_model_dir) -> None:
    model, tok = load_tiny(tiny_model_dir)
    full = A.extract(A.prepare(model, tok, "full"), SENTENCE)
    pruned, _ = prune(model, {0: [1, 3], 1: [0]})
    att = A.extract(A.prepare(pruned, tok, "pruned"), SENTENCE)
    assert att.maps.shape == full.maps.shape, "kept heads go back to their original places"
    assert att.removed() == {0: [1, 3], 1: [0]}
    assert np.isnan(att.maps[0, [1, 3]]).all() and np.isnan(att.maps[1, 0]).all()
    np.testing.assert_allclose(att.maps[att.kept].sum(-1), 1.0, atol=1e-5)
    # Layer 0 sees the same input, so its kept heads attend exactly as before.
    np.testing.assert_allclose(att.maps[0, [0, 2]], full.maps[0, [0, 2]], atol=1e-6)
    div = A.divergence(full, att)
    assert np.isnan(div[0, 1]) and np.isnan(div[1, 0])
    assert np.allclose(div[0, [0, 2]], 0.0, atol=1e-6)


def test_dropped_layers_keep_their_original_numbers(tiny_model_dir) -> None:
    model, tok = load_tiny(tiny_model_dir)
    pruned, kept = prune(model, {1: [2]}, drop=[0])
    loaded = A.prepare(pruned, tok, "pruned", meta={"kept_layers": kept})
    att = A.extract(loaded, SENTENCE)
    assert att.maps.shape[:2] == (2, 4)
    assert att.removed() == {0: [0, 1, 2, 3], 1: [2]}
    np.testing.assert_allclose(att.maps[1, [0, 1, 3]].sum(-1), 1.0, atol=1e-5)
    html = A.views_html(att, "head")
    assert "whole layer" in html and "removed layers are left out" in html


def test_a_dropped_top_layer_shows_as_removed_after_saving(tiny_model_dir, tmp_path) -> None:
    """The layer numbering travels in config.json: no job row or note needed."""
    from engine.methods.prune import surgery as P

    model, tok = load_tiny(tiny_model_dir)
    pruned, _ = prune(model, {}, drop=[1])
    pruned.save_pretrained(tmp_path)
    loaded = A.prepare(P.load(tmp_path, {}, eager_attention=True), tok, "pruned")
    att = A.extract(loaded, SENTENCE)
    assert att.maps.shape[:2] == (2, 4)
    assert att.removed() == {1: [0, 1, 2, 3]}


def test_difference_of_a_model_with_itself_is_zero(tiny_model_dir) -> None:
    model, tok = load_tiny(tiny_model_dir)
    loaded = A.prepare(model, tok, "tiny")
    a, b = A.extract(loaded, SENTENCE), A.extract(loaded, SENTENCE)
    assert (A.divergence(a, b) == 0).all()
    other = A.extract(loaded, "the worst film this year")
    with pytest.raises(LabError, match="different tokens"):
        A.divergence(a, other)


def test_js_divergence_is_one_for_disjoint_rows() -> None:
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    q = np.array([[0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(compare._js_rows(p, q), [1.0, 0.0])


def test_head_summary_names_the_pattern_and_entropy() -> None:
    n = 5
    maps = np.zeros((1, 4, n, n), dtype=np.float32)
    maps[0, 0, :, 0] = 1.0  # every token looks at [CLS]
    maps[0, 1, 0, 0] = 1.0
    maps[0, 1, np.arange(1, n), np.arange(n - 1)] = 1.0  # the previous token
    maps[0, 2][np.arange(n), np.arange(n)] = 1.0  # itself
    maps[0, 3] = 1.0 / n  # everything evenly
    att = A.SentenceAttention("synthetic", ["[CLS]", "a", "b", "c", "[SEP]"], maps,
                              np.ones((1, 4), bool), np.array([0.3, 0.7]), ["neg", "pos"], n, n)
    rows = {r["head"]: r for r in A.head_summary(att)}
    assert [rows[h]["pattern"] for h in range(4)] == ["[CLS]", "previous", "self", "broad"]
    assert rows[0]["entropy_bits"] == 0.0 and rows[3]["entropy_norm"] == pytest.approx(1.0)


def test_truncation_empty_text_and_models_without_maps(tiny_model_dir) -> None:
    model, tok = load_tiny(tiny_model_dir)
    loaded = A.prepare(model, tok, "tiny")
    long = A.extract(loaded, " ".join(["wonderful"] * 300), max_tokens=16)
    assert len(long.tokens) == 16 and long.truncated == 302 - 16
    capped = A.extract(loaded, " ".join(["wonderful"] * 300), max_tokens=10_000)
    assert len(capped.tokens) == loaded.max_tokens == 128, "the model's maximum applies"
    with pytest.raises(LabError, match="type a sentence"):
        A.extract(loaded, "   ")
    sdpa, _ = load_tiny(tiny_model_dir, eager=False)
    with pytest.raises(LabError, match="cannot be extracted"):
        A.extract(A.prepare(sdpa, tok, "fused"), SENTENCE)


# --------------------------------------------------------------------------- views




def test_views_are_offline_documents_with_user_text_as_data(tiny_model_dir) -> None:
    model, tok = load_tiny(tiny_model_dir)
    pruned, _ = prune(model, {0: [1]})
    att = A.extract(A.prepare(pruned, tok, "pruned"), HOSTILE)
    for view in ("head", "model"):
        wrapper = A.views_html(att, view, title=HOSTILE)
        assert "<script>alert" not in wrapper and "allow-same-origin" not in wrapper
        doc = inner(wrapper)
        assert_offline(doc)
        assert "requirejs(['jquery', 'd3']" in doc and "bertviz-" in doc
        tags = [t for t, _ in parsed(doc)]
        assert tags.count("script") == (5 if view == "head" else 6), "no script from the text"
        assert "img" not in tags
        assert "Removed by compression" in doc and "layer 0: heads 1" in doc
        assert "Tokens " not in doc, "a short sentence is shown whole"
    assert "[[0, 1]]" in inner(A.views_html(att, "model")), "the model view greys out head 0:1"



def test_a_512_token_view_is_a_bounded_window() -> None:
    """13.1: what bertviz is handed stays small whatever the limit, and says what is left out."""
    att = synthetic(6, 12, 512)
    assert A.view_window(att) == (0, A.VIEW_TOKENS)
    assert A.view_window(att, 10_000) == (512 - A.VIEW_TOKENS, 512), "clamped to the sentence"
    wrapper = A.views_html(att, "head", start=100)
    assert len(wrapper) < 3_000_000, f"head view: {len(wrapper) / 1e6:.1f} MB"
    doc = inner(wrapper)
    assert "Tokens 100-163 of 512 shown" in doc and '"w99"' in doc and '"w98"' not in doc
    deeper = synthetic(12, 12, 300)
    lo, hi = A.view_window(deeper)
    assert hi - lo < A.VIEW_TOKENS and 12 * 12 * (hi - lo) ** 2 <= A.VIEW_WEIGHTS
    assert len(A.views_html(deeper, "model")) < 3_000_000


def test_the_model_view_draws_a_bounded_number_of_lines() -> None:
    """13.1: the model view draws a line per token pair in every head at once (6 x 12 heads on
    64 tokens: 295 k SVG lines, seconds of a stalled browser); its window is shorter."""
    att = synthetic(6, 12, 512)
    lo, hi = A.view_window(att, 100, "model")
    assert (lo, hi) == (100, 132)
    assert 6 * 12 * (hi - lo) ** 2 <= A.MODEL_VIEW_LINES <= 80_000
    doc = inner(A.views_html(att, "model", start=100))
    assert "Tokens 100-131 of 512 shown" in doc and '"w130"' in doc and '"w131"' not in doc
    for layers, heads in [(12, 12), (24, 16), (2, 4)]:
        lo, hi = A.view_window(synthetic(layers, heads, 200), 0, "model")
        assert layers * heads * (hi - lo) ** 2 <= max(A.MODEL_VIEW_LINES, layers * heads * 64)
    assert A.view_window(synthetic(2, 4, 200), 0, "model") == (0, A.VIEW_TOKENS), \
        "a small model keeps the full window"


# --------------------------------------------------------------------------- ablation


def test_ablating_no_heads_reproduces_the_accuracy(tiny_model_dir, tiny_csv) -> None:
    from engine.toolkit.checkpoints import load_classifier, load_tokenizer
    from engine.toolkit.data import load_dataset
    from engine.toolkit.evaluation import classification_metrics, predict

    seed_model("job:1", tiny_model_dir, f"csv:{tiny_csv}", alias="default")
    data = load_dataset(f"csv:{tiny_csv}")
    ref = ModelRef("tiny", str(tiny_model_dir), "local")
    preds, _ = predict(load_classifier(ref), load_tokenizer(ref), data.test.texts[:12], 64)
    expected = classification_metrics(data.test.labels[:12], preds, 2)["accuracy"]

    res = A.ablate("job:1", [], examples=12, sentence=SENTENCE)
    assert res.dataset == f"csv:{tiny_csv}", "the model's own dataset by default"
    assert res.examples == 12 and res.heads_off == 0 and res.flipped == 0
    assert res.accuracy == res.baseline_accuracy == expected
    assert res.sentence_before == res.sentence_after
    assert A.load("default") is A.load("job:1"), "one cached model per path"


def test_switching_a_head_off_equals_removing_it(tiny_model_dir, tiny_csv) -> None:
    import torch

    seed_model("job:1", tiny_model_dir, f"csv:{tiny_csv}")
    loaded = A.load("job:1")
    pruned, _ = prune(loaded.model, {0: [1, 2]})
    enc = loaded.tokenizer([SENTENCE], return_tensors="pt")
    with torch.inference_mode():
        want = pruned(**enc).logits
        with ablation._heads_switched_off(loaded, [(0, 1), (0, 2)]):
            got = loaded.model(**enc).logits
        again = loaded.model(**enc).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(again, want), "the hooks are gone after the what-if"
    res = A.ablate("job:1", [(0, 1), (0, 2), (9, 9)], examples=12)
    assert res.heads_off == 2, "heads that do not exist are ignored"


# --------------------------------------------------------------------------- stored facts


def test_head_importance_comes_from_a_prune_job(tiny_model_dir) -> None:
    assert A.head_importance(["job:1"]) is None
    job = store.enqueue("prune", {"data": {"kind": "heads"}}, "default", "rotten-tomatoes")
    store.claim(1, job_id=job)
    store.save_results(job, {"model": f"job:{job}", "dataset": "rotten-tomatoes",
                             "head_importance": [[0.5, None], [1.0, 0.1]]}, [], [])
    store.finish(job, output_model=f"job:{job}")
    seed_model(f"job:{job}", tiny_model_dir, job_id=job)
    found = A.head_importance([f"job:{job}"])
    assert found is not None and found[0] == job and found[1] == "default"
    assert found[2].shape == (2, 2) and np.isnan(found[2][0, 1])
    assert A.parent_of(f"job:{job}") == "default"


# --------------------------------------------------------------------------- the page
