"""Benchmark: the Attention page's model work on the embedded teacher, on the CPU.

    LAB_HOME=/work/bench-home LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_attention

Targets (issue 6): views for a new sentence ready in under 2 s once the model is loaded; an
ablation re-score of 200 test examples in under 5 s. Issue 13.1: the longest allowed setting
(512 tokens of a long BBC News text) computed in under 5 s, with the documents sent to the
browser a few MB (a bounded token window), printed by `long_text()`.
"Views" is everything the page computes
for one model and a new sentence: the forward pass with attention maps, the head and model
view documents, and the per-head summary. Needs the teacher (model `default`) in LAB_HOME.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from engine import attention as A
from engine.toolkit.data import load_dataset
from storage import settings

MODEL = "default"
SENTENCES = 10  # new sentences timed, from the end of the test split (the ablation uses the start)
EXAMPLES = 200


def main() -> None:
    start = time.perf_counter()
    loaded = A.load(MODEL)
    load_s = time.perf_counter() - start
    dataset = loaded.dataset or "rotten-tomatoes"
    texts = load_dataset(dataset).test.texts[-SENTENCES:]
    print(f"LAB_HOME={settings.lab_home()} threads={settings.threads()} device={loaded.device} "
          f"model={MODEL} ({loaded.layers} layers x {loaded.heads} heads) dataset={dataset}")
    print(f"model load (once, then cached): {load_s:.2f} s")

    A.views_html(A.sentence_attention(MODEL, "warm-up sentence"), "head")  # imports bertviz
    times, sizes, tokens = [], [], []
    for text in texts:
        t0 = time.perf_counter()
        att = A.sentence_attention(MODEL, text, max_tokens=128)
        docs = [A.views_html(att, "head"), A.views_html(att, "model")]
        A.head_summary(att)
        times.append(time.perf_counter() - t0)
        sizes.append(sum(len(d) for d in docs) / 1e3)
        tokens.append(len(att.tokens))
    print(f"views for a new sentence ({SENTENCES} sentences, {min(tokens)}-{max(tokens)} tokens, "
          f"head + model view + head summary): median {statistics.median(times):.3f} s, "
          f"max {max(times):.3f} s; documents {statistics.median(sizes):.0f} kB (median)")

    sentence = texts[0]
    heads_off = [(layer, head) for layer in range(loaded.layers) for head in (0, 1)]
    t0 = time.perf_counter()
    first = A.ablate(MODEL, [], EXAMPLES, dataset, sentence)
    first_s = time.perf_counter() - t0
    print(f"first what-if (baseline for {EXAMPLES} examples computed once, then cached): "
          f"{first_s:.2f} s; accuracy with every head {first.baseline_accuracy:.3f}")
    walls, rescoring = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        res = A.ablate(MODEL, heads_off, EXAMPLES, dataset, sentence)
        walls.append(time.perf_counter() - t0)
        rescoring.append(res.seconds)
    print(f"ablation re-score of {res.examples} test examples with {res.heads_off} heads off "
          f"(batch 64, max length {loaded.eval_length}): re-score median "
          f"{statistics.median(rescoring):.2f} s, whole call median {statistics.median(walls):.2f}"
          f" s (3 runs); accuracy {res.baseline_accuracy:.3f} -> {res.accuracy:.3f}, "
          f"{res.flipped} predictions changed; sentence {res.sentence_before} -> "
          f"{res.sentence_after}")
    print(f"figures vs targets: views {statistics.median(times):.2f} s (< 2 s), re-score "
          f"{statistics.median(rescoring):.2f} s (< 5 s); nan check "
          f"{bool(np.isnan(att.maps[att.kept]).any())}")


def long_text() -> None:
    """The page's whole model path at 512 tokens: maps, both view documents (one window),
    the divergence against itself and the head summary; on BBC News when it loads."""
    try:
        texts = load_dataset("bbc-news").test.texts
        text = max(texts[:200], key=len)
    except Exception:  # noqa: BLE001 (no BBC News here: a long made-up article)
        text = " ".join(["the minister said the plan would cut waiting times"] * 120)
    for model in (MODEL, A.BASE_ENCODER):
        t0 = time.perf_counter()
        att = A.sentence_attention(model, text, max_tokens=512)
        docs = [A.views_html(att, "head"), A.views_html(att, "model")]
        A.divergence(att, att)
        A.head_summary(att)
        wall = time.perf_counter() - t0
        lo, hi = A.view_window(att)
        print(f"{model}: {len(att.tokens)} tokens, window {lo}-{hi - 1}: whole page path "
              f"{wall:.2f} s (< 5 s); documents {[round(len(d) / 1e6, 2) for d in docs]} MB; "
              f"maps {att.maps.nbytes / 1e6:.0f} MB in the server")


if __name__ == "__main__":
    main()
    long_text()
