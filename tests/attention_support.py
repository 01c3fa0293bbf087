"""Helpers shared by the Attention tests (tests/test_attention.py, tests/test_attention_page.py):
the tiny model's sentence, hostile input, loading and pruning a tiny model, seeding model rows,
and the checks that a view is an offline, sandboxed document."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from engine import attention as A
from engine.toolkit.checkpoints import ModelRef
from storage import jobs as store

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


def synthetic(layers: int, heads: int, n: int, seed: int = 0) -> A.SentenceAttention:
    """Random row-stochastic maps of a model with `layers` x `heads` on `n` tokens."""
    rng = np.random.default_rng(seed)
    maps = rng.random((layers, heads, n, n), dtype=np.float32)
    maps /= maps.sum(-1, keepdims=True)
    tokens = ["[CLS]"] + [f"w{i}" for i in range(n - 2)] + ["[SEP]"]
    return A.SentenceAttention("synthetic", tokens, maps, np.ones((layers, heads), bool),
                               np.array([0.4, 0.6]), ["neg", "pos"], n, n)
