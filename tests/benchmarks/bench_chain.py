"""Benchmark: one compression chain on the teacher, step by step, then timed end to end.

    LAB_HOME=... LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_chain \
        [--chain deep4] [--model default] [--dataset rotten-tomatoes]

Each step is an ordinary job (chained with from_job; identical work already done in LAB_HOME is
reused, and the output says so). For every step it prints the test accuracy (2,000 examples)
and its change against the start, the accuracy on the judging half of validation (what the
search selects on) with the paired 95 % bootstrap interval of the drop, and the step's own
compiled speedup against its parent. Then a `retime` job times the chain's last model and the
start interleaved in one process, compiled both: the end-to-end paired speedup with its 95 %
interval, at batch 1 and 32 (issue 17's figure: at least 8x at batch 32 within 2 points).

Chains (`--chain`): deep4: distill to 4 layers, remove half the heads, remove two thirds of
the FFN neurons, int8-static; deep3: distill to 3 layers, half the heads, half the neurons,
int8-static. Needs the teacher built (bench_teacher) and a quiet machine. Not a test."""
from __future__ import annotations

import argparse
import time

from engine.search.execution import drop_interval, execute, val_correct
from engine.submit import submit
from engine.toolkit.data import load_dataset
from storage import jobs as store
from storage import settings

CHAINS: dict[str, list[tuple[str, dict]]] = {
    "deep4": [("distill", {"student_layers": 4}), ("prune", {"kind": "heads", "amount": 0.5}),
              ("prune", {"kind": "ffn", "amount": 0.667}),
              ("quantize", {"scheme": "int8-static"})],
    "deep3": [("distill", {"student_layers": 3}), ("prune", {"kind": "heads", "amount": 0.5}),
              ("prune", {"kind": "ffn", "amount": 0.5}),
              ("quantize", {"scheme": "int8-static"})],
}


def run(method: str, values: dict, **where) -> dict:
    job = execute(submit(method, values=values, **where))
    row = store.job_as_dict(job)
    if row["status"] != "done":
        raise SystemExit(f"job {row['id']} {method} {values}: {row['status']} {row['error']}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chain", choices=sorted(CHAINS), default="deep4")
    ap.add_argument("--model", default="default")
    ap.add_argument("--dataset", default="rotten-tomatoes")
    args = ap.parse_args()
    data = load_dataset(args.dataset)
    began = time.monotonic()
    start_model = store.find_model(args.model)
    start = store.job_as_dict(store.get_job(start_model.job_id)) if start_model else None
    start_test = (start or {}).get("metrics", {}).get("accuracy")
    start_val = val_correct(args.model, data)
    print(f"{args.chain} from {args.model}: test {start_test}, judging half "
          f"{start_val.mean():.3f} ({len(start_val)} examples), {settings.threads()} threads")
    parent: int | None = None
    for method, values in CHAINS[args.chain]:
        where = {"from_job": parent} if parent else {"model": args.model}
        row = run(method, values, dataset=args.dataset, **where)
        m = row["metrics"]
        val = val_correct(f"job:{row['id']}", data)
        lo, hi = drop_interval(start_val, val)
        own = (m.get("speedup_by_runtime") or {}).get("compiled") or m.get("speedup_vs_parent")
        test = m.get("accuracy")
        print(f"job {row['id']} {method} {values}{' (reused)' if row.get('reused_from') else ''}"
              f": test {test:.4f} ({100 * (test - start_test):+.2f} points)"
              f"  judging {val.mean():.3f} (drop {100 * (start_val.mean() - val.mean()):.2f}, "
              f"95 % {100 * lo:.2f} to {100 * hi:.2f})  step speedup compiled {own}"
              f"  {m.get('size_mb', 0):.1f} MB")
        parent = row["id"]
    timed = run("retime", {"against": args.model}, model=f"job:{parent}", dataset=args.dataset)
    m = timed["metrics"]
    x, ci = m["speedup_by_runtime"]["compiled"], m["speedup_ci_by_runtime"]["compiled"]
    print(f"end to end, retime job {timed['id']} (compiled both, paired, interleaved): "
          + ", ".join(f"batch {b} {x[b]:.2f}x [{ci[b][0]:.2f}-{ci[b][1]:.2f}]" for b in x))
    print(f"wall time {(time.monotonic() - began) / 60:.1f} min")


if __name__ == "__main__":
    main()
