"""Benchmark (issue 15 "Figures"): on a machine that has never built the teacher, from the lab
starting to the first compression result with its paired speedup on the Results page (goal: at
most 7 minutes).

    LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_first_result [--method quantize]

What a new user does after the README's install: the lab starts (here: a worker process, as
the dashboard autostarts one), they queue int8 on `default` (the CLI's submit, which queues the
teacher's finetune first, as the Compress page does), wait, and open Results. Everything runs
in a new empty LAB_HOME and a new empty LAB_CACHE_DIR (no cached teacher), in new processes.
Prints the teacher job's and the compression job's own times, the paired speedup the result
shows, and the wall time from the start to a rendered Results page. Not a test: nothing is
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import ROOT

RENDER = """
import time
from streamlit.testing.v1 import AppTest
start = time.perf_counter()
at = AppTest.from_file({page!r}, default_timeout=120)
at.run()
assert not at.exception, [e.message for e in at.exception]
took = time.perf_counter() - start
text = " ".join(str(e.value) for kind in ("markdown", "caption", "metric", "info", "success")
                for e in getattr(at, kind))
text += " ".join(d.value.to_string() for d in at.dataframe)
shown = any(x in text for x in {wanted!r})
print(f"RENDER {{took:.3f}} {{shown}}")
"""


def _show(job_id: int, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "engine", "show", str(job_id), "--json"],
                         cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def _took(job: dict) -> float | None:
    from datetime import datetime

    if not job.get("started_at") or not job.get("finished_at"):
        return None
    return (datetime.fromisoformat(job["finished_at"])
            - datetime.fromisoformat(job["started_at"])).total_seconds()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", default="quantize", help="the first job a user queues")
    p.add_argument("--timeout-min", type=float, default=30.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-first-") as tmp:
        env = {**os.environ, "LAB_HOME": str(Path(tmp) / "home"),
               "LAB_CACHE_DIR": str(Path(tmp) / "cache"), "LAB_WORKER_AUTOSTART": "0",
               "HF_HUB_OFFLINE": "1"}
        env.pop("LAB_DATABASE_URL", None)
        start = time.perf_counter()
        worker = subprocess.Popen([sys.executable, "-m", "engine", "worker"], cwd=ROOT,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            sub = subprocess.run([sys.executable, "-m", "engine", "submit", args.method,
                                  "--model", "default", "--json"], cwd=ROOT, env=env,
                                 check=True, capture_output=True, text=True)
            job_id = json.loads(sub.stdout)["id"]
            print(f"submitted {args.method} job {job_id} at {time.perf_counter() - start:.1f} s",
                  flush=True)
            job = _show(job_id, env)
            while job["status"] not in ("done", "failed", "cancelled"):
                if time.perf_counter() - start > args.timeout_min * 60:
                    raise SystemExit(f"job {job_id} still {job['status']} after "
                                     f"{args.timeout_min} min")
                time.sleep(5)
                job = _show(job_id, env)
            done = time.perf_counter() - start
        finally:
            worker.terminate()
            worker.wait(timeout=60)
        if job["status"] != "done":
            raise SystemExit(f"job {job_id} {job['status']}: {job.get('error')}")
        # the result is on screen when the page prints one of its paired speedups
        by_runtime = job["metrics"].get("speedup_by_runtime") or {}
        wanted = sorted({f"{v:.2f}x" for per in by_runtime.values() for v in per.values()})
        out = subprocess.run([sys.executable, "-c", RENDER.format(
            page=str(ROOT / "pages" / "results.py"), wanted=wanted)], cwd=ROOT, env=env,
            check=True, capture_output=True, text=True).stdout
        _, render_s, shown = next(x for x in out.splitlines() if x.startswith("RENDER ")).split()
        total = time.perf_counter() - start
        teacher = _show(job["parent_id"], env) if job.get("parent_id") else None
        m = job["metrics"]
        if teacher:
            tm = teacher["metrics"]
            print(f"teacher job {teacher['id']}: {_took(teacher):.0f} s (training "
                  f"{tm.get('train_seconds', 0):.0f} s), test accuracy {tm['accuracy']:.4f}, "
                  f"pooling {tm.get('pooling')}, training precision {tm.get('train_precision')}")
        print(f"{args.method} job {job_id}: {_took(job):.0f} s, test accuracy "
              f"{m['accuracy']:.4f}; paired speedup vs the teacher: "
              + ", ".join(f"batch {k}: {v:.2f}x" for k, v in
                          sorted((m.get("speedup_vs_parent") or {}).items(),
                                 key=lambda kv: int(kv[0])))
              + f" ({m.get('runtime')} against the parent {m.get('parent_runtime')})")
        print(f"job done at {done / 60:.1f} min; Results rendered in {float(render_s):.1f} s "
              f"(its paired speedup on the page: {shown}); start to rendered Results: "
              f"{total / 60:.1f} min (goal <= 7)")


if __name__ == "__main__":
    main()
