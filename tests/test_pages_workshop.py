"""The pages for a new user and a workshop: per-stage ETA, forms that show what applies,
Models cards, result summaries and the Jobs page (attendees, the instructor token and the Class
page: test_pages_owners.py).

Rows are written through the storage verbs; owners through submit(..., owner=) or, for seeded
rows, tests.test_pages.own."""

from __future__ import annotations

import re
from datetime import timedelta

from pages.ui import bert_params, first_sentence, stage_eta, stage_eta_text, without_paths
from storage import jobs as store
from storage.models import utcnow
from tests.test_pages import NAME, app, own


def finished(method: str, owner: str = NAME, metrics: dict | None = None,
             dataset: str = "rotten-tomatoes", p50: float = 10.0) -> int:
    """A done job with metrics and one batch-1 latency row, owned by `owner`."""
    job = store.enqueue(method, {"type": "X", "version": 1, "data": {"scheme": "int8-dynamic"}},
                        "default", dataset)
    store.claim(1, job_id=job)
    store.save_results(job, {"model": f"job:{job}", "dataset": dataset, "accuracy": 0.84,
                             "device": "cpu", **(metrics or {})},
                       [{"role": "self", "batch_size": 1, "seq_len": 64, "p50_ms": p50,
                         "p95_ms": p50 * 1.1, "throughput_per_s": 1000 / p50,
                         "device": "cpu"}], [])
    store.finish(job, output_model=f"job:{job}")
    own(job, owner)
    return job


def running(owner: str = NAME, model: str = "default") -> int:
    job = store.enqueue("evaluate", {"data": {}}, model, "rotten-tomatoes")
    store.claim(1, job_id=job)
    own(job, owner)
    return job


# --------------------------------------------------------------------------- ETA (13.5)


def test_eta_is_the_current_stages_only() -> None:
    t0 = utcnow() - timedelta(seconds=10)  # recent heartbeats: the reaper leaves it running
    job = running()
    store.report_progress(job, 0.1, "training", now=t0, stage="training", stage_progress=0.0)
    d = store.job_as_dict(store.get_job(job))
    assert stage_eta_text(d, now=t0 + timedelta(seconds=5)) == "", "nothing at 0 %"
    store.report_progress(job, 0.5, "step 20/80", now=t0 + timedelta(seconds=20),
                          stage="training", stage_progress=0.2)
    d = store.job_as_dict(store.get_job(job))
    assert stage_eta(d, now=t0 + timedelta(seconds=20)) == 80
    assert stage_eta_text(d, now=t0 + timedelta(seconds=20)) == \
        "this stage: about 1:20 left (training)"
    # a new stage restarts the clock; at 1 % of it there is no estimate at all
    store.report_progress(job, 0.9, "timing", now=t0 + timedelta(seconds=100), stage="timing",
                          stage_progress=0.01)
    d = store.job_as_dict(store.get_job(job))
    assert stage_eta_text(d, now=t0 + timedelta(seconds=101)) == ""
    store.report_progress(job, 0.95, "timing", now=t0 + timedelta(seconds=110),
                          stage="timing", stage_progress=0.5)
    d = store.job_as_dict(store.get_job(job))
    assert stage_eta_text(d, now=t0 + timedelta(seconds=110)) == \
        "this stage: about 0:10 left (timing)"
    assert stage_eta_text({"status": "running", "stage_progress": None}) == ""


def test_jobs_and_home_show_the_stage_eta() -> None:
    job = store.enqueue("finetune", {"data": {}}, "minilm-l6", "rotten-tomatoes",
                        alias="default")
    store.claim(1, job_id=job)
    own(job, NAME)
    # half the stage in 20 minutes: about 20 minutes left (the pages take their own time
    # to render, so the minutes, not the seconds, are checked)
    store.report_progress(job, 0.3, "step 3/10", now=utcnow() - timedelta(seconds=1200),
                          stage="training", stage_progress=0.0)
    store.report_progress(job, 0.6, "step 5/10", stage="training", stage_progress=0.5)
    for page in ("pages/jobs.py", "pages/home.py"):
        at = app(page)
        texts = [p.text or "" for p in at.get("progress")]
        assert any(re.search(r"this stage: about 2[01]:\d\d left", t) and "(training)" in t
                   for t in texts), texts
        assert not any("ETA" in t for t in texts)


# --------------------------------------------------------------------------- forms (13.9)


def test_quantize_form_hides_what_does_not_apply_and_blocks_out_of_range() -> None:
    at = app("pages/compress.py")
    at.session_state["method"] = "quantize"
    at.run()
    keys = {w.key for w in at.number_input} | {w.key for w in at.selectbox}
    assert "cfg_quantize_calibration_examples" not in keys
    assert "cfg_quantize_observer" not in keys
    at.selectbox(key="cfg_quantize_scheme").set_value("int8-static").run()
    keys = {w.key for w in at.number_input} | {w.key for w in at.selectbox}
    assert {"cfg_quantize_calibration_examples", "cfg_quantize_observer"} <= keys
    at.number_input(key="cfg_quantize_calibration_examples").set_value(30000).run()
    assert at.button(key="launch").disabled
    assert any("must be at most 20000" in e.value for e in at.error), "said in plain text"
    assert any("must be at most 20000" in w.value for w in at.warning)
    at.number_input(key="cfg_quantize_calibration_examples").set_value(128).run()
    assert not at.button(key="launch").disabled


