"""The runner on a tiny random BERT: finetune, evaluate, failure and cancel paths."""

from __future__ import annotations

import threading
import time

import pytest

from engine.submit import submit
from engine.toolkit.config import LabError
from engine.worker import run_claimed
from storage import jobs as store

FAST = ["max_steps=6", "batch_size=8", "eval_every=3", "max_length=32"]


def run(job_id: int) -> dict:
    assert store.claim(None, job_id=job_id) is not None
    run_claimed(job_id)
    return store.job_as_dict(store.get_job(job_id))


def test_finetune_then_evaluate(tiny_model_dir, tiny_csv) -> None:
    ft = run(submit("finetune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", sets=FAST))
    assert ft["status"] == "done", ft["error"]
    m = ft["metrics"]
    assert 0 <= m["accuracy"] <= 1 and m["layers"] == 2 and m["heads"] == 8
    assert m["size_mb"] > 0 and m["params"] > 0 and m["seq_len"] == 32
    assert {r["batch_size"] for r in m["latency"]} == {1, 32}
    assert m["speedup_vs_parent"].keys() == {"1", "32"}, "paired against its parent classifier"
    assert all(r["runs"] >= 30 and r["iqr_ms"] >= 0 for r in m["latency"]), "spread stored"
    for bs, (lo, hi) in m["speedup_vs_parent_ci"].items():
        assert lo <= m["speedup_vs_parent"][bs] <= hi
    assert m["speedup_by_runtime"]["eager"] == m["speedup_vs_parent"]
    assert "accuracy_delta_vs_parent" in m and "size_ratio_vs_parent" in m
    assert len(store.predictions(ft["id"])) == 16
    ev = run(submit("evaluate", model=ft["output_model"], dataset=f"csv:{tiny_csv}",
                    sets=["max_length=32", "batch_sizes=[2]"]))
    assert ev["status"] == "done", ev["error"]
    assert ev["parent_id"] == ft["id"]
    assert ev["metrics"]["accuracy"] == pytest.approx(m["accuracy"]), "the model reloads"
    assert [r["batch_size"] for r in ev["metrics"]["latency"]] == [2]


@pytest.mark.parametrize("keep", ["best", "last"])
def test_finetune_keeps_the_best_validation_step_or_the_last(tiny_model_dir, tiny_csv,
                                                             keep: str) -> None:
    ft = run(submit("finetune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                    sets=["max_steps=9", "batch_size=8", "eval_every=3", "max_length=32",
                          f"keep={keep}"]))
    vals = dict(ft_curves(ft["id"])["val_accuracy"])
    m = ft["metrics"]
    assert m["best_val_accuracy"] == max(vals.values())
    assert m["best_step"] in (3, 6, 9)
    assert m["kept_step"] == (9 if keep == "last" else m["best_step"])
    assert m["kept_val_accuracy"] == vals[m["kept_step"]]


def ft_curves(job_id: int) -> dict:
    return store.get_job(job_id).curves


def test_evaluate_needs_a_classification_head(tiny_csv) -> None:
    from engine.methods.registry import get_method

    with pytest.raises(LabError, match="no classification head"):  # refused at submit
        submit("evaluate", model="minilm-l6", dataset=f"csv:{tiny_csv}")
    # and, queued anyway (an older lab, a recipe), the job fails with the same plain message
    cfg = get_method("evaluate").config()
    job = run(store.enqueue("evaluate", cfg.to_json(), "minilm-l6", f"csv:{tiny_csv}"))
    assert job["status"] == "failed"
    assert "no classification head" in job["error"] and "Traceback" not in job["error"]


def test_bad_inputs_write_no_rows(tmp_path, tiny_csv) -> None:
    notmodel = tmp_path / "empty"
    notmodel.mkdir()
    for kwargs, words in [
        ({"model": "nonsense"}, "unknown model"),
        ({"model": str(notmodel)}, "not a model directory"),
        ({"model": "job:99"}, "no job 99"),
        ({"dataset": "imdb"}, "unknown dataset"),
        ({"sets": ["max_steps=-3"]}, "minimum"),
    ]:
        with pytest.raises(LabError, match=words):
            submit("finetune", **{"model": "minilm-l6", "dataset": f"csv:{tiny_csv}", **kwargs})
    assert store.list_jobs() == []


def test_default_model_queues_the_teacher_first(tiny_csv) -> None:
    job_id = submit("evaluate", model="default", dataset=f"csv:{tiny_csv}")
    jobs = {j.id: j for j in store.list_jobs()}
    teacher = jobs[jobs[job_id].parent_id]
    assert teacher.method == "finetune" and teacher.alias == "default"
    assert teacher.model == "minilm-l6" and teacher.dataset == "rotten-tomatoes"
    again = submit("evaluate", model="default", dataset=f"csv:{tiny_csv}")
    assert store.get_job(again).parent_id == teacher.id, "one teacher job, not two"


def test_hub_id_offline_fails_with_a_clear_message(tiny_csv) -> None:
    job = run(submit("evaluate", model="no-such-owner/no-such-model", dataset=f"csv:{tiny_csv}"))
    assert job["status"] == "failed" and "hub" in job["error"]


def test_cancel_mid_run_removes_partial_artifacts(tiny_model_dir, tiny_csv, lab_home) -> None:
    job_id = submit("finetune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                    sets=["max_steps=100000", "batch_size=8", "max_length=32"])
    store.claim(None, job_id=job_id)

    def cancel_when_training() -> None:
        for _ in range(600):
            if "step" in (store.get_job(job_id).message or ""):
                store.request_cancel(job_id)
                return
            time.sleep(0.05)

    t = threading.Thread(target=cancel_when_training)
    t.start()
    start = time.time()
    status = run_claimed(job_id)
    t.join()
    assert status == "cancelled" and time.time() - start < 60
    assert store.get_job(job_id).status == "cancelled"
    assert not list((lab_home / "artifacts").glob(f"job-{job_id}*"))


@pytest.mark.parametrize(("load", "busy"), [(0.0, False), (2.1, False), (2.6, True),
                                            (64.0, True)])
def test_busy_warning_ignores_the_jobs_own_threads(monkeypatch, load, busy) -> None:
    """On 2 cores a job timing with 2 threads alone reads a load average of about 2.1."""
    from engine.toolkit.timing_trust import busy_warning

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("os.getloadavg", lambda: (load, load, load))
    assert (busy_warning("cpu") is not None) is busy
    assert busy_warning("cuda") is None
