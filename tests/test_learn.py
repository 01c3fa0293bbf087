"""The Learn page under AppTest: every lesson renders with no runs and with stored runs (its
takeaways carry the numbers of those rows), "run it" queues exactly the missing jobs once,
each lesson's jobs pass config validation, and imported runs are never paired with local
ones. Rows are stored directly (tests/test_results_page.add_run): no model is trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from engine import packs
from engine.reports import lessons as L
from engine.submit import build_config
from storage import jobs as store
from storage import queries
from storage.db import dispose_all
from tests.conftest import ROOT
from tests.test_results_page import add_run

NAME = "learner"
RT = "rotten-tomatoes"


def page(**state: Any) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "learn.py"), default_timeout=60)
    at.session_state["attendee"] = NAME
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def teacher() -> int:
    return add_run("finetune", {"max_steps": 5}, "minilm-l6", RT, None, accuracy=0.85,
                   size_mb=90.9, alias="default")


def step_run(lesson: str, key: str, parent: int, *, accuracy: float, size_mb: float,
             speedup: dict[int, float], model: str = "default",
             extra: dict[str, Any] | None = None) -> int:
    """A done run of one lesson step, as the runner stores it (config: the step's values)."""
    step = next(s for s in L.BY_KEY[lesson].steps if s.key == key)
    return add_run(step.method, dict(step.values), model, step.dataset, parent,
                   accuracy=accuracy, size_mb=size_mb, speedup=speedup, extra=extra)


def int8_extra(eager: float, compiled: float, alone: float) -> dict[str, Any]:
    return {"parent_runtime": "compiled",
            "speedup_by_runtime": {"eager": {"1": eager, "32": eager},
                                   "compiled": {"1": compiled, "32": compiled + 0.4}},
            "compile_gain_parent": {"1": alone, "32": alone}}


def sweep_run() -> int:
    """A done seqlen sweep of the base encoder on BBC News texts, as lesson 5 queues it: time
    per token lowest at 64 tokens, attention overtaking the feed-forward block at 256."""
    (step,) = L.BY_KEY["seqlen"].steps
    timings = {16: (4.0, 1.0, 2.0), 32: (5.0, 1.5, 2.5), 64: (6.4, 2.0, 3.2),
               128: (14.0, 6.0, 6.0), 256: (40.0, 22.0, 14.0), 512: (130.0, 90.0, 30.0)}
    sweep = [{"role": "self", "seq_len": n, "batch_size": 1, "runtime": "eager", "p50_ms": p,
              "iqr_ms": 0.1, "runs": 30} for n, (p, _, _) in timings.items()]
    split = [{"role": "self", "seq_len": n, "batch_size": 1, "runtime": "eager", "full_ms": p,
              "attention_ms": a, "ffn_ms": f, "attention_share": a / p}
             for n, (p, a, f) in timings.items()]
    job = store.enqueue("seqlen", {"type": "SeqlenConfig", "version": 1,
                                   "data": dict(step.values)}, step.model, step.dataset)
    store.save_results(job, {"model": step.model, "dataset": step.dataset, "device": "cpu",
                             "seqlen_sweep": sweep, "attention_split": split}, [], [])
    store.finish(job, None)
    return job


def seed_lessons() -> dict[str, int]:
    """The teacher and one done run of every lesson step."""
    t = teacher()
    ids = {"teacher": t}
    ids["linear"] = step_run("quantize", "linear", t, accuracy=0.851, size_mb=58.6,
                             speedup={1: 3.0, 32: 3.5}, extra=int8_extra(1.3, 3.0, 1.2))
    ids["all"] = step_run("quantize", "all", t, accuracy=0.847, size_mb=23.1,
                          speedup={1: 3.1, 32: 3.6}, extra=int8_extra(1.4, 3.1, 1.2))
    for key, acc, x in (("heads", 0.854, 1.13), ("layers", 0.841, 1.67),
                        ("unstructured", 0.827, 0.98)):
        ids[key] = step_run("prune", key, t, accuracy=acc, size_mb=85.0, speedup={1: x, 32: x})
    for n, acc, x in ((2, 0.80, 2.6), (3, 0.836, 1.9), (4, 0.845, 1.4)):
        ids[f"layers{n}"] = step_run("distill", f"layers{n}", t, accuracy=acc, size_mb=70.0,
                                     speedup={1: x, 32: x}, extra={"layers": n})
    ids["student_int8"] = step_run("frontier", "student_int8", ids["layers3"], accuracy=0.838,
                                   size_mb=18.0, speedup={1: 2.9, 32: 3.0},
                                   model=f"job:{ids['layers3']}")
    ids["sweep"] = sweep_run()
    return ids


# --------------------------------------------------------------------------- jobs and matching


def test_every_lesson_job_passes_config_validation() -> None:
    for lesson in L.LESSONS:
        assert lesson.steps, lesson.key
        for step in lesson.steps:
            stored = build_config(step.method, values=step.values).to_json()
            assert L.config_matches(step.values, {"config": stored}), (lesson.key, step.key)


def test_a_run_matches_by_method_model_dataset_config_and_status() -> None:
    step = L.BY_KEY["quantize"].steps[1]
    run = {"id": 5, "method": "quantize", "status": "done", "model": "default", "dataset": RT,
           "config": build_config("quantize", values={"scheme": "int8-dynamic"}).to_json()}
    found = L.match(L.BY_KEY["quantize"], [run])
    assert found[step.key] == [run] and found["linear"] == [], "embeddings default to true"
    for change in ({"status": "failed"}, {"status": "cancelled"}, {"model": "minilm-l6"},
                   {"dataset": "bbc-news"}, {"method": "prune"}):
        assert L.match(L.BY_KEY["quantize"], [{**run, **change}])[step.key] == [], change


# --------------------------------------------------------------------------- the page


def test_every_lesson_renders_with_no_runs() -> None:
    at = page()
    assert [t.label for t in at.tabs] == [lesson.title for lesson in L.LESSONS]
    infos = [i.value for i in at.info]
    for lesson in L.LESSONS:
        assert lesson.empty in infos, lesson.key
        assert at.button(key=f"learn_run_{lesson.key}").label.startswith("Run it (")
    assert not at.get("plotly_chart")


def test_every_lesson_reads_its_stored_runs() -> None:
    seed_lessons()
    at = page()
    assert not at.info, [i.value for i in at.info]
    assert len(at.get("plotly_chart")) == len(L.LESSONS)
    body = text(at)
    # 1: int8 speedups, its accuracy cost, compiling, the embeddings' share from the sizes
    assert ("On this machine, int8 of the Linear layers and embeddings made the teacher 3.1x "
            "faster at batch 1 and 3.6x at batch 32 (compiled against compiled, paired) and "
            "cost 0.3 points of accuracy") in body
    assert "run eager, int8 was 1.40x faster at batch 1; compiled, 3.1x" in body
    assert "made the fp32 teacher 1.20x faster" in body
    embeddings = (58.6 - 23.1) / 0.75
    assert f"about {embeddings:.0f} of the teacher's 90.9 MB ({embeddings / 90.9:.0%})" in body
    # 2: pruning, unstructured no faster
    assert "removing 40 % of the heads made the teacher 1.13x faster at batch 1" in body
    assert "gained 0.4 points" in body
    assert "slower (0.98x the speed) at batch 1" in body and "bought no speed here" in body
    assert "Of these, a third of the layers gave the most speed (1.67x" in body
    # 3: distillation by depth
    assert "a 3-layer student kept 98.4% of the teacher's accuracy (cost 1.4 points of " \
           "accuracy) and ran 1.90x faster at batch 1" in body
    assert "The shallowest student that kept at least 98 % was the 3-layer one" in body
    # 4: chained 3-layer student + int8; teacher 12 ms at batch 1 (eager, paired rows)
    assert "the 3-layer student was 1.90x faster than the teacher and int8 made it 2.9x " \
           "faster again, about 5.5x in all (eager, paired at each step), at 83.8% accuracy" in body
    # 5: sequence length, on the base encoder itself
    assert "On this machine, MiniLM-L6 (the base encoder) on BBC News texts took 4.0 ms at 16 " \
           "tokens and 130.0 ms at 512 (batch 1): 32x the length, 32.5x the time" in body
    assert "The time per token was lowest at 64 tokens (100 µs)" in body
    assert "it overtook the feed-forward block at 256 tokens" in body
    # 90 ms of attention at 512 tokens against the best rate, 2 ms per 64 tokens: 16 ms
    assert "its 90 ms at 512 tokens would be about 16 ms and the model 2.3x faster" in body


def test_the_budget_slider_picks_the_most_accurate_model_that_fits() -> None:
    ids = seed_lessons()
    rows = L.frontier_rows(queries.runs_table(), 1)
    chained = rows[rows["job"] == ids["student_int8"]].iloc[0]
    assert chained["latency_ms"] == pytest.approx(12.0 / (1.9 * 2.9))
    assert chained["label"] == "distill to 3 layers → int8-dynamic + embeddings"
    at = page()
    slider = at.slider(key="learn_budget_1")
    slider.set_value(round(chained["latency_ms"] + 0.05, 1)).run()
    body = text(at)
    # only the chained student (2.18 ms) fits 2.2 ms; every other model is slower
    assert f"ship **{chained['label']}** (job {ids['student_int8']}): 83.8% accuracy" in body
    at.slider(key="learn_budget_1").set_value(slider.max).run()
    assert "ship **prune heads 40%**" in text(at), "the most accurate of all fits"


def test_run_it_queues_exactly_the_missing_jobs_and_only_once() -> None:
    t = teacher()
    at = page()
    for lesson in L.LESSONS:
        before = {j.id for j in store.list_jobs()}
        at.button(key=f"learn_run_{lesson.key}").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        new = [store.job_as_dict(j) for j in store.list_jobs() if j.id not in before]
        expected = [s for s in lesson.steps if lesson.key != "frontier" or s.key != "student"]
        assert sorted(j["method"] for j in new) == sorted(s.method for s in expected), lesson.key
        for job in new:
            assert job["owner"] == NAME and job["status"] == "queued"
        found = L.match(lesson, [store.job_as_dict(j) for j in store.list_jobs()])
        assert all(found[s.key] for s in lesson.steps), lesson.key
        at.button(key=f"learn_run_{lesson.key}").click().run()
        assert {j.id for j in store.list_jobs()} == before | {j["id"] for j in new}, \
            "a second click queues nothing"
    quantized = store.list_jobs(method="quantize", limit=1)[0]
    student = next(j for j in store.list_jobs(method="distill")
                   if j.config["data"]["student_layers"] == 3)
    assert quantized.model == f"job:{student.id}" and quantized.parent_id == student.id, \
        "lesson 4 chains int8 on lesson 3's 3-layer student, not on a new one"
    assert store.get_job(student.id).parent_id == t
    (sweep,) = store.list_jobs(method="seqlen")
    assert (sweep.model, sweep.dataset, sweep.parent_id) == ("minilm-l6", "bbc-news", None), \
        "lesson 5 sweeps the base encoder itself"
    assert sweep.config["data"]["lengths"] == L.LENGTHS and sweep.config["data"]["split"]
    assert [j.id for j in store.list_jobs(method="finetune")] == [t], "no fine-tune is queued"


def test_a_chained_step_on_a_new_student_waits_on_the_job_just_queued() -> None:
    teacher()
    at = page()
    at.button(key="learn_run_frontier").click().run()
    student, quantized = (store.list_jobs(method=m)[0] for m in ("distill", "quantize"))
    assert quantized.model == f"job:{student.id}"


# --------------------------------------------------------------------------- provenance


def _pack_lab(tmp_path: Path, monkeypatch) -> tuple[Path, dict[str, int]]:
    """A pack made in another lab: a teacher, int8 at 2.2x and a 3-layer student at 1.7x."""
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "pack-lab"))
    dispose_all()
    t = teacher()
    ids = {"all": step_run("quantize", "all", t, accuracy=0.84, size_mb=23.0,
                           speedup={1: 2.2, 32: 2.4}),
           "layers3": step_run("distill", "layers3", t, accuracy=0.83, size_mb=70.0,
                               speedup={1: 1.7, 32: 1.7}, extra={"layers": 3})}
    pack = tmp_path / "demo.labpack"
    packs.export_pack(pack, list(ids.values()))
    return pack, ids