def test_compress_summary_is_a_whole_sentence() -> None:
    at = app("pages/compress.py")
    at.session_state["method"] = "quantize"
    at.run()
    summary = next(c.value for c in at.caption if c.value.startswith("Quantize a model"))
    assert summary.endswith("`quantize_`.") and "weights on GPUs" in summary
    assert first_sentence("One two\nthree. Four.") == "One two three."


# --------------------------------------------------------------------------- Models (13.12)


def test_preset_card_has_parameters_and_size() -> None:
    assert bert_params(12, 768, 3072, num_labels=2) == 109_483_778  # BERT-base + 2-way head
    at = app("pages/models.py")
    at.selectbox(key="model_choice").set_value("preset:bert-base").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == "109.5 M" and metrics["Size"] == "437.9 MB"


def test_other_model_shows_a_helpful_card() -> None:
    at = app("pages/models.py")
    at.selectbox(key="model_choice").set_value("other (path or hub id)").run()
    assert any("hub id" in i.value and "LAB_MODEL_DIRS" in i.value for i in at.info)
    assert not at.error


def test_job_models_are_described_and_a_label_mismatch_is_warned(tiny_model_dir) -> None:
    job = finished("quantize")
    store.register_model(f"job:{job}", str(tiny_model_dir), "job", job_id=job,
                         method="quantize")
    at = app("pages/models.py")
    at.selectbox(key="model_choice").set_value(f"job:{job}").run()
    assert any("Made by quantize of default" in c.value and "scheme=int8" in c.value
               for c in at.caption), [c.value for c in at.caption]
    at.selectbox(key="dataset_choice").set_value("bbc-news").run()
    assert any("predicts 2 labels" in w.value and "has 5" in w.value for w in at.warning)
    assert at.button(key="submit_model_job").label.startswith("Fine-tune")
    assert list(at.dataframe[0].value.columns) == ["label", "text"], "label first: visible"


def test_teacher_being_built_is_progress_not_an_error() -> None:
    store.enqueue("finetune", {"data": {}}, "minilm-l6", "rotten-tomatoes", alias="default")
    at = app("pages/models.py")
    assert not at.error, [e.value for e in at.error]
    assert any("being built" in i.value for i in at.info)
    at = app("pages/compress.py")
    assert any("still being built" in i.value for i in at.info)
    at.button(key="launch").click().run()
    assert any("starts when the teacher is ready" in s.value for s in at.success), \
        [e.value for e in at.error]
    job = store.list_jobs(limit=1)[0]
    assert job.model == "default" and job.owner == NAME


def test_uploaded_csv_is_offered_on_compress_without_its_path(tiny_csv) -> None:
    at = app("pages/compress.py", name=None)
    at.session_state["attendee"] = NAME
    at.session_state["uploads"] = {f"csv:{tiny_csv}": "reviews.csv"}
    at.run()
    box = at.selectbox(key="compress_dataset")
    assert f"csv:{tiny_csv}" in box.options or "reviews.csv (your CSV)" in box.options
    assert str(tiny_csv.parent) not in " ".join(map(str, box.options))
    msg = f"csv:{tiny_csv}: not a readable CSV file"
    assert without_paths(msg, {f"csv:{tiny_csv}": "reviews.csv"}) == \
        "reviews.csv: not a readable CSV file"


def latin1_semicolon_csv(rows: int = 40) -> bytes:
    """A spreadsheet's export: Latin-1 bytes (é, ü, £), semicolons between the fields."""
    lines = ["text;label"] + [f"Caf\u00e9 n\u00b0{i}, d\u00e9j\u00e0 vu \u00fcber \u00a3{i};"
                              f"{'pos' if i % 2 else 'neg'}" for i in range(rows)]
    return "\n".join(lines).encode("latin-1")


