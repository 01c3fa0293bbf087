"""Workshop pieces: the fastest runtime of a model (engine/reports/runtimes.py), Results'
"my runs" switch, the sentence on Compress and Results, and the workshop benchmark's pure
accounting (tests/benchmarks/bench_workshop.py)."""

from __future__ import annotations

from typing import Any

from engine.reports.runtimes import fastest_at, fastest_sentence, float_exports

CPU = "cpu"


def _row(bs: int, runtime: str, p50: float, seq_len: int = 64, threads: int = 2,
         device: str = CPU) -> dict[str, Any]:
    return {"batch_size": bs, "runtime": runtime, "p50_ms": p50, "seq_len": seq_len,
            "threads": threads, "device": device}


def _run(job: int, latency: list[dict], parent_id: int | None = None, method: str = "finetune",
         parent_latency: list[dict] | None = None, **metrics: Any) -> dict[str, Any]:
    return {"id": job, "method": method, "parent_id": parent_id, "model": "m",
            "output_model": f"job:{job}",
            "metrics": {"seq_len": 64, "latency": latency,
                        "parent_latency": parent_latency or [], **metrics}}


def test_fastest_runtime_is_paired_inside_one_job() -> None:
    teacher = _run(1, [_row(1, "eager", 13.5), _row(1, "compiled", 11.0),
                       _row(32, "eager", 243.0), _row(32, "compiled", 220.0)])
    f = fastest_at(teacher, [teacher], 32)
    assert (f.fastest, f.slower, f.job) == ("compiled", {"eager": 1.1}, 1)
    text = fastest_sentence(teacher, [teacher])
    assert "compiled at batch 1 (11.0 ms; 1.23x faster than eager)" in text
    assert "compiled at batch 32 (220.0 ms; 1.10x faster than eager)" in text
    assert "in this job, length 64, 2 threads, cpu" in text


def test_a_float_export_adds_onnxruntime_and_quantized_ones_do_not() -> None:
    teacher = _run(1, [_row(32, "eager", 243.0), _row(32, "compiled", 220.0)])
    parent_rows = [_row(32, "eager", 250.0), _row(32, "compiled", 225.0)]
    fp32 = _run(2, [_row(32, "onnxruntime", 147.0)], parent_id=1, method="export",
                parent_latency=parent_rows, export_quantize="none")
    int8 = _run(3, [_row(32, "onnxruntime", 70.0)], parent_id=1, method="export",
                parent_latency=parent_rows, export_quantize="int8-dynamic")
    # exported from a float source further up the chain: another model than the parent
    other = _run(4, [_row(32, "onnxruntime", 60.0)], parent_id=1, method="export",
                 parent_latency=parent_rows, export_quantize="none",
                 export_source="its float source job:0 was exported")
    runs = [teacher, fp32, int8, other]
    assert [r["id"] for r in float_exports(teacher, runs)] == [2]
    f = fastest_at(teacher, runs, 32)
    # from the export job's one interleaved run: its parent rows, never the teacher's own
    assert (f.fastest, f.job) == ("onnxruntime", 2)
    assert f.slower == {"compiled": 1.53, "eager": 1.7}
    text = fastest_sentence(teacher, runs)
    assert "onnxruntime at batch 32 (147.0 ms; 1.53x faster than compiled, 1.70x faster " \
           "than eager)" in text and "in export job 2" in text
    # the float export itself answers the same, from its own job
    assert fastest_at(fp32, runs, 32).slower == {"compiled": 1.53, "eager": 1.7}
    # an int8 export is its own model, timed under one runtime
    assert fastest_sentence(int8, runs).startswith("Only onnxruntime was timed")


def test_rows_of_another_setting_are_never_divided() -> None:
    # eager at length 64, compiled only at length 128; other threads; another device
    run = _run(1, [_row(32, "eager", 243.0), _row(32, "compiled", 100.0, seq_len=128),
                   _row(32, "compiled", 90.0, threads=4), _row(32, "compiled", 9.0,
                                                                device="cuda:0")])
    f = fastest_at(run, [run], 32)
    assert not f.slower and f.fastest == "eager"
    text = fastest_sentence(run, [run])
    assert text.startswith("Only eager was timed for this model (batch 32)")
    assert "(compiled only with another length, thread count or device" in text
    assert fastest_sentence(_run(5, []), []) is None


def test_one_runtime_is_said_plainly_and_mixed_batches_are_told_apart() -> None:
    run = _run(1, [_row(1, "eager", 12.0), _row(32, "eager", 250.0),
                   _row(32, "compiled", 200.0)])
    text = fastest_sentence(run, [run])
    assert "compiled at batch 32" in text and "At batch 1 only one runtime was timed." in text
    alone = _run(2, [_row(1, "eager", 12.0)])
    assert fastest_sentence(alone, [alone]).startswith("Only eager was timed for this model "
                                                      "(batch 1)")


# --------------------------------------------------------------------------- the pages