def test_imported_runs_are_never_paired_with_local_ones(tmp_path, monkeypatch, lab_home) -> None:
    pack, _ = _pack_lab(tmp_path, monkeypatch)
    monkeypatch.setenv("LAB_HOME", str(lab_home))
    dispose_all()
    local_t = teacher()
    local = step_run("quantize", "all", local_t, accuracy=0.847, size_mb=23.1,
                     speedup={1: 3.1, 32: 3.6})
    ids = packs.import_pack(pack)
    imported_student = max(ids.values())
    # a local int8 of the imported student: paired here, but its chain crosses provenance
    crossing = step_run("frontier", "student_int8", imported_student, accuracy=0.82,
                        size_mb=18.0, speedup={1: 2.5, 32: 2.5},
                        model=f"job:{imported_student}")
    runs = queries.runs_table()
    origin = store.get_job(imported_student).origin
    assert L.sources(runs) == [None, origin]
    groups = L.by_origin(runs)
    local_rows = L.frontier_rows(groups[None], 1)
    assert set(local_rows["job"].dropna()) == {local}, "the crossing chain is left out"
    assert crossing not in set(L.frontier_rows(groups[origin], 1)["job"].dropna())

    at = page()
    body = text(at)
    assert "made the teacher 3.1x faster at batch 1" in body and "2.2x" not in body
    assert "1.70x" not in body, "the pack's student is not this machine's"
    assert at.button(key="learn_run_distill").label == "Run it (3 jobs)", \
        "imported runs do not count as run here"
    at.radio(key="learn_source").set_value(origin).run()
    body = text(at)
    assert "Where the pack was measured, int8 of the Linear layers and embeddings made the " \
           "teacher 2.2x faster at batch 1" in body and "3.1x" not in body
    assert "a 3-layer student kept" in body and "1.70x faster at batch 1" in body


