"""Reusing identical work: keys, answers from a done job, waiting on an in-flight one, --fresh."""

from __future__ import annotations

import os
import shutil

from engine.submit import dataset_fingerprint, folder_fingerprint, submit, work_key
from engine.toolkit.data import load_dataset
from engine.worker import run_next
from storage import jobs as store

QUICK = ["max_length=16", "batch_sizes=[1]", "warmup=0", "latency_runs=2", "test_limit=4"]


def test_work_key_changes_with_config_model_and_dataset(tiny_model_dir, tiny_csv,
                                                        tmp_path) -> None:
    data = load_dataset(f"csv:{tiny_csv}")
    cfg = {"type": "EvaluateConfig", "version": 1, "data": {"max_length": 16}}
    key = work_key("evaluate", cfg, str(tiny_model_dir), data, "cpu (2 threads)")
    assert key == work_key("evaluate", dict(cfg), str(tiny_model_dir), data, "cpu (2 threads)")
    other_cfg = {**cfg, "data": {"max_length": 32}}
    assert key != work_key("evaluate", other_cfg, str(tiny_model_dir), data, "cpu (2 threads)")
    assert key != work_key("evaluate", cfg, str(tiny_model_dir), data, "cuda:H200 (sm90)")
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    before = folder_fingerprint(copy)
    weights = next(copy.glob("*.safetensors"))
    os.utime(weights, ns=(1, 1))
    assert folder_fingerprint(copy) != before, "a changed model file gives a new key"
    csv2 = tmp_path / "more.csv"
    csv2.write_text(tiny_csv.read_text() + '"one more line",pos\n')
    assert dataset_fingerprint(load_dataset(f"csv:{csv2}")) != dataset_fingerprint(data)


def test_identical_jobs_wait_then_are_answered_and_fresh_runs_again(tiny_model_dir,
                                                                    tiny_csv) -> None:
    args = dict(model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", sets=QUICK)
    first = submit("evaluate", owner="ada", **args)
    waiting = submit("evaluate", owner="bob", **args)
    assert store.get_job(waiting).reused_from == first, "waits on the in-flight job"
    assert run_next(None) == "done"
    assert run_next(None) is None, "the waiting job is answered, not run"
    a, b = (store.job_as_dict(store.get_job(i)) for i in (first, waiting))
    assert b["status"] == "done" and b["reused_from"] == first and b["attempts"] == 0
    assert b["metrics"] == a["metrics"] and b["output_model"] == a["output_model"]
    assert len(store.predictions(waiting)) == len(store.predictions(first)) > 0
    later = submit("evaluate", owner="cy", **args)
    assert store.get_job(later).status == "done", "answered at once from the done job"
    assert store.get_job(later).reused_from == first
    fresh = submit("evaluate", fresh=True, **args)
    assert store.get_job(fresh).status == "queued" and store.get_job(fresh).reused_from is None
    changed = submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=[*QUICK, "max_length=24"])
    assert store.get_job(changed).status == "queued"


def test_a_reused_model_job_is_a_usable_input(tiny_model_dir, tiny_csv) -> None:
    args = dict(model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                sets=["max_steps=2", "batch_size=8", "max_length=16"])
    ft = submit("finetune", **args)
    assert run_next(None) == "done"
    again = submit("finetune", **args)
    d = store.job_as_dict(store.get_job(again))
    assert d["status"] == "done" and d["reused_from"] == ft
    assert d["output_model"] == f"job:{ft}"
    child = submit("evaluate", from_job=again, dataset=f"csv:{tiny_csv}", sets=QUICK)
    assert run_next(None, job_id=child) == "done", store.get_job(child).error
    from engine.submit import delete_run
    from engine.toolkit.config import LabError

    try:
        delete_run(ft)
        raise AssertionError("the source of a reused result must not be deletable")
    except LabError as exc:
        assert "delete those first" in str(exc)


def test_the_same_work_gets_one_key_before_and_after_a_worker_registers(
        tiny_model_dir, tiny_csv, monkeypatch) -> None:
    """bench_workshop found identical jobs run twice: the key asked a live worker for the
    device, so a submit before the first worker registered ("auto") and one after ("cpu")
    differed. The key must not depend on whether a worker is alive."""
    monkeypatch.setenv("LAB_DEVICE", "auto")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # this machine shows no GPU
    args = dict(model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", sets=QUICK)
    before = submit("evaluate", owner="ada", **args)
    store.register_worker(device="cpu")
    after = submit("evaluate", owner="bob", **args)
    assert store.get_job(after).work_key == store.get_job(before).work_key
    assert store.get_job(after).reused_from == before
