"""Benchmark: the budget-first search on the teacher (issue 17), CPU, LAB_THREADS threads.

    LAB_HOME=/work/bench-home LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_search \
        [--max-drop 0.02] [--batch 32] [--minutes 60] [--methods distill,prune-heads,quantize]

Runs `python -m engine search` in this process (its candidates are ordinary jobs in LAB_HOME,
run through the worker's executor step) and prints the winner's paired speedup against the
teacher under one runtime (goal: at least 8x at batch 32), its test accuracy drop (goal: at
most 2 points), the candidates run and the wall time. Needs the teacher (`default`) built.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

from engine import search as S
from engine.reports.search_plan import Constraints
from storage import settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--max-drop", type=float, default=0.02)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--methods", default=None, help="comma-separated; default: all")
    args = ap.parse_args()
    methods = tuple(args.methods.split(",")) if args.methods else S.METHODS
    print(f"LAB_HOME={settings.lab_home()} threads={settings.threads()} model={args.model} "
          f"max_drop={args.max_drop} batch={args.batch} minutes={args.minutes} "
          f"methods={','.join(methods)}")
    start = time.time()
    rec = S.search(args.model, "rotten-tomatoes",
                   Constraints(max_drop=args.max_drop, batch=args.batch, minutes=args.minutes),
                   methods=methods, on_update=None)
    wall = time.time() - start
    out = S.result_json(rec)
    for c in out["candidates"]:
        acc = c["val_accuracy"]
        print(f"  {c['chain']:<48} job {c['id'] or '-':>4}  validation "
              f"{'-' if acc is None else f'{acc:.4f}'}  {c['status']}")
    print(rec.get("message"))
    ran = sum(1 for c in out["candidates"] if c["id"])
    print(f"candidates run: {ran} of {len(out['candidates'])} planned; wall {wall / 60:.1f} min")
    if out["winner"]:
        speed = out["speedup_vs_start"] or {}
        print(f"winner job {out['winner']['id']}: paired speedup vs the teacher "
              f"({out['speedup_runtime']}): " +
              ", ".join(f"batch {b} {v:.2f}x" for b, v in sorted(speed.items())) +
              f" (goal >= 8x at batch 32); test accuracy delta "
              f"{out['accuracy_delta_vs_start']} (goal >= -0.02)")


if __name__ == "__main__":
    main()
