"""Benchmark: int8 against fp32, both compiled, in several "jobs" of one process (what a
worker or a search does), each with a fresh teacher and a fresh int8 copy at batch 1 and 32:
four graphs of BERT's forward per job, past dynamo's recompile limit of 8 by the third job
without `timing.fresh_compiler`. Prints each job's paired ratio and its first-call (compile)
seconds: a first call of milliseconds means the job reused or skipped compiling.

    LAB_HOME=<lab with the teacher> LAB_THREADS=2 \\
        .venv/bin/python -m tests.benchmarks.bench_recompile [JOBS]

Not a test: nothing is asserted."""
import copy
import sys
import time

import torch
from transformers import AutoTokenizer

from engine.methods import quantize as Q
from engine.toolkit.checkpoints import load_classifier, resolve
from engine.toolkit.paired import speedups
from engine.toolkit.timing import Timed, measure, prepare
from storage import settings


def main() -> None:
    torch.set_num_threads(settings.threads())
    ref = resolve("default")
    tok = AutoTokenizer.from_pretrained(ref.path)
    texts = ["a quietly moving film about grief and the people who carry it"] * 64
    for job in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        t0 = time.time()
        fp = load_classifier(ref).eval()
        q = copy.deepcopy(fp)
        Q.quantize_model(q, Q.QuantizeConfig(scheme="int8-dynamic"))
        timed = {n: Timed(prepare(m, "compiled", "cpu"), "cpu", "compiled", n)
                 for n, m in (("fp32", fp), ("int8", q))}
        res = measure(timed, tok, texts, [1, 32], 64, runs=15)
        print(f"job {job}: int8 vs fp32 compiled {speedups(res['int8'], res['fp32'])}, int8 b1 "
              f"{res['int8'][0]['p50_ms']:.2f} ms, first call {timed['int8'].first_call_s}, "
              f"{time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
