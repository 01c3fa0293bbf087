"""engine.attention on a tiny random BERT, and the Attention page under AppTest."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine import attention as A
from engine.attention import ablation, compare
from engine.toolkit.checkpoints import ModelRef
from engine.toolkit.config import LabError
from storage import jobs as store
from tests.conftest import ROOT

SENTENCE = "a wonderful, moving film"
HOSTILE = "great </script><script>alert(1)</script><img src=x onerror=alert(2)> film"


@pytest.fixture(autouse=True)
def fresh_cache():
    """The model cache is per process; every test starts from an empty one."""
    A.clear_cache()
    yield
    A.clear_cache()


def load_tiny(path: Path, eager: bool = True):
    from engine.toolkit.checkpoints import load_classifier, load_tokenizer

    ref = ModelRef("tiny", str(path), "local")
    return load_classifier(ref, eager_attention=eager), load_tokenizer(ref)


def prune(model, remove: dict[int, list[int]], drop: list[int] = ()):
    """A copy with heads removed (layer -> original heads), then layers dropped, by the
    prune method's own surgery; returns (model, kept layer numbers)."""
    from engine.methods.prune import surgery as P

    model = copy.deepcopy(model)
    P.remove_heads(model, remove)
    kept = P.drop_layers(model, list(drop)) if drop else list(range(model.config.num_hidden_layers))
    return model.eval(), kept


def seed_model(name: str, path: Path, dataset: str | None = None, job_id: int | None = None,
               alias: str | None = None) -> None:
    store.register_model(name, str(path), "job", job_id=job_id, alias=alias, method="finetune",
                         info={"dataset": dataset} if dataset else {})


# --------------------------------------------------------------------------- extraction


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


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        self.tags.append((tag, dict(attrs)))


def parsed(doc: str) -> list[tuple[str, dict]]:
    p = Tags()
    p.feed(doc)
    return p.tags


def inner(doc: str) -> str:
    """The bertviz document inside the iframe wrapper, after checking the wrapper: one frame
    sandboxed with allow-scripts only (no allow-same-origin), one fixed script, nothing else."""
    tags = parsed(doc)
    frames = [a for t, a in tags if t == "iframe"]
    assert len(frames) == 1 and frames[0]["sandbox"] == "allow-scripts", frames
    assert [t for t, _ in tags].count("script") == 1
    assert not [t for t, _ in tags if t in ("img", "link", "object", "embed")]
    return frames[0]["srcdoc"]


def assert_offline(doc: str) -> None:
    """Every script inline; nothing that a browser would fetch from elsewhere."""
    tags = parsed(doc)
    assert not [a for t, a in tags if t == "script" and "src" in a], "a script loads a file"
    assert not [a for t, a in tags if t in ("link", "img", "iframe")]
    assert "cdnjs" not in doc and not re.search(r"require\.config\(\{\s*paths", doc)
    assert "d3js.org v5.7.0" in doc and "jQuery v3" in doc, "d3 and jQuery are inlined"


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


def synthetic(layers: int, heads: int, n: int, seed: int = 0) -> A.SentenceAttention:
    """Random row-stochastic maps of a model with `layers` x `heads` on `n` tokens."""
    rng = np.random.default_rng(seed)
    maps = rng.random((layers, heads, n, n), dtype=np.float32)
    maps /= maps.sum(-1, keepdims=True)
    tokens = ["[CLS]"] + [f"w{i}" for i in range(n - 2)] + ["[SEP]"]
    return A.SentenceAttention("synthetic", tokens, maps, np.ones((layers, heads), bool),
                               np.array([0.4, 0.6]), ["neg", "pos"], n, n)


def test_a_512_token_view_is_a_bounded_window() -> None:
    """13.1: what bertviz is handed stays small whatever the limit, and says what is left out."""
    att = synthetic(6, 12, 512)
    assert A.view_window(att) == (0, A.VIEW_TOKENS)
    assert A.view_window(att, 10_000) == (512 - A.VIEW_TOKENS, 512), "clamped to the sentence"
    for view in ("head", "model"):
        wrapper = A.views_html(att, view, start=100)
        assert len(wrapper) < 3_000_000, f"{view} view: {len(wrapper) / 1e6:.1f} MB"
        doc = inner(wrapper)
        assert "Tokens 100-163 of 512 shown" in doc and '"w99"' in doc and '"w98"' not in doc
    deeper = synthetic(12, 12, 300)
    lo, hi = A.view_window(deeper)
    assert hi - lo < A.VIEW_TOKENS and 12 * 12 * (hi - lo) ** 2 <= A.VIEW_WEIGHTS
    assert len(A.views_html(deeper, "model")) < 3_000_000


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


def page(state: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.switch_page("pages/attention.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def iframes(at: AppTest) -> list[str]:
    return [el.proto.srcdoc for el in at.get("iframe")]


def test_page_renders_views_offline(tiny_model_dir, tiny_csv) -> None:
    seed_model("job:1", tiny_model_dir, f"csv:{tiny_csv}", alias="default")
    at = page()
    docs = iframes(at)
    assert len(docs) == 1 and "bertviz-" in docs[0] and "requirejs(" in docs[0]
    assert_offline(docs[0])
    assert any(m.label == "Prediction" for m in at.metric)
    assert at.get("plotly_chart"), "the per-head pattern map is drawn"
    assert any("No head importance yet" in i.value for i in at.info)
    at.button(key="attn_rescore").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(m.label.startswith("Accuracy, 0 heads off") for m in at.metric)

    at.segmented_control(key="attn_view").set_value("model").run()
    assert "attn_background_" in iframes(at)[0], "the model view's script is in the document"

    at.text_area(key="attn_sentence").set_value("   ").run()
    assert not at.exception and not at.error
    assert not iframes(at) and any("Type a sentence" in i.value for i in at.info)

    at.text_area(key="attn_sentence").set_value(HOSTILE).run()
    assert not at.exception and not at.error
    assert [t for t, _ in parsed(iframes(at)[0])].count("script") == 5

    at.number_input(key="attn_max_tokens").set_value(8).run()
    assert any("cut off" in w.value for w in at.warning)


def test_page_compares_a_model_with_its_parent_from_the_results_handoff(tiny_model_dir,
                                                                        tiny_csv) -> None:
    teacher = store.enqueue("finetune", {"data": {}}, "minilm-l6", f"csv:{tiny_csv}")
    seed_model(f"job:{teacher}", tiny_model_dir, f"csv:{tiny_csv}", job_id=teacher,
               alias="default")
    child = store.enqueue("evaluate", {"data": {}}, "default", f"csv:{tiny_csv}")
    seed_model(f"job:{child}", tiny_model_dir, f"csv:{tiny_csv}", job_id=child)
    at = page({"attention_sentence": "i hated the ending",
               "attention_models": [f"job:{child}"]})
    assert at.text_area(key="attn_sentence").value == "i hated the ending"
    assert at.selectbox(key="attn_model_a").value == f"job:{child}"
    assert at.selectbox(key="attn_model_b").value == f"job:{teacher}", "the parent by default"
    assert len(iframes(at)) == 2
    assert len(at.get("plotly_chart")) == 2, "the difference map and the head patterns"
    assert not at.error
