"""Benchmark: does the teacher's mean pooling change int8's compiled speedup? The embedded
encoder (minilm-l6, untrained head: latency does not depend on the weights' values) with BERT's
pooler and mean pooled, each fp32 and int8-dynamic, all four compiled and timed interleaved in
one `measure` call at batch 1 and 32, length 64. Prints each p50 and the paired ratios.

    LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_int8_pooling

Issue 17's question: int8 was 3.56x at batch 32 on the CLS teacher (README, 2026-11-24) and
2.3-2.4x on the mean-pooled one (2026-12-07). Its 12-07 figures were taken with SDPA compiled;
since then `compile_for_timing` compiles matmul attention on the CPU (bench_compiled_attention
measures that change). Not a test: nothing is asserted."""
import copy

import torch
from transformers import AutoTokenizer

from engine.methods import quantize as Q
from engine.toolkit.checkpoints import load_classifier, resolve
from engine.toolkit.paired import speedups
from engine.toolkit.pooling import use_mean_pooling
from engine.toolkit.timing import Timed, measure, prepare
from storage import settings


def main() -> None:
    torch.set_num_threads(settings.threads())
    ref = resolve("minilm-l6")
    tok = AutoTokenizer.from_pretrained(ref.path)
    texts = ["a quietly moving film about grief and the people who carry it"] * 64
    cls = load_classifier(ref, label_names=["neg", "pos"], require_head=False).eval()
    mean = copy.deepcopy(cls)
    use_mean_pooling(mean)
    models = {"cls": cls, "mean": mean}
    for n in list(models):
        q = copy.deepcopy(models[n])
        Q.quantize_model(q, Q.QuantizeConfig(scheme="int8-dynamic"))
        models[n + "-int8"] = q
    timed = {n: Timed(prepare(m, "compiled", "cpu"), "cpu", "compiled", n)
             for n, m in models.items()}
    res = measure(timed, tok, texts, [1, 32], 64, runs=20)
    for n in models:
        print(n, [f"b{r['batch_size']} {r['p50_ms']:.1f} ms" for r in res[n]])
    print("cls int8/fp32", speedups(res["cls-int8"], res["cls"]))
    print("mean int8/fp32", speedups(res["mean-int8"], res["mean"]))
    print("mean/cls fp32", speedups(res["mean"], res["cls"]))


if __name__ == "__main__":
    main()
