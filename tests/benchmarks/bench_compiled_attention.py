"""Benchmark: which attention to compile on the CPU. The embedded encoder, mean pooled like the
teacher (untrained head: latency does not depend on the weights' values), fp32 and
int8-dynamic, each compiled with SDPA (one opaque flash-attention call) and with transformers'
"eager" matmul attention (what `compile_for_timing` compiles on the CPU), and fp32 in eager
mode both ways; all six timed interleaved in one `measure` call at batch 1 and 32, length 64.
Prints each p50 and the paired ratios with their 95 % intervals (paired bootstrap over rounds).

    LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_compiled_attention [--runs 30]

Not a test: nothing is asserted."""
import argparse
import copy

import torch
from transformers import AutoTokenizer

from engine.methods import quantize as Q
from engine.toolkit.checkpoints import load_classifier, resolve
from engine.toolkit.paired import speedup_cis, speedups
from engine.toolkit.pooling import use_mean_pooling
from engine.toolkit.timing import Timed, compile_for_timing, matmul_attention, measure
from storage import settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="timed rounds per batch size")
    args = ap.parse_args()
    torch.set_num_threads(settings.threads())
    ref = resolve("minilm-l6")
    tok = AutoTokenizer.from_pretrained(ref.path)
    texts = ["a quietly moving film about grief and the people who carry it"] * 64
    fp32 = use_mean_pooling(load_classifier(ref, label_names=["neg", "pos"],
                                            require_head=False).eval())
    int8 = copy.deepcopy(fp32)
    Q.quantize_model(int8, Q.QuantizeConfig(scheme="int8-dynamic"))
    timed = {}
    for name, model in (("fp32", fp32), ("int8", int8)):
        for attn, matmul in (("sdpa", False), ("matmul", True)):
            timed[f"{name} compiled {attn}"] = Timed(
                compile_for_timing(model, "cpu", matmul=matmul), "cpu", "compiled")
    timed["fp32 eager sdpa"] = Timed(fp32, "cpu", "eager")
    timed["fp32 eager matmul"] = Timed(matmul_attention(fp32), "cpu", "eager")
    res = measure(timed, tok, texts, [1, 32], 64, runs=args.runs)
    for n in timed:
        print(f"{n:22s}", "  ".join(f"b{r['batch_size']} {r['p50_ms']:7.1f} ms" for r in res[n]))

    def ratio(label: str, fast: str, slow: str) -> None:
        point, ci = speedups(res[fast], res[slow]), speedup_cis(res[fast], res[slow])
        print(f"{label:44s}", "  ".join(f"b{b} {point[b]:.3f}x [{ci[b][0]:.3f}-{ci[b][1]:.3f}]"
                                        for b in point))

    print(f"paired speedups ({args.runs}+ rounds, 95 % interval), batch 1 / 32:")
    ratio("fp32 compiled: matmul over sdpa", "fp32 compiled matmul", "fp32 compiled sdpa")
    ratio("int8 compiled: matmul over sdpa", "int8 compiled matmul", "int8 compiled sdpa")
    ratio("fp32 eager: matmul over sdpa", "fp32 eager matmul", "fp32 eager sdpa")
    ratio("int8/fp32 compiled, sdpa (before)", "int8 compiled sdpa", "fp32 compiled sdpa")
    ratio("int8/fp32 compiled, matmul (now)", "int8 compiled matmul", "fp32 compiled matmul")


if __name__ == "__main__":
    main()
