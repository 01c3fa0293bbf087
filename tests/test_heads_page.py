"""The Heads page: the importance map of a stored scoring job, picking heads, launching jobs."""

from __future__ import annotations

from engine.toolkit.heads import parse_heads
from storage import jobs as store
from tests.test_pages import app

# 2 layers x 4 heads; head 1:3 was removed earlier (None).
SCORES = [[0.9, 0.1, 0.5, 0.3], [0.2, 0.7, 0.05, None]]


def seed_scores(dataset: str, model: str = "minilm-l6") -> int:
    cfg = {"type": "PruneConfig", "version": 1, "data": {"kind": "heads", "score_only": True}}
    job = store.enqueue("prune", cfg, model, dataset)
    store.claim(1, job_id=job)
    store.save_results(job, {"model": model, "dataset": dataset, "accuracy": 0.8,
                             "head_importance": SCORES, "head_importance_method": "gradient"},
                       [], [])
    store.finish(job)
    return job


def test_heads_page_says_how_to_get_scores() -> None:
    at = app("pages/heads.py")
    assert any("No head scores yet" in i.value for i in at.info)


def test_heads_page_picks_the_lowest_and_launches(tiny_csv, tiny_model_dir) -> None:
    # a classifier: pruning a base encoder is refused at submit (it has no head to keep)
    scored = seed_scores(f"csv:{tiny_csv}", str(tiny_model_dir))
    at = app("pages/heads.py")
    assert at.get("plotly_chart"), "the importance map is drawn"
    pick = at.multiselect(key=f"heads_pick_{scored}")
    assert pick.value == ["1:2", "0:1", "1:0"], "40 % of the 7 live heads, lowest first"
    at.slider(key="heads_count").set_value(2).run()
    assert at.multiselect(key=f"heads_pick_{scored}").value == ["1:2", "0:1"]
    at.multiselect(key=f"heads_pick_{scored}").select("0:0").run()
    at.button(key="heads_launch").click().run()
    assert any("Queued prune job" in s.value for s in at.success), [e.value for e in at.error]
    job = store.list_jobs(limit=1)[0]
    data = job.config["data"]
    assert (job.method, job.model, data["kind"]) == ("prune", str(tiny_model_dir), "heads")
    assert parse_heads(data["heads"]) == {0: [0, 1], 1: [2]}
    assert data["recovery_steps"] == 300


def test_heads_page_queues_a_scoring_job(tiny_csv) -> None:
    seed_scores(f"csv:{tiny_csv}")
    at = app("pages/heads.py")
    at.selectbox(key="score_model").set_value("default").run()
    at.selectbox(key="score_how").set_value("magnitude").run()
    at.button(key="score_heads").click().run()
    assert any("Queued scoring job" in s.value for s in at.success), [e.value for e in at.error]
    job = store.list_jobs(limit=1)[0]
    assert job.method == "prune" and job.config["data"]["score_only"] is True
    assert job.config["data"]["importance"] == "magnitude"
    assert job.parent_id is not None, "the teacher is queued first and this job waits for it"
