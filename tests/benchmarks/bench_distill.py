"""Benchmark: distil the embedded teacher into a 3-layer student (the method's defaults), then
quantize that student to dynamic int8 when the quantize method exists; print accuracies, job
wall time and paired speedups.

    LAB_HOME=/work/bench-home LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_distill \
        [--set key=value ...] [--job DISTILL_JOB_ID]

The speedups printed at the end are measured in this one run, the teacher, the student and the
int8 student timed interleaved (engine.toolkit.timing.measure) at batch 1 and 32, length 64, so the
chain's total speedup is one paired ratio, not a product of two runs. Needs the teacher built
(bench_teacher). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

from engine.cli import wait_for
from engine.methods.registry import methods
from engine.submit import submit
from storage import jobs as store
from storage import settings


def run_job(method: str, model: str, sets: list[str]) -> dict:
    job_id = submit(method, model=model, sets=sets)
    print(f"{method} job {job_id} from {model} with {sets or 'the defaults'}", flush=True)
    start = time.time()
    job = wait_for(job_id)
    d = store.job_as_dict(job)
    if d["status"] != "done":
        raise SystemExit(f"{method} job {job_id} {d['status']}: {d['error']}")
    took = (job.finished_at - job.started_at).total_seconds() if job.started_at else \
        time.time() - start
    d["wall_s"] = took
    return d


def describe(d: dict) -> None:
    m = d["metrics"]
    print(f"  job {d['id']} wall time {d['wall_s']:.0f} s (start to end, evaluation and timing "
          f"included), device {m['device']}")
    if "train_seconds" in m:
        print(f"  training {m['train_seconds']:.0f} s, {m['steps']} steps, best validation "
              f"{m['best_val_accuracy']:.4f} at step {m['best_step']} (teacher on the same "
              f"validation examples {m['teacher_val_accuracy']:.4f})")
    print(f"  test accuracy {m['accuracy']:.4f} vs its parent {m.get('parent_accuracy', 0):.4f}"
          f": retained {m.get('accuracy_retained', 0):.2%}; {m['layers']} layers, "
          f"{m['params']:,} params, {m['size_mb']:.1f} MB (parent / own size "
          f"{m.get('size_ratio_vs_parent')})")
    print(f"  paired speedup vs parent (runner, by batch size): {m.get('speedup_vs_parent')}")


def paired(models: dict[str, str], tokenizer_from: str, compiled: bool = False) -> None:
    """Time the models interleaved in this process and print ratios against the teacher;
    `compiled`: every model under torch.compile as the runner compiles int8 models (the
    teacher too, so the ratio is like with like)."""
    import torch

    from engine.toolkit.checkpoints import load_classifier, load_tokenizer, resolve
    from engine.toolkit.data import load_dataset
    from engine.toolkit.timing import Timed, compile_for_timing, measure

    torch.set_num_threads(settings.threads())
    runtime = "compiled" if compiled else "eager"
    timed = {}
    for name, mid in models.items():
        model = load_classifier(resolve(mid))
        timed[name] = Timed(compile_for_timing(model) if compiled else model, "cpu", runtime)
    tok = load_tokenizer(resolve(tokenizer_from))
    texts = load_dataset("rotten-tomatoes").test.texts[:256]
    lat = measure(timed, tok, texts, [1, 32], 64, warmup=5, runs=30)
    base = {r["batch_size"]: r["p50_ms"] for r in lat["teacher"]}
    print(f"paired latency, one run, cpu {torch.get_num_threads()} threads, length 64, "
          f"{runtime}, 30 interleaved runs after 5 warm-up:")
    for name, rows in lat.items():
        print("  " + f"{name:<14}" + "; ".join(
            f"batch {r['batch_size']:>2}: p50 {r['p50_ms']:7.1f} ms, p95 {r['p95_ms']:7.1f} ms, "
            f"speedup vs teacher {base[r['batch_size']] / r['p50_ms']:.2f}x" for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], help="distill config key=value")
    ap.add_argument("--job", type=int, help="reuse this finished distill job")
    args = ap.parse_args()
    print(f"LAB_HOME={settings.lab_home()} threads={settings.threads()}")
    teacher = store.find_model("default")
    if teacher is None:
        raise SystemExit("the default teacher is not built; run tests.benchmarks.bench_teacher")
    load = store.count_jobs().get("running", 0)
    print(f"jobs running in this LAB_HOME at start: {load} (others share the CPU)")

    if args.job:
        student = store.job_as_dict(store.get_job(args.job))
        student["wall_s"] = (store.get_job(args.job).finished_at
                             - store.get_job(args.job).started_at).total_seconds()
    else:
        student = run_job("distill", "default", args.set)
    print(f"distill config {student['config']['data']}")
    describe(student)
    models = {"teacher": "default", "student": student["output_model"]}

    if "quantize" in methods():
        quant = run_job("quantize", student["output_model"], ["scheme=int8-dynamic"])
        describe(quant)
        models["student-int8"] = quant["output_model"]
        t_acc = student["metrics"]["parent_accuracy"]
        q_acc = quant["metrics"]["accuracy"]
        t_size = student["metrics"]["size_mb"] * student["metrics"]["size_ratio_vs_parent"]
        print(f"chain teacher -> 3-layer student -> int8: test accuracy {q_acc:.4f} vs "
              f"teacher {t_acc:.4f} (retained {q_acc / t_acc:.2%}); "
              f"{t_size / quant['metrics']['size_mb']:.2f}x smaller than the teacher")
    else:
        print("the quantize method is not in this checkout: no int8 chain figure")
    paired(models, "default")
    if "student-int8" in models:  # int8 runs compiled in the lab: the chain's figure compiled
        paired(models, "default", compiled=True)


if __name__ == "__main__":
    main()
