"""Benchmark: the Results page with 1,000 stored runs, rendered headless (target: under 1.5 s).

    LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_results_page [N]

Seeds N runs (default 1,000: a teacher, chains of quantize / prune / distill jobs with paired
latencies, 200 stored predictions each, a random-weight preset run) into a fresh temporary
LAB_HOME, then times the bulk read alone and the page under AppTest: the first render in a fresh
process (imports and an empty cache), a new session with an empty cache, warm reruns, and a
rerun with a run opened and two runs compared, and with the runtime choice "fastest". Unrun
this round (the shared CPU is busy; its numbers would be false). Not a test: nothing is asserted.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory(prefix="bench-results-") as home:
        os.environ["LAB_HOME"] = home
        os.environ["LAB_WORKER_AUTOSTART"] = "0"
        try:
            bench(n)
        finally:
            from storage.db import dispose_all

            dispose_all()


def bench(n: int) -> None:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from storage import queries
    from tests.conftest import ROOT
    from tests.test_results_page import seed_runs

    start = time.perf_counter()
    ids = seed_runs(n, n_examples=200)
    print(f"seeded {n} runs in {time.perf_counter() - start:.1f} s "
          f"(LAB_HOME={os.environ['LAB_HOME']})")

    reads = []
    for _ in range(5):
        start = time.perf_counter()
        runs = queries.runs_table()
        reads.append(time.perf_counter() - start)
    print(f"runs_table(): {len(runs)} runs in {1000 * statistics.median(reads):.0f} ms "
          f"(median of 5)")

    at = AppTest.from_file(str(ROOT / "pages" / "results.py"), default_timeout=120)
    start = time.perf_counter()
    at.run()
    cold = time.perf_counter() - start
    assert not at.exception, [e.message for e in at.exception]
    warm = []
    for _ in range(5):
        start = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - start)
    rows = len(at.dataframe[0].value)
    st.cache_data.clear()
    fresh = AppTest.from_file(str(ROOT / "pages" / "results.py"), default_timeout=120)
    start = time.perf_counter()
    fresh.run()
    new_session = time.perf_counter() - start
    at.session_state["results_run"] = ids[-2]
    at.session_state["results_compare"] = [ids[0], ids[-2]]
    at.run()  # computes the comparison (bootstrap intervals) once, then it is cached
    start = time.perf_counter()
    at.run()
    detail = time.perf_counter() - start
    assert not at.exception, [e.message for e in at.exception]
    at.session_state["results_runtime"] = "fastest"  # every run's rows searched per point
    at.session_state["results_unreliable"] = True
    at.run()
    start = time.perf_counter()
    at.run()
    fastest = time.perf_counter() - start
    assert not at.exception, [e.message for e in at.exception]
    print(f"Results page with {rows} runs in the table (target: under 1.5 s):")
    print(f"  first render in a fresh process (Streamlit start-up, imports, empty cache): "
          f"{cold:.2f} s")
    print(f"  new session, empty cache: {new_session:.2f} s")
    print(f"  rerun: {statistics.median(warm):.2f} s (median of 5, max {max(warm):.2f} s)")
    print(f"  rerun with a run open (lineage, diagnostics) and two runs compared: {detail:.2f} s")
    print(f"  the same at 'each model at its fastest runtime', unreliable shown: {fastest:.2f} s")


if __name__ == "__main__":
    main()
