"""Benchmark: pruning the embedded teacher on the CPU, each result paired with its parent.

    LAB_HOME=/work/bench-home LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_prune

1. Scoring cost: gradient head importance (the method's defaults) against one evaluation pass
   over the test split, alternated in this process.
2. 40 % of the heads removed by gradient importance, with the default recovery.
3. Structured: the output of (2) with its top 2 layers dropped and recovered; its latency is
   timed here interleaved with the teacher's, its accuracy compared with the teacher's.
4. Unstructured 50 % magnitude sparsity (no recovery): the sparsity reached, and no speedup.
5. 2:4 semi-structured: runs only on a CUDA GPU; on the CPU the lab's refusal is printed.

`--against-teacher JOB_ID` only re-times an earlier result against the teacher (interleaved).
Jobs run through the runner like any other (in this process, or in a live worker if one
claims them first). Needs the teacher (`default`) built in LAB_HOME. Nothing is asserted.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from engine.cli import wait_for
from engine.submit import submit
from storage import jobs as store
from storage import settings

BATCHES = [1, 32]


def run(sets: list[str], model: str = "default") -> dict:
    start = time.time()
    job_id = submit("prune", model=model, sets=sets)
    d = store.job_as_dict(wait_for(job_id))  # runs it here when no worker is alive
    if d["status"] != "done":
        raise SystemExit(f"prune job {job_id} {d['status']}: {d['error']}")
    m = d["metrics"]
    speed = m.get("speedup_vs_parent") or {}
    print(f"  job {job_id} ({' '.join(sets)}) from {model}: {time.time() - start:.0f} s")
    print(f"    accuracy {m['accuracy']:.4f}, parent {m.get('parent_accuracy', 0):.4f}, delta "
          f"{100 * m.get('accuracy_delta_vs_parent', 0):+.2f} pts; heads {m['heads']}, layers "
          f"{m['layers']}, params {m['params'] / 1e6:.2f}M")
    print(f"    paired speedup vs parent: batch 1 {speed.get('1', 0):.2f}x, batch 32 "
          f"{speed.get('32', 0):.2f}x; size ratio {m.get('size_ratio_vs_parent', 0):.2f}x; "
          f"estimated compute ratio {m.get('estimated_compute_ratio', 0):.2f}x")
    if m.get("timing_warning"):
        print(f"    {m['timing_warning']}")
    return d


def scoring_cost() -> None:
    """Gradient scoring (PruneConfig defaults) against one evaluation pass, alternated."""
    from engine.methods.evaluate import EvaluateConfig
    from engine.methods.prune import PruneConfig
    from engine.methods.prune.importance import head_importance, scoring_sample
    from engine.toolkit import device as dev
    from engine.toolkit.checkpoints import load_classifier, load_tokenizer, resolve
    from engine.toolkit.data import load_dataset
    from engine.toolkit.evaluation import predict

    device = dev.setup()
    cfg, ecfg = PruneConfig(), EvaluateConfig()
    ref = resolve("default")
    data = load_dataset("rotten-tomatoes")
    model = load_classifier(ref, label_names=data.label_names).to(device)
    tok = load_tokenizer(ref)
    texts, labels = scoring_sample(data.train, cfg.scoring_examples, cfg.seed)
    evals, scores = [], []
    for _ in range(2):
        start = time.perf_counter()
        predict(model, tok, data.test.texts, ecfg.max_length, device, ecfg.eval_batch_size)
        evals.append(time.perf_counter() - start)
        start = time.perf_counter()
        head_importance(model, tok, texts, labels, "gradient", cfg.max_length,
                          cfg.batch_size, cfg.seed, device)
        scores.append(time.perf_counter() - start)
    e, s = statistics.median(evals), statistics.median(scores)
    print(f"1. scoring cost: gradient importance on {len(texts)} training examples "
          f"{s:.1f} s (runs {', '.join(f'{x:.1f}' for x in scores)}); one evaluation pass on "
          f"{len(data.test)} test examples {e:.1f} s (runs {', '.join(f'{x:.1f}' for x in evals)})"
          f"; ratio {s / e:.2f}x")


def against_teacher(d: dict) -> None:
    """Time a chained result interleaved with the teacher (its grandparent), same process."""
    from engine.toolkit import device as dev
    from engine.toolkit.checkpoints import load_classifier, load_tokenizer, resolve
    from engine.toolkit.data import load_dataset
    from engine.toolkit.paired import speedups
    from engine.toolkit.timing import Timed, measure

    device = dev.setup()
    data = load_dataset("rotten-tomatoes")
    teacher_ref = resolve("default")
    models = {"teacher": Timed(load_classifier(teacher_ref).to(device), device),
              "pruned": Timed(load_classifier(resolve(d["output_model"])).to(device), device)}
    lat = measure(models, load_tokenizer(teacher_ref), data.test.texts[:256], BATCHES, 64,
                  warmup=3, runs=20)
    ratio = speedups(lat["pruned"], lat["teacher"])
    load = os.getloadavg()[0]
    teacher = store.latest_metrics_for(f"job:{teacher_ref.job_id}", "rotten-tomatoes")
    t_acc = teacher.metrics.accuracy
    acc = d["metrics"]["accuracy"]
    smaller = teacher.metrics.size_mb / d["metrics"]["size_mb"]
    print(f"    against the teacher (interleaved now, 64 tokens): batch 1 {ratio['1']:.2f}x, "
          f"batch 32 {ratio['32']:.2f}x; accuracy {acc:.4f} vs {t_acc:.4f} "
          f"({100 * (acc - t_acc):+.2f} pts); {smaller:.2f}x smaller; load average {load:.1f} "
          f"on {os.cpu_count()} cores")
    for role in ("teacher", "pruned"):
        row = {r["batch_size"]: r for r in lat[role]}
        print(f"      {role}: " + ", ".join(f"batch {b} p50 {row[b]['p50_ms']:.1f} ms"
                                           for b in BATCHES))


def main() -> None:
    print(f"LAB_HOME={settings.lab_home()} threads={settings.threads()}")
    if store.find_model("default") is None:
        sys.exit("the teacher is not built in this LAB_HOME; run tests.benchmarks.bench_teacher")
    if len(sys.argv) == 3 and sys.argv[1] == "--against-teacher":
        # Re-time an earlier result against the teacher only (e.g. once the machine is quieter).
        job = store.job_as_dict(store.get_job(int(sys.argv[2])))
        print(f"job {job['id']} ({job['output_model']}) against the teacher")
        against_teacher(job)
        return
    scoring_cost()
    print("2. heads: 40 % removed by gradient importance, default recovery")
    heads = run(["kind=heads", "amount=0.4"])
    print(f"    scoring inside the job: {heads['metrics']['head_importance_seconds']:.1f} s; "
          f"heads per layer {heads['metrics']['heads_per_layer']}; recovery "
          f"{heads['metrics'].get('recovery_train_seconds', 0):.0f} s")
    print("3. structured: then the top 2 of 6 layers dropped, default recovery")
    both = run(["kind=layers", "layers=[4, 5]"], model=heads["output_model"])
    against_teacher(both)
    print("4. unstructured: 50 % of the encoder's linear weights, global magnitude, no recovery")
    sparse = run(["kind=unstructured", "amount=0.5", "recovery_steps=0"])
    print(f"    sparsity reached {sparse['metrics']['sparsity']:.4f} of encoder linear weights "
          f"({sparse['metrics']['sparsity_all_params']:.4f} of all parameters)")
    print("5. 2:4 semi-structured")
    from engine.methods.prune import semi_structured_problem
    from engine.toolkit import device as dev

    reason = semi_structured_problem(dev.describe(dev.setup()))
    if reason:
        print(f"    skipped: {reason}")
    else:
        d = run(["kind=2:4", "recovery_steps=0"])
        print(f"    2:4 vs the same weights dense fp16: "
              f"{d['metrics']['semi_structured_speedup_vs_dense_fp16']}")


if __name__ == "__main__":
    main()
