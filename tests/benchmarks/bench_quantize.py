"""Benchmark: quantize the default teacher with each CPU scheme (and the GPU schemes on a
BERT-base-shaped preset when a GPU is visible); print paired speedups, size ratios and
accuracy deltas, each measured against the fp32 parent in the same job.

    LAB_HOME=/work/bench-home LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_quantize
    ... bench_quantize int8-dynamic:emb=0 bf16      # only some runs (see RUNS for names)
    ... bench_quantize all                          # also the optional runs (int8-static:mse)

Each run is one `quantize` job: the runner saves and reloads the model, evaluates it on the
test split, and times it interleaved with its parent (compiled against compiled, plus eager).
Not a test: nothing is asserted; targets are printed next to the figures.
"""

from __future__ import annotations

import sys
import time

from engine.cli import wait_for
from engine.submit import submit
from storage import jobs as store
from storage import settings

# name -> (model, --set values, what to look at)
RUNS: dict[str, tuple[str, list[str], str]] = {
    "int8-dynamic:emb=0": ("default", ["scheme=int8-dynamic", "embeddings=false"],
                           "Linear-only; target >=3x at batch 32, >=2.5x at batch 1, "
                           ">= -0.5 points"),
    "int8-dynamic": ("default", ["scheme=int8-dynamic", "embeddings=true"],
                     "with int8 embeddings; target >=3.5x smaller"),
    "int8-dynamic:eager": ("default", ["scheme=int8-dynamic", "runtime=eager"],
                           "the same int8 model without torch.compile"),
    "int8-static": ("default", ["scheme=int8-static"], "calibrated on 256 examples, minmax"),
    "bf16": ("default", ["scheme=bf16", "embeddings=false"], "bf16 eager"),
}
OPTIONAL: dict[str, tuple[str, list[str], str]] = {
    "int8-static:mse": ("default", ["scheme=int8-static", "observer=mse"],
                        "calibrated on 256 examples, mse"),
}
GPU_RUNS: dict[str, tuple[str, list[str], str]] = {
    f"gpu:{s}": ("preset:bert-base", [f"scheme={s}", "embeddings=false", "max_length=128"],
                 "BERT-base shape, sequence 128; fp16/bf16 target >=2x at batch 32")
    for s in ("fp16", "bf16", "int8-weight-only", "int4-weight-only", "fp8", "int8-dynamic")
}


def _fmt(by_bs: dict | None) -> str:
    return ", ".join(f"{x:.2f}x @ batch {bs}" for bs, x in (by_bs or {}).items()) or "-"


def report(name: str, note: str, job: dict, wall: float) -> None:
    m = job["metrics"]
    print(f"\n== {name} (job {job['id']}, {wall:.0f} s): {note}")
    if job["status"] != "done":
        print(f"   {job['status']}: {(job['error'] or '').splitlines()[0][:300]}")
        return
    lat = {r["batch_size"]: r for r in m["latency"]}
    par = {(r["batch_size"], r["runtime"]): r for r in m.get("parent_latency", [])}
    for bs, row in lat.items():
        line = f"   batch {bs:>2} x {row['seq_len']}: {row['runtime']} p50 {row['p50_ms']:.1f} ms"
        for rt in ("eager", "compiled"):
            if (bs, rt) in par:
                line += f" | parent {rt} {par[(bs, rt)]['p50_ms']:.1f} ms"
        print(line + f" ({row['threads']} threads, {row['device']})")
    print(f"   speedup_vs_parent (same runtime, {m.get('parent_runtime')}): "
          f"{_fmt(m.get('speedup_vs_parent'))}")
    if m.get("speedup_vs_parent_eager"):
        print(f"   speedup_vs_parent_eager: {_fmt(m['speedup_vs_parent_eager'])}; "
              f"compile gain of the parent: {_fmt(m.get('compile_gain_parent'))}; "
              f"compiling took {m.get('compile_seconds')} s")
    acc = "not meaningful (random weights)" if not m.get("accuracy_meaningful", True) else (
        f"{m['accuracy']:.4f} vs parent {m.get('parent_accuracy', float('nan')):.4f} "
        f"(delta {100 * m.get('accuracy_delta_vs_parent', float('nan')):+.2f} points)")
    print(f"   accuracy {acc}")
    print(f"   size {m['size_mb']:.1f} MB, {m.get('size_ratio_vs_parent', 0):.2f}x smaller than "
          f"the parent; params {m['params']:,}")
    if m.get("why_not_faster"):
        print(f"   why not faster: {m['why_not_faster']}")


def main(names: list[str]) -> None:
    import torch

    print(f"LAB_HOME={settings.lab_home()} threads={settings.threads()} "
          f"torch {torch.__version__}")
    if store.find_model("default") is None:
        raise SystemExit("the default teacher is not built in this LAB_HOME; run "
                         "tests.benchmarks.bench_teacher first")
    runs = dict(RUNS)  # what runs by default
    if torch.cuda.is_available():
        runs.update(GPU_RUNS)
    else:
        print("no CUDA GPU visible: the GPU runs (fp16, bf16, int8/int4 weight-only, fp8 on "
              "preset:bert-base) are skipped")
    known = {**runs, **OPTIONAL}
    if names == ["all"]:
        runs, names = known, []
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown run(s) {unknown}; choose from {', '.join(known)}")
    for name in names or list(runs):
        model, sets, note = known[name]
        start = time.time()
        job_id = submit("quantize", model=model, sets=sets)
        job = store.job_as_dict(wait_for(job_id))
        report(name, note, job, time.time() - start)


if __name__ == "__main__":
    main(sys.argv[1:])
