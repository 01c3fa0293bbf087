"""Benchmark: the budget-first search on the teacher (issue 17), CPU, LAB_THREADS threads.

    LAB_HOME=/work/bench-home LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_search \
        [--max-drop 0.02] [--batch 32] [--minutes 60] [--methods distill,prune-heads,quantize] \
        [--max-candidates N] [--int8-max-drop 0.002] [--skip-search] [--skip-int8] [--dry-run]

Two parts, in this process (every run is an ordinary job in LAB_HOME):

1. `python -m engine search` with the budget given: prints each candidate, the winner's paired
   speedup against the start under one runtime (goal: at least 8x at batch 32), its test
   accuracy drop against the start (goal: at most 2 points), the candidates run and the wall
   time. A short budget (`--minutes 15`) runs fewer candidates; one too short for any is
   refused with the time the quickest needs, and the int8 part still runs.
2. Accuracy-aware int8 (`quantize --set max_drop=0.002`) against plain int8 on the same start:
   each one's test accuracy drop and paired speedup against the start, the validation drop and
   the parts kept float, then a `retime` job timing the two int8 models interleaved (their
   speed ratio in one process, not a ratio of two jobs' figures).

Needs the teacher (`default`) built (tests.benchmarks.bench_teacher) and a quiet machine.
`--dry-run` checks the arguments and prints what would run, without running anything.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from engine import search as S
from engine.reports.search_plan import Constraints
from engine.toolkit.config import LabError
from storage import jobs as store
from storage import settings


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench_search", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--dataset", default="rotten-tomatoes")
    ap.add_argument("--max-drop", type=float, default=0.02)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--methods", default=None, help="comma-separated; default: all")
    ap.add_argument("--max-candidates", type=int, default=None)
    ap.add_argument("--int8-max-drop", type=float, default=0.002,
                    help="the accuracy-aware int8 run's max_drop (default 0.002)")
    ap.add_argument("--skip-search", action="store_true", help="only the int8 part")
    ap.add_argument("--skip-int8", action="store_true", help="only the search")
    ap.add_argument("--dry-run", action="store_true", help="check the arguments, run nothing")
    args = ap.parse_args(argv)
    args.methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods \
        else S.METHODS
    args.constraints = Constraints(max_drop=args.max_drop, batch=args.batch,
                                   minutes=args.minutes)
    try:
        args.constraints.check()
        if not 0 < args.int8_max_drop < 1:
            raise LabError(f"--int8-max-drop {args.int8_max_drop:g}: a fraction, e.g. 0.002")
        unknown = sorted(set(args.methods) - set(S.METHODS))
        if unknown:
            raise LabError(f"--methods: unknown {', '.join(unknown)}; use some of "
                           f"{', '.join(S.METHODS)}")
    except LabError as exc:
        ap.error(str(exc))
    return args


def run_search(args: argparse.Namespace) -> None:
    print(f"\n== search: at most {100 * args.max_drop:.2g} points lost, speed at batch "
          f"{args.batch}, {args.minutes:g} minutes, methods {','.join(args.methods)}")
    start = time.time()
    try:
        rec = S.search(args.model, args.dataset, args.constraints, methods=args.methods,
                       max_candidates=args.max_candidates, on_update=None)
    except LabError as exc:
        print(f"   refused after {time.time() - start:.0f} s: {exc}")
        return
    wall = time.time() - start
    out = S.result_json(rec)
    for c in rec["candidates"]:
        acc = c["val_accuracy"]
        print(f"   {c['chain']:<56} job {c['id'] or '-':>4}  validation "
              f"{'-' if acc is None else f'{acc:.4f}'}  {c['status']}")
    print(f"   {rec.get('message')}")
    ran = sum(1 for c in out["candidates"] if c["id"])
    aware = sum(1 for c in rec["candidates"]
                if any(s["config"].get("max_drop") for s in c.get("steps", [])))
    print(f"   candidates run: {ran} of {len(out['candidates'])} planned ({aware} with an "
          f"accuracy-aware int8 step); wall {wall / 60:.1f} min of {args.minutes:g}")
    if not out["winner"]:
        print("   winner: none")
        return
    speed = out["speedup_vs_start"] or {}
    delta = out["accuracy_delta_vs_start"]
    chain = next(c["chain"] for c in out["candidates"] if c["id"] == out["winner"]["id"])
    print(f"   winner job {out['winner']['id']} ({chain}): paired speedup vs the start "
          f"({out['speedup_runtime']} both): "
          + ", ".join(f"batch {b} {v:.2f}x" for b, v in sorted(speed.items(),
                                                               key=lambda kv: int(kv[0])))
          + " (goal >= 8x at batch 32)")
    print("   winner test accuracy drop vs the start: "
          + ("-" if delta is None else f"{-100 * delta + 0.0:.2f} points") + " (goal <= 2 points)")


def _quantize(model: str, dataset: str, sets: list[str]) -> dict[str, Any]:
    from engine.cli import wait_for
    from engine.submit import submit

    return store.job_as_dict(wait_for(submit("quantize", model=model, dataset=dataset,
                                             sets=sets)))


def _line(name: str, job: dict[str, Any]) -> None:
    m = job["metrics"] or {}
    if job["status"] != "done":
        print(f"   {name}: job {job['id']} {job['status']}: {(job['error'] or '')[:300]}")
        return
    speed = m.get("speedup_vs_parent") or {}
    delta = m.get("accuracy_delta_vs_parent")
    print(f"   {name}: job {job['id']}" + (f" (reused job {job['reused_from']})"
                                           if job.get("reused_from") else "")
          + f", test accuracy {m.get('accuracy', float('nan')):.4f}, drop "
          + ("-" if delta is None else f"{-100 * delta + 0.0:.2f} points")
          + f"; paired speedup vs the start ({m.get('parent_runtime')} both): "
          + (", ".join(f"batch {b} {x:.2f}x" for b, x in speed.items()) or "-")
          + f"; {m.get('size_mb', float('nan')):.1f} MB")


def run_int8(args: argparse.Namespace) -> None:
    from engine.cli import wait_for
    from engine.submit import submit

    print(f"\n== accuracy-aware int8 (max_drop={args.int8_max_drop:g}) vs plain int8 on "
          f"{args.model}")
    start = time.time()
    plain = _quantize(args.model, args.dataset, ["scheme=int8-dynamic"])
    aware = _quantize(args.model, args.dataset, ["scheme=int8-dynamic",
                                                 f"max_drop={args.int8_max_drop}"])
    _line("plain int8", plain)
    _line(f"accuracy-aware int8 (max_drop={args.int8_max_drop:g})", aware)
    m = aware["metrics"] or {}
    if aware["status"] == "done" and m.get("float_parts") is not None:
        parts = m["float_parts"]
        print(f"   accuracy-aware: validation drop {100 * m.get('val_drop', 0):.2f} points on "
              f"{m.get('val_examples')} examples (every part int8: "
              f"{100 * m.get('val_drop_all_int8', 0):.2f}); {len(parts)} part"
              f"{'s' * (len(parts) != 1)} kept float, about "
              f"{m.get('float_size_cost_mb', 0):.2f} MB more")
    if plain["status"] == aware["status"] == "done":
        job = store.job_as_dict(wait_for(submit(
            "retime", model=aware["output_model"], dataset=args.dataset,
            sets=[f"against={plain['output_model']}"])))
        rm = job["metrics"] or {}
        by_rt = rm.get("speedup_by_runtime") or {rm.get("parent_runtime"):
                                                 rm.get("speedup_vs_parent") or {}}
        print(f"   retime job {job['id']}, accuracy-aware against plain int8, interleaved: "
              + "; ".join(f"{rt} " + ", ".join(f"batch {b} {x:.2f}x" for b, x in
                                               (xs or {}).items())
                          for rt, xs in by_rt.items())
              + (" (below 1: the float parts cost speed)" if m.get("float_parts") else
                 " (no part kept float: the two models are the same, so this is noise)"))
    print(f"   wall {(time.time() - start) / 60:.1f} min")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    print(f"LAB_HOME={settings.lab_home()} threads={settings.threads()} model={args.model} "
          f"max_drop={args.max_drop} batch={args.batch} minutes={args.minutes} "
          f"methods={','.join(args.methods)} int8_max_drop={args.int8_max_drop}"
          + (" (dry run: nothing runs)" if args.dry_run else ""))
    if args.dry_run:
        print("would run: " + " and ".join(p for p, skip in (
            ("the search", args.skip_search), ("accuracy-aware vs plain int8", args.skip_int8))
            if not skip))
        return 0
    if args.model == "default" and store.find_model("default") is None:
        print("the default teacher is not built in this LAB_HOME; run "
              "tests.benchmarks.bench_teacher first", file=sys.stderr)
        return 2
    if not args.skip_search:
        run_search(args)
    if not args.skip_int8:
        run_int8(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
