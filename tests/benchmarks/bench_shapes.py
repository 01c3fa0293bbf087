"""Benchmark: how fast can a student of the teacher's width family be, int8, against the fp32
teacher? Shapes the lab's methods make (distill / drop layers: depth; prune kind=heads: heads;
prune kind=ffn: FFN width), each int8-dynamic, timed compiled and interleaved with the compiled
fp32 teacher in one `measure` call, at length 64. Random weights of each shape (latency does not
depend on the values). Prints each p50 and the paired speedup with its 95 % interval.

    LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_shapes [--batches 1 32]

Issue 17's question: which shapes can reach 8x at batch 32 at all? (Accuracy is a separate
question: bench_search and the chain jobs measure it.) Not a test: nothing is asserted."""
from __future__ import annotations

import argparse
import copy

import torch
from transformers import AutoTokenizer

from engine.methods import quantize as Q
from engine.methods.prune.neurons import remove_neurons
from engine.methods.prune.surgery import remove_heads
from engine.toolkit.checkpoints import load_classifier, resolve
from engine.toolkit.paired import speedup_cis, speedups
from engine.toolkit.pooling import use_mean_pooling
from engine.toolkit.timing import Timed, measure, prepare
from storage import settings

# name: (layers kept, FFN neurons per layer kept, heads removed per layer); MiniLM-L6-H384:
# 6 layers, 12 heads of 32, FFN 1536
SHAPES = {"6 layers": (6, 1536, 0), "3 layers": (3, 1536, 0), "2 layers": (2, 1536, 0),
          "4 layers, FFN 768": (4, 768, 0), "3 layers, FFN 768": (3, 768, 0),
          "3 layers, FFN 512": (3, 512, 0), "3 layers, FFN 768, 6 heads": (3, 768, 6),
          "4 layers, FFN 768, 6 heads": (4, 768, 6)}


def shape(base, layers: int, ffn: int, heads_removed: int):
    """A copy of `base` cut to the shape (first layers, first neurons, first heads)."""
    m = copy.deepcopy(base)
    m.base_model.encoder.layer = torch.nn.ModuleList(list(m.base_model.encoder.layer)[:layers])
    m.config.num_hidden_layers = layers
    if ffn < m.config.intermediate_size:
        remove_neurons(m, [list(range(ffn))] * layers)
    if heads_removed:
        remove_heads(m, {i: list(range(heads_removed)) for i in range(layers)})
    return m.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[32])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(settings.threads())
    ref = resolve("minilm-l6")
    tok = AutoTokenizer.from_pretrained(ref.path)
    texts = ["a quietly moving film about grief and the people who carry it, told with care"]
    base = load_classifier(ref, label_names=["neg", "pos"], require_head=False).eval()
    use_mean_pooling(base)  # as the lab's teacher
    models = {"teacher fp32": base}
    for name, s in SHAPES.items():
        q = shape(base, *s)
        Q.quantize_model(q, Q.QuantizeConfig(scheme="int8-dynamic"))
        models[f"{name}, int8"] = q
    timed = {n: Timed(prepare(m, "compiled", "cpu"), "cpu", "compiled", n)
             for n, m in models.items()}
    res = measure(timed, tok, texts * 64, args.batches, 64, runs=args.runs)
    print(f"compiled, length 64, {settings.threads()} threads, {args.runs} paired rounds")
    for n in models:
        line = "  ".join(f"b{r['batch_size']} {r['p50_ms']:.1f} ms" for r in res[n])
        if n != "teacher fp32":
            x, ci = speedups(res[n], res["teacher fp32"]), speedup_cis(res[n],
                                                                        res["teacher fp32"])
            line += "  " + "  ".join(f"b{b}: {v:.2f}x [{ci[b][0]:.2f}-{ci[b][1]:.2f}]"
                                     for b, v in x.items())
        print(f"{n:32s} {line}")


if __name__ == "__main__":
    main()
