"""Benchmark: build the default teacher from scratch, print its accuracy, wall time and the
evaluate figures.

    LAB_HOME=/tmp/bench-teacher LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_teacher

Uses LAB_HOME as given (a fresh folder builds the teacher from scratch; a folder that already
has it reports the stored run). Not a test: nothing is asserted.
"""

from __future__ import annotations

import json
import time

from engine.cli import wait_for
from engine.submit import ensure_teacher
from storage import jobs as store
from storage import settings


def main() -> None:
    print(f"LAB_HOME={settings.lab_home()} threads={settings.threads()}")
    job_id = ensure_teacher()
    if job_id is None:
        row = store.find_model("default")
        job_id = row.job_id
        print(f"teacher already built by job {job_id}")
    start = time.time()
    job = wait_for(job_id)
    wall = time.time() - start
    d = store.job_as_dict(job)
    if d["status"] != "done":
        raise SystemExit(f"teacher job {job_id} {d['status']}: {d['error']}")
    m = d["metrics"]
    took = (job.finished_at - job.started_at).total_seconds() if job.started_at else wall
    print(f"teacher job {job_id}: config {json.dumps(d['config']['data'])}")
    print(f"test accuracy {m['accuracy']:.4f} ({m['test_examples']} examples), macro-F1 "
          f"{m['macro_f1']:.4f}, kept step {m['kept_step']} of {m['steps']} (validation "
          f"{m['kept_val_accuracy']:.4f}; best {m['best_val_accuracy']:.4f} at step "
          f"{m['best_step']})")
    print(f"job wall time {took:.0f} s (training {m['train_seconds']:.0f} s)")
    print(f"size {m['size_mb']:.1f} MB, {m['params']:,} params, {m['layers']} layers, "
          f"{m['heads']} heads, device {m['device']}")
    for row in m["latency"]:
        print(f"latency batch {row['batch_size']:>2} x {row['seq_len']} tokens "
              f"({row['runtime']}, {row['threads']} threads): p50 {row['p50_ms']:.1f} ms, "
              f"p95 {row['p95_ms']:.1f} ms, {row['throughput_per_s']:.1f} examples/s")


if __name__ == "__main__":
    main()