def _stored(method: str, owner: str, rows: list[dict], parent: int | None = None,
            parent_rows: list[dict] | None = None, **metrics: Any) -> int:
    """A done job of `owner` with metrics, its own latency rows and its parent's (paired)."""
    from storage import jobs as store
    from tests.test_pages import own

    job = store.enqueue(method, {"type": "X", "version": 1, "data": {}}, "default",
                        "rotten-tomatoes", parent_id=parent)
    store.claim(1, job_id=job)
    latencies = [{"role": role, "p95_ms": r["p50_ms"] * 1.1,
                  "throughput_per_s": r["batch_size"] / r["p50_ms"] * 1000, **r}
                 for role, group in (("self", rows), ("parent", parent_rows or []))
                 for r in group]
    store.save_results(job, {"model": f"job:{job}", "dataset": "rotten-tomatoes",
                             "accuracy": 0.83, "device": CPU, "seq_len": 64, **metrics},
                       latencies, [])
    store.finish(job, output_model=f"job:{job}")
    own(job, owner)
    return job


def _two_runtimes(eager: float, compiled: float) -> list[dict]:
    return [_row(1, "eager", eager / 20), _row(1, "compiled", compiled / 20),
            _row(32, "eager", eager), _row(32, "compiled", compiled)]


def _table_jobs(at) -> set[int]:
    """The runs in Results' table (the first dataframe; AppTest keeps no dataframe keys)."""
    return set(at.dataframe[0].value["job"])


def test_results_shows_my_runs_with_a_switch_and_the_fastest_runtime() -> None:
    from tests.test_pages import app

    ada = _stored("quantize", "Ada", _two_runtimes(240.0, 200.0))
    bob = _stored("prune", "Bob", _two_runtimes(230.0, 210.0))
    # Bob exported Ada's model to float ONNX: ONNX Runtime, paired with PyTorch in his job
    export = _stored("export", "Bob", [_row(32, "onnxruntime", 150.0)], parent=ada,
                     parent_rows=[_row(32, "eager", 245.0), _row(32, "compiled", 205.0)],
                     export_quantize="none")
    at = app("pages/results.py", name="Ada")
    assert _table_jobs(at) == {ada}, "my runs by default"
    at.selectbox(key="results_run").set_value(ada).run()
    text = " ".join(m.value for m in at.markdown)
    assert ("onnxruntime at batch 32 (150.0 ms; 1.37x faster than compiled, 1.63x faster "
            "than eager)" in text and f"in export job {export}" in text), text
    at.toggle(key="results_everyone").set_value(True).run()
    assert not at.exception
    assert _table_jobs(at) == {ada, bob, export}

    # a session whose runs have not finished yet is told how to see everyone's
    at = app("pages/results.py", name="Cy")
    assert any("switch on Everyone's runs" in i.value for i in at.info)
    at.toggle(key="results_everyone").set_value(True).run()
    assert _table_jobs(at) == {ada, bob, export}


def test_compress_says_which_runtime_was_fastest() -> None:
    from tests.test_pages import app

    _stored("quantize", "Ada", _two_runtimes(240.0, 200.0))
    _stored("quantize", "Ada", [_row(32, "eager", 100.0)])
    at = app("pages/compress.py", name="Ada")
    at.session_state["method"] = "quantize"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    captions = [c.value for c in at.caption]
    assert any("Fastest runtime here: compiled at batch 1 (10.0 ms; 1.20x faster than eager)"
               in c for c in captions), captions
    assert any(c.startswith("Only eager was timed for this model (batch 32)")
               for c in captions), captions


# --------------------------------------------------------------------------- the benchmark


def test_bench_accounting_counts_lost_twice_and_reused_jobs() -> None:
    from datetime import datetime, timedelta

    from tests.benchmarks.bench_workshop import account, fair_share, percentile

    assert percentile([], 95) is None
    assert percentile([0.1, 0.2, 0.3, 0.4, 1.0], 50) == 0.3
    assert abs(percentile([0.1, 0.2, 0.3, 0.4, 1.0], 95) - 0.88) < 1e-9  # linear

    def row(i, status="done", attempts=1, reused_from=None, key=None):
        return {"id": i, "status": status, "attempts": attempts, "reused_from": reused_from,
                "work_key": key or f"k{i}"}

    rows = [row(1, key="q"), row(2, attempts=0, reused_from=1, key="q"),
            row(3, attempts=2, key="p"),  # claimed twice (a reaped worker)
            row(4, key="p"),  # identical work that ran again instead of waiting
            row(5, status="failed"), row(6, status="queued", attempts=0)]
    acc = account([1, 2, 3, 4, 5, 6, 7], rows)
    assert acc["executed"] == 3 and acc["run_twice"] == [3] and acc["duplicate_work"] == 1
    assert acc["lost"] == [5, 7] and acc["submitted"] == 7
    assert acc["unfinished"] == [6], "a job still queued at the timeout is late, not lost"

    t = datetime(2026, 12, 2, 7, 0)
    starts = [("greedy", 0), ("greedy", 1), ("ada", 2), ("bob", 3), ("greedy", 4)]
    jobs = [{"owner": o, "started_at": t + timedelta(seconds=s)} for o, s in starts]
    verdict = fair_share(jobs + [{"owner": "greedy", "started_at": None}], "greedy",
                         ["ada", "bob"])
    assert verdict["fair"] and verdict["greedy_third"] == t + timedelta(seconds=4)
    late = [{**j, "started_at": t + timedelta(seconds=9)} if j["owner"] == "bob" else j
            for j in jobs]
    assert not fair_share(late, "greedy", ["ada", "bob"])["fair"]
    # decided before greedy's third started: both others already ran
    assert fair_share(jobs[:4], "greedy", ["ada", "bob"])["fair"]
    assert not fair_share(jobs[:3], "greedy", ["ada", "bob"])["fair"], "bob never started"