def test_run_it_without_a_name_asks_for_one_and_queues_nothing() -> None:
    teacher()
    at = AppTest.from_file(str(ROOT / "pages" / "learn.py"), default_timeout=60)
    at.run()
    at.button(key="learn_run_quantize").click().run()
    assert any("Enter your name" in e.value for e in at.error)
    assert [j.method for j in store.list_jobs()] == ["finetune"]


def test_the_dashboard_navigates_to_learn() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["attendee"] = NAME
    at.run()
    at.switch_page("pages/learn.py")
    at.run()
    assert not at.exception and at.title[0].value == "Learn"


def test_lesson_5_reads_what_a_real_seqlen_job_stores(tiny_model_dir, tiny_csv) -> None:
    """The sweep's rows as the runner writes them (a tiny BERT, two lengths, few runs)."""
    from engine.submit import submit
    from engine.worker import run_claimed

    job = submit("seqlen", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                 sets=["lengths=16,32", "batch_sizes=[1]", "warmup=1", "latency_runs=3",
                       "latency_max_runs=0"])
    assert store.claim(None, job_id=job) is not None
    run_claimed(job)
    run = next(r for r in queries.runs_table() if r["id"] == job)
    rows = L.sweep_rows(run)
    assert list(rows["seq_len"]) == [16, 32] and rows["attention_ms"].notna().all()
    lines = L.seqlen_takeaways(rows, None)
    assert lines[0].startswith("On this machine, MiniLM-L6 (the base encoder) on BBC News "
                               "texts took")
    assert any(line.startswith("Attention took") for line in lines)


