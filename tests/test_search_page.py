"""The search's report and page: the winner's plain-words report says when its timing was
flagged; the Search page renders a stored search, refuses a bad budget and cancels a running
one (AppTest, no torch)."""

from __future__ import annotations

import pytest

from engine.reports import search_plan as P
from storage import jobs as store
from tests.conftest import ROOT


def test_the_winner_report_says_when_its_timing_was_flagged() -> None:
    from engine.search.report import winner_report

    def run(metrics: dict) -> int:
        job = store.enqueue("quantize", {"data": {}}, "default", "rotten-tomatoes")
        store.claim(1, job_id=job)
        store.save_results(job, {"model": f"job:{job}", "dataset": "rotten-tomatoes",
                                 "accuracy": 0.8, **metrics}, [], [(0, 1, 1, 0.9)])
        store.finish(job, output_model=f"job:{job}")
        return job

    start, quiet = run({}), run({})
    busy = run({"timing_warning": "The machine was busy while timing (load average 3.7 on "
                                  "2 cores)."})
    speed = {"speedup_vs_start": {"32": 2.0}, "speedup_runtime": "compiled"}
    calm = winner_report(start, {"id": quiet, "jobs": [quiet], "chain": "int8", **speed})
    assert "timing_warnings" not in calm and "trust" not in calm["sentence"]
    loud = winner_report(start, {"id": busy, "jobs": [quiet, busy], "chain": "x → int8",
                                 **speed})
    assert list(loud["timing_warnings"]) == [str(busy)]
    assert f"the timing of job {busy} was flagged (The machine was busy" in loud["sentence"]
    assert f"retime --model job:{busy} --set against=job:{start}" in loud["sentence"]


def test_the_search_page_renders_and_shows_a_search(monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from engine import search as S
    from engine.search import records

    sid = records.create({"status": "done", "model": "default", "dataset": "rotten-tomatoes",
                          "winner": 3, "prediction_source": "prior", "start_val_accuracy": 0.83,
                          "owner": "ann", "constraints": P.Constraints().__dict__,
                          "message": "The winner is job 3: distill to 3 layers.",
                          "minutes": 1.5, "candidates": [
                              {"id": 3, "jobs": [3], "chain": "distill to 3 layers",
                               "status": "met", "val_accuracy": 0.81,
                               "val_drop_ci": [0.002, 0.031],
                               "predicted": {"speedup": 2.0, "drop": 0.004},
                               "speedup_vs_start": {"32": 1.9}, "size_mb": 40.0},
                              {"id": None, "jobs": [], "status": "not run (no time left)",
                               "chain": "int8-dynamic, accuracy-aware (max_drop=0.008)",
                               "val_accuracy": None, "predicted": {"speedup": 1.5,
                                                                   "drop": 0.008},
                               "steps": [{"method": "quantize", "label": "x", "config": {
                                   "scheme": "int8-dynamic", "max_drop": 0.008}}]}]})
    launched = []
    monkeypatch.setattr(S, "launch", lambda *a, **k: launched.append((a, k)) or sid + 1)
    at = AppTest.from_file(str(ROOT / "pages" / "search.py"), default_timeout=30).run()
    assert not at.exception
    assert at.dataframe[0].value["chain"].tolist() == [
        "distill to 3 layers", "int8-dynamic, accuracy-aware (max_drop=0.008)"]
    assert "The winner is job 3" in at.success[0].value
    shown = at.dataframe[0].value
    assert shown["95 % interval (points)"].tolist()[0] == "0.2 to 3.1"
    assert shown["val drop (points)"].tolist()[0] == pytest.approx(2.0)
    assert any("accuracy-aware" in c.value for c in at.caption)
    at.button(key="search_start").click().run()
    assert not at.exception and launched
    (model, dataset, cons, owner), _ = launched[0]
    assert cons.max_drop == pytest.approx(0.01) and cons.batch == 32


def test_the_page_refuses_a_bad_budget_and_cancels_a_running_search() -> None:
    import os
    import socket

    from streamlit.testing.v1 import AppTest

    from engine.search import records

    sid = records.create({"status": "running", "model": "default", "owner": "",
                          "dataset": "rotten-tomatoes", "constraints": P.Constraints().__dict__,
                          "pid": os.getpid(), "host": socket.gethostname(),
                          "message": "running distill to 3 layers", "candidates": []})
    at = AppTest.from_file(str(ROOT / "pages" / "search.py"), default_timeout=30).run()
    at.number_input(key="search_drop").set_value(0.0)
    at.button(key="search_start").click().run()
    assert not at.exception
    assert any("admits no candidate" in e.value for e in at.error)
    assert [r["id"] for r in records.list_searches()] == [sid]  # nothing launched
    at.button(key=f"search_cancel_{sid}").click().run()
    assert records.load(sid)["cancel_requested"]
