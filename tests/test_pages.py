"""Every page renders under AppTest with seeded rows; the Models and Jobs widgets work."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from storage import jobs as store
from storage.db import session_scope
from storage.models import Job
from tests.conftest import ROOT

PAGES = ["pages/home.py", "pages/models.py", "pages/compress.py", "pages/jobs.py",
         "pages/results.py", "pages/class_.py", "pages/heads.py", "pages/attention.py",
         "pages/learn.py", "pages/hurts.py"]
NAME = "tester"


def own(job_id: int, owner: str) -> None:
    """Give a seeded row an owner (as submit(..., owner=) does)."""
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(owner=owner))


def app(page: str | None = None, name: str | None = NAME) -> AppTest:
    """The dashboard at `page`, in a session whose attendee name is `name` (None: not asked
    yet)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if name is not None:
        at.session_state["attendee"] = name
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def seed() -> dict[str, int]:
    """A done teacher run with metrics, a running job with curves, a failed and a queued one."""
    cfg = {"type": "FinetuneConfig", "version": 1, "data": {"max_steps": 5}}
    done = store.enqueue("finetune", cfg, "minilm-l6", "rotten-tomatoes", alias="default")
    store.claim(1, job_id=done)
    store.save_results(done, {"model": f"job:{done}", "dataset": "rotten-tomatoes",
                              "accuracy": 0.85, "macro_f1": 0.84, "size_mb": 90.9,
                              "params": 22_700_000, "layers": 6, "heads": 72, "device": "cpu"},
                       [{"role": "self", "batch_size": b, "seq_len": 64, "p50_ms": p,
                         "p95_ms": p * 1.1, "throughput_per_s": b / p * 1000, "device": "cpu"}
                        for b, p in ((1, 12.0), (32, 250.0))], [(0, 1, 1, 0.9)])
    store.add_curve_points(done, {"train_loss": (5, 0.4), "val_accuracy": (5, 0.85)})
    store.finish(done, output_model=f"job:{done}")
    store.register_model(f"job:{done}", "/nonexistent", "job", job_id=done, alias="default",
                         method="finetune", layers=6, heads=72, params=22_700_000, size_mb=90.9)
    running = store.enqueue("evaluate", {"data": {}}, f"job:{done}", "rotten-tomatoes",
                            parent_id=done)
    store.claim(1, job_id=running)
    store.report_progress(running, 0.4, "step 4/10")
    store.add_curve_points(running, {"train_loss": (10, 0.5), "val_accuracy": (10, 0.8)})
    failed = store.enqueue("evaluate", {"data": {}}, "minilm-l6", "rotten-tomatoes")
    store.claim(1, job_id=failed)
    store.fail(failed, "minilm-l6 has no classification head; fine-tune it first")
    queued = store.enqueue("evaluate", {"data": {}}, f"job:{done}", "bbc-news", parent_id=done)
    for job_id in (done, running, failed, queued):
        own(job_id, NAME)
    return {"done": done, "running": running, "failed": failed, "queued": queued}


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_empty(page: str) -> None:
    app(page)


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_with_rows(page: str) -> None:
    seed()
    at = app(page)
    assert at.title[0].value


def test_home_says_the_teacher_is_being_prepared(monkeypatch) -> None:
    monkeypatch.setenv("LAB_BUILD_TEACHER", "1")
    at = app()
    assert any("being prepared" in i.value for i in at.info)
    assert store.pending_alias_job("default") is not None, "first start queues the teacher"


def test_jobs_page_shows_progress_errors_and_cancels() -> None:
    ids = seed()
    at = app("pages/jobs.py")
    assert any("no classification head" in e.value for e in at.error)
    assert any("step 4/10" in (p.text or "") for p in at.get("progress"))
    # live curves for the running job; the finished job's only on request
    assert len(at.get("plotly_chart")) == 1
    at.toggle(key=f"show_curves_{ids['done']}").set_value(True).run()
    assert len(at.get("plotly_chart")) == 2
    at.button(key=f"cancel_{ids['queued']}").click().run()
    assert store.get_job(ids["queued"]).status == "cancelled"
    at.button(key=f"cancel_{ids['running']}").click().run()
    assert store.get_job(ids["running"]).cancel_requested


def test_models_page_cards_and_evaluate_button(tiny_csv) -> None:
    at = app("pages/models.py")
    at.selectbox(key="model_choice").set_value("minilm-l6").run()
    assert not at.exception
    assert any(m.label == "Layers" and m.value == "6" for m in at.metric)
    assert at.button(key="submit_model_job").label.startswith("Fine-tune")
    at.selectbox(key="dataset_choice").set_value("bbc-news").run()
    assert any(m.label == "Test" and m.value == "424" for m in at.metric)
    at.button(key="submit_model_job").click().run()
    assert any("Queued job" in s.value for s in at.success)
    job = store.list_jobs(limit=1)[0]
    assert (job.method, job.model, job.dataset) == ("finetune", "minilm-l6", "bbc-news")


def test_models_page_bad_model_path_shows_message(tmp_path) -> None:
    at = app("pages/models.py")
    at.selectbox(key="model_choice").set_value("other (path or hub id)").run()
    at.text_input(key="model_other").set_value(str(tmp_path)).run()
    assert not at.exception
    assert any("not a model directory" in e.value for e in at.error)


def test_results_page_chart_and_table() -> None:
    seed()
    at = app("pages/results.py")
    assert at.get("plotly_chart"), "the accuracy/latency scatter is drawn"
    assert len(at.dataframe[0].value) == 1


def test_compress_page_form_comes_from_the_config(tiny_model_dir) -> None:
    seed()
    at = app("pages/compress.py")
    at.session_state["method"] = "finetune"
    at.run()
    assert not at.exception
    from engine.methods.registry import get_method

    keys = {w.key for kind in (at.number_input, at.text_input, at.checkbox, at.selectbox)
            for w in kind}
    for info in get_method("finetune").config.fields_info():
        assert f"cfg_finetune_{info['name']}" in keys, info["name"]
    at.number_input(key="cfg_finetune_batch_size").set_value(8).run()
    at.button(key="launch").click().run()
    assert any("Queued job" in s.value for s in at.success), [e.value for e in at.error]
    job = store.list_jobs(limit=1)[0]
    assert job.method == "finetune" and job.config["data"]["batch_size"] == 8


def test_every_method_form_renders() -> None:
    """Each method's generated form draws (a list field with choices is a multiselect)."""
    from engine.methods.registry import methods

    seed()
    at = app("pages/compress.py")
    for name in methods():
        at.session_state["method"] = name
        at.run()
        assert not at.exception, (name, at.exception)
    at.session_state["method"] = "seqlen"
    at.run()
    assert at.multiselect(key="cfg_seqlen_runtimes").value == ["eager"]