def test_a_lesson_waiting_for_its_jobs_says_so() -> None:
    at = page()
    assert at.button(key="learn_run_seqlen").label == "Run it (1 job)"
    at.button(key="learn_run_seqlen").click().run()
    assert [(j.method, j.model) for j in store.list_jobs()] == [("seqlen", L.BASE)], \
        "the sweep runs on the base encoder at once: nothing to build or wait for first"
    (sweep,) = store.list_jobs()
    at = page()
    assert any(f"Waiting for job {sweep.id} (queued, 0%)" in c.value for c in at.caption)
    assert L.BY_KEY["seqlen"].empty in [i.value for i in at.info], "no sweep finished yet"


def test_the_page_and_its_run_it_stay_light(tmp_path) -> None:
    """Queueing every lesson's jobs, then rendering every lesson with runs, leaves torch
    unimported (the dashboard's process never loads a model for this page)."""
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        f"os.environ['LAB_HOME'] = {str(tmp_path / 'queue')!r}\n"
        "from streamlit.testing.v1 import AppTest\n"
        "from engine.reports.lessons import LESSONS\n"
        "from storage.db import dispose_all\n"
        "from tests.test_learn import NAME, seed_lessons, teacher\n"
        "def page():\n"
        "    at = AppTest.from_file('pages/learn.py', default_timeout=60)\n"
        "    at.session_state['attendee'] = NAME; at.run(); return at\n"
        "teacher(); at = page()\n"
        "for lesson in LESSONS: at.button(key=f'learn_run_{lesson.key}').click().run()\n"
        "assert not at.exception and not at.error, (at.exception, at.error)\n"
        f"os.environ['LAB_HOME'] = {str(tmp_path / 'runs')!r}; dispose_all()\n"
        "seed_lessons(); at = page()\n"
        "assert not at.exception and not at.info, (at.exception, at.info)\n"
        "heavy = [m for m in ('torch', 'transformers', 'bertviz') if m in sys.modules]\n"
        "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_a_fresh_lab_with_only_a_pack_reads_the_pack(tmp_path, monkeypatch, lab_home) -> None:
    pack, _ = _pack_lab(tmp_path, monkeypatch)
    monkeypatch.setenv("LAB_HOME", str(lab_home))
    dispose_all()
    packs.import_pack(pack)
    at = page()
    assert at.radio(key="learn_source").value is not None
    body = text(at)
    assert "Where the pack was measured, int8 of the Linear layers and embeddings made the " \
           "teacher 2.2x faster at batch 1" in body
    assert at.button(key="learn_run_quantize").label == "Run it (2 jobs)"


def test_the_frontier_prices_one_length_and_counts_a_reused_job_once() -> None:
    ids = seed_lessons()
    runs = queries.runs_table()
    heads = next(r for r in runs if r["id"] == ids["heads"])
    reused = {**heads, "id": 999, "reused_from": heads["id"]}
    longer = {**heads, "id": 1000, "metrics": {**heads["metrics"], "seq_len": 128}}
    jobs = set(L.frontier_rows([*runs, reused, longer], 1)["job"].dropna())
    assert heads["id"] in jobs and 999 not in jobs and 1000 not in jobs
