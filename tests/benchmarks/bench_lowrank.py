"""Benchmark (unrun here): low-rank factorisation of the embedded teacher's FFN on the CPU.

    LAB_HOME=/work/bench-home LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_lowrank

One lowrank job (target=ffn, rank=0.5, recovery_steps=300, distilled from the teacher) run
through the runner like any other; printed from the job's own metrics: the accuracy delta, the
size ratio, the paired speedup at batch 1 and 32 for each runtime the job timed (eager and
compiled, `speedup_by_runtime`), its interval when stored, and the "why not faster" note when
it is not faster. If the job's metrics hold no compiled ratio (a runner that times only the
model's own runtime), the model and the teacher are also timed here, compiled, interleaved.
`--job ID` reuses a finished lowrank job. Needs the teacher (`default`) built in LAB_HOME.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

from engine.cli import wait_for
from engine.submit import submit
from storage import jobs as store
from storage import settings

SETS = ["target=ffn", "rank=0.5", "recovery_steps=300"]


def run_job(sets: list[str]) -> dict:
    start = time.time()
    job_id = submit("lowrank", model="default", sets=sets)
    d = store.job_as_dict(wait_for(job_id))  # runs it here when no worker is alive
    if d["status"] != "done":
        raise SystemExit(f"lowrank job {job_id} {d['status']}: {d['error']}")
    print(f"lowrank job {job_id} ({' '.join(sets)}): {time.time() - start:.0f} s")
    return d


def describe(d: dict) -> bool:
    """Print the job's figures; True when it holds a compiled ratio."""
    m = d["metrics"]
    print(f"  accuracy {m['accuracy']:.4f}, teacher {m.get('parent_accuracy', 0):.4f}, delta "
          f"{100 * m.get('accuracy_delta_vs_parent', 0):+.2f} pts; params "
          f"{m['params'] / 1e6:.2f}M; size ratio {m.get('size_ratio_vs_parent', 0):.2f}x; "
          f"FFN weight ratio {m.get('lowrank_weight_ratio', 0):.2f}x; estimated encoder "
          f"arithmetic {m.get('estimated_compute_ratio', 0):.2f}x less; spectral energy kept "
          f"{m.get('energy_kept_mean', 0):.1%}")
    by_runtime = m.get("speedup_by_runtime") or {m.get("runtime", "eager"):
                                                 m.get("speedup_vs_parent") or {}}
    ci = m.get("speedup_ci_by_runtime") or {}
    for runtime, ratios in by_runtime.items():
        parts = []
        for bs in ("1", "32"):
            x = ratios.get(bs)
            lo_hi = (ci.get(runtime) or {}).get(bs)
            parts.append(f"batch {bs} {x:.2f}x" + (f" ({lo_hi[0]:.2f}-{lo_hi[1]:.2f})"
                                                    if lo_hi else "") if x else f"batch {bs} -")
        print(f"  paired speedup vs teacher, {runtime}: {', '.join(parts)}")
    if m.get("timing_unreliable") or m.get("timing_warning"):
        print(f"  timing: {m.get('timing_unreliable') or m.get('timing_warning')}")
    if m.get("why_not_faster"):
        print(f"  why not faster: {m['why_not_faster']}")
    return "compiled" in by_runtime


def paired_compiled(model_id: str) -> None:
    """The model and the teacher compiled, interleaved in this process (like with like)."""
    import torch

    from engine.toolkit.checkpoints import load_classifier, load_tokenizer, resolve
    from engine.toolkit.data import load_dataset
    from engine.toolkit.paired import speedups
    from engine.toolkit.timing import Timed, compile_for_timing, measure

    torch.set_num_threads(settings.threads())
    timed = {name: Timed(compile_for_timing(load_classifier(resolve(mid))), "cpu", "compiled")
             for name, mid in {"lowrank": model_id, "teacher": "default"}.items()}
    tok = load_tokenizer(resolve("default"))
    texts = load_dataset("rotten-tomatoes").test.texts[:256]
    lat = measure(timed, tok, texts, [1, 32], 64, warmup=5, runs=30)
    print(f"  compiled here (this process, interleaved, 30 runs): "
          f"{speedups(lat['lowrank'], lat['teacher'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", type=int, help="reuse this finished lowrank job")
    args = ap.parse_args()
    print(f"LAB_HOME={settings.lab_home()} threads={settings.threads()}")
    if store.find_model("default") is None:
        raise SystemExit("the default teacher is not built; run tests.benchmarks.bench_teacher")
    d = store.job_as_dict(store.get_job(args.job)) if args.job else run_job(SETS)
    if not describe(d):
        paired_compiled(d["output_model"])


if __name__ == "__main__":
    main()
