"""Benchmark (issue 15 "Figures"): from `pack import` of a 10-run pack without models to a
rendered Results page, on a fresh LAB_HOME (goal: at most 30 s).

    LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_pack [--runs 10] [--repeats 5]

Seeds RUNS finished runs (a teacher and quantize / prune / distill children with paired
latencies and 2,000 per-example test predictions each, the size of the lab's Rotten Tomatoes
test split; tests.test_results_page.seed_runs) in a scratch lab, exports them as a pack without
models, then REPEATS times, each in a new empty LAB_HOME: runs `python -m engine pack import
FILE` as a user would (a new process: imports, migrations, the import) and then renders the
Results page in another new process (streamlit.testing.v1.AppTest: Streamlit start-up, imports,
an empty cache). Prints each part's median and range over the repeats and the total. Not a
test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
took = time.perf_counter() - start
assert not at.exception, [e.message for e in at.exception]
rows = len(at.dataframe[0].value) if at.dataframe else 0
print(f"RENDER {{took:.3f}} {{rows}}")
"""


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "LAB_HOME": str(home), "LAB_WORKER_AUTOSTART": "0",
           "LAB_BUILD_TEACHER": "0", "HF_HUB_OFFLINE": "1"}
    env.pop("LAB_DATABASE_URL", None)
    return env


def make_pack(base: Path, runs: int) -> Path:
    """Seed `runs` runs in a scratch lab (in a child process, so this one stays clean) and
    export them; return the pack's path."""
    pack = base / "runs.labpack"
    code = ("from tests.test_results_page import seed_runs\n"
            "from engine.packs import export_pack\n"
            f"ids = seed_runs({runs}, n_examples=2000)\n"
            f"export_pack({str(pack)!r}, ids)\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(base / "source"),
                   check=True)
    return pack


def one(base: Path, pack: Path, i: int) -> tuple[float, float, int]:
    """Import `pack` into a new lab, then render Results there: (import s, render s, rows)."""
    env = _env(base / f"fresh-{i}")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine", "pack", "import", str(pack)], cwd=ROOT,
                   env=env, check=True, stdout=subprocess.DEVNULL)
    imported = time.perf_counter() - start
    out = subprocess.run([sys.executable, "-c", RENDER.format(
        page=str(ROOT / "pages" / "results.py"))], cwd=ROOT, env=env, check=True,
        capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RENDER "))
    _, took, rows = line.split()
    return imported, float(took), int(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pack-") as tmp:
        base = Path(tmp)
        pack = make_pack(base, args.runs)
        print(f"pack of {args.runs} runs without models: {pack.stat().st_size / 1e6:.2f} MB")
        results = []
        for i in range(args.repeats):
            start = time.perf_counter()
            imported, rendered, rows = one(base, pack, i)
            total = time.perf_counter() - start
            results.append((imported, rendered, total))
            print(f"  repeat {i + 1}: import {imported:.1f} s, Results render {rendered:.1f} s "
                  f"({rows} runs in its table), total {total:.1f} s", flush=True)

    def summary(k: int) -> str:
        xs = [r[k] for r in results]
        return f"{statistics.median(xs):.1f} s (range {min(xs):.1f}-{max(xs):.1f})"

    print(f"pack import (new process, CLI): {summary(0)}")
    print(f"Results first render (new process, AppTest, the page's own time): {summary(1)}")
    print(f"import to rendered Results, wall (goal <= 30 s): {summary(2)}")


if __name__ == "__main__":
    main()