def test_a_latin1_semicolon_upload_reads_and_a_bad_one_hides_the_server_path() -> None:
    """13.6 through the Models page's own uploader: the delimiter and the encoding are found,
    the preview shows the labels; a file that cannot be read says what to do and never the
    server's path (uploads are stored under LAB_HOME)."""
    from storage import settings

    at = app("pages/models.py")
    at.selectbox(key="model_choice").set_value("preset:bert-base").run()
    at.selectbox(key="dataset_choice").set_value("upload a CSV").run()
    at.file_uploader(key="csv_upload").set_value(
        ("reviews.csv", latin1_semicolon_csv(), "text/csv")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    preview = at.dataframe[0].value
    assert set(preview["label"]) <= {"neg", "pos"} and "Caf\u00e9" in preview["text"].iloc[0]
    captions = [c.value.replace("\\", "") for c in at.caption]  # markdown escapes
    assert "User CSV file reviews.csv. Read as cp1252." in captions, captions
    assert any("reviews.csv" in c and "Compress" in c for c in captions)

    at.file_uploader(key="csv_upload").set_value(
        ("broken.csv", b"title;stars\nfine;5\n", "text/csv")).run()
    shown = " ".join(e.value for e in at.error)
    assert "broken.csv" in shown and "text" in shown, shown
    home = str(settings.lab_home())
    page_text = " ".join(str(getattr(el, "value", "")) for el in
                         [*at.error, *at.warning, *at.info, *at.caption, *at.markdown])
    assert home not in page_text and "uploads" not in page_text, "no server path in the page"


def test_home_promises_only_what_the_frontier_does() -> None:
    at = app()
    assert not any("bigger markers" in m.value for m in at.markdown)


# --------------------------------------------------------------------------- Jobs (13.16)


def test_finished_jobs_show_a_result_summary() -> None:
    source = finished("quantize")
    reused = finished("quantize", metrics={
        "accuracy_delta_vs_parent": -0.003, "speedup_vs_parent": {"1": 1.12, "32": 2.5},
        "speedup_vs_parent_ci": {"1": [1.05, 1.2]}, "size_ratio_vs_parent": 3.9,
        "why_not_faster": "attention is 40 % of the time at this length"})
    from sqlalchemy import update

    from storage.db import session_scope
    from storage.models import Job

    with session_scope() as s:
        s.execute(update(Job).where(Job.id == reused).values(
            reused_from=source, origin="pack lab.pack, measured on cpu"))
    at = app("pages/jobs.py")
    text = " ".join(m.value for m in at.markdown)
    assert "accuracy 84.0%" in text and "-0.3 points" in text
    assert "1.12x at batch 1 (95 % interval 1.05-1.20x)" in text and "2.50x at batch 32" in text
    assert "3.90x smaller" in text
    captions = " ".join(c.value for c in at.caption)
    assert "attention is 40" in captions
    assert f"result reused from job {source} \\(run at" in captions
    assert "imported: pack lab" in captions


def test_jobs_page_lists_live_jobs_first_and_finished_ones_a_page_at_a_time() -> None:
    from pages.jobs import PAGE

    old = [finished("quantize") for _ in range(PAGE + 2)]
    live = running()
    at = app("pages/jobs.py")
    assert [h.value for h in at.subheader] == ["Queued and running", "Finished"]
    cards = [m.value for m in at.markdown if m.value.startswith("**Job ")]
    assert cards[0].startswith(f"**Job {live}**")
    assert len(cards) == 1 + PAGE, "one page of finished jobs"
    assert f"**Job {old[0]}**" not in " ".join(cards), "the oldest are on the next page"
    at.button(key="jobs_more").click().run()
    cards = [m.value for m in at.markdown if m.value.startswith("**Job ")]
    assert len(cards) == 1 + len(old) and not [b for b in at.button if b.key == "jobs_more"]
    store.finish(live)  # it leaves the live list: the next full render has it under Finished
    at.run()
    assert [h.value for h in at.subheader] == ["Finished"]


def test_failed_job_shows_one_line_and_the_traceback_in_details() -> None:
    job = running()
    store.fail(job, "the model has no classifier head; fine-tune it first")
    from sqlalchemy import update

    from storage.db import session_scope
    from storage.models import Job

    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job).values(
            error_detail="Traceback (most recent call last):\n  File x\nKeyError: 'head'"))
    at = app("pages/jobs.py")
    assert [e.value for e in at.error] == ["the model has no classifier head; fine-tune it first"]
    assert "Details" in [e.label for e in at.expander]
    assert any("KeyError" in c.value for c in at.code)


def test_delete_asks_first() -> None:
    job = finished("quantize")
    at = app("pages/jobs.py")
    at.button(key=f"delete_{job}").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    store.get_job(job)  # still there
    at.button(key=f"delete_no_{job}").click().run()
    store.get_job(job)
    at.button(key=f"delete_{job}").click().run()
    at.button(key=f"delete_yes_{job}").click().run()
    assert not at.exception
    assert not store.list_jobs(), "deleted after the confirmation"


def test_jobs_page_says_which_worker_runs_what() -> None:
    worker = store.register_worker("cpu (2 threads)")
    job = store.enqueue("evaluate", {"data": {}}, "default", "rotten-tomatoes")
    store.claim(worker, job_id=job)
    own(job, NAME)
    at = app("pages/jobs.py")
    assert any(f"runs job {job}" in c.value for c in at.caption)
    assert any("on " in (p.text or "") and "cpu (2 threads)" in (p.text or "")
               for p in at.get("progress"))


def test_heads_marks_are_explained_and_removal_is_no_gain(tiny_csv) -> None:
    from tests.test_heads_page import seed_scores

    seed_scores(f"csv:{tiny_csv}")
    at = app("pages/heads.py")
    assert any("✖" in c.value and "○" in c.value for c in at.caption)
    removed = next(m for m in at.metric if m.label == "Heads to remove")
    assert not removed.delta, "a share of heads removed is not shown as a gain"
