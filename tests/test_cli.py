"""The command line contract, through real processes (the CLI and a background worker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.conftest import ROOT

FAST = ["--set", "max_steps=4", "--set", "batch_size=8", "--set", "eval_every=2",
        "--set", "max_length=32"]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, env=os.environ,
                          capture_output=True, text=True, timeout=timeout)


def test_submit_wait_json_runs_in_process(tiny_model_dir, tiny_csv) -> None:
    out = cli("submit", "finetune", "--model", str(tiny_model_dir), "--dataset",
              f"csv:{tiny_csv}", *FAST, "--wait", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"id", "method", "status", "config", "model", "dataset", "parent_id",
                         "output_model", "error", "metrics"}
    assert data["status"] == "done" and data["output_model"] == f"job:{data['id']}"
    for key in ("accuracy", "macro_f1", "size_mb", "params", "layers", "heads", "device",
                "seq_len", "latency"):
        assert key in data["metrics"], key
    assert "%" in out.stderr, "a progress bar on stderr"
    shown = json.loads(cli("show", str(data["id"]), "--json").stdout)
    assert shown["metrics"]["accuracy"] == data["metrics"]["accuracy"]
    listed = json.loads(cli("jobs", "--json").stdout)
    assert [j["id"] for j in listed] == [data["id"]]


def test_bad_input_exits_non_zero_with_a_message(tiny_csv) -> None:
    for args, words in [
        (("submit", "finetune", "--model", "nope"), "unknown model"),
        (("submit", "finetune", "--model", "minilm-l6", "--set", "batch_size=0"), "minimum"),
        (("submit", "evaluate", "--dataset", "csv:/no/such.csv"), "no such file"),
        (("show", "42"), "no job 42"),
    ]:
        out = cli(*args)
        assert out.returncode == 2, (args, out.stdout)
        assert words in out.stderr and "Traceback" not in out.stderr


def test_failed_job_exits_non_zero(tiny_csv) -> None:
    # A head that does not fit is refused at submit (2); a hub model offline fails when the
    # job runs (1).
    out = cli("submit", "evaluate", "--model", "minilm-l6", "--dataset", f"csv:{tiny_csv}")
    assert out.returncode == 2 and "no classification head" in out.stderr
    out = cli("submit", "evaluate", "--model", "nobody/no-such-model", "--dataset",
              f"csv:{tiny_csv}", "--wait")
    assert out.returncode == 1 and "could not load" in out.stderr


def test_real_worker_runs_finetune_then_evaluate(tiny_model_dir, tiny_csv, lab_home) -> None:
    worker = subprocess.Popen([sys.executable, "-m", "engine", "worker"], cwd=ROOT,
                              env=os.environ, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        ft = json.loads(cli("submit", "finetune", "--model", str(tiny_model_dir), "--dataset",
                            f"csv:{tiny_csv}", *FAST, "--json").stdout)
        ev = json.loads(cli("submit", "evaluate", "--from-job", str(ft["id"]), "--dataset",
                            f"csv:{tiny_csv}", "--set", "max_length=32", "--json").stdout)
        assert ev["status"] == "queued" and ev["parent_id"] == ft["id"]
        deadline = time.time() + 240
        while time.time() < deadline:
            jobs = {j["id"]: j for j in json.loads(cli("jobs", "--json").stdout)}
            if all(j["status"] in ("done", "failed") for j in jobs.values()):
                break
            time.sleep(1)
        assert jobs[ft["id"]]["status"] == "done", jobs[ft["id"]]["error"]
        assert jobs[ev["id"]]["status"] == "done", jobs[ev["id"]]["error"]
        assert jobs[ev["id"]]["metrics"]["accuracy"] == jobs[ft["id"]]["metrics"]["accuracy"]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert worker.returncode == 0, worker.stderr.read()


def test_the_one_executor_loop_runs_jobs_only_when_it_should(tiny_model_dir, tiny_csv) -> None:
    """engine.worker.run_to_end serves `--wait` (runs a job only when no worker is alive) and
    the search (`always`: runs it here, worker alive or not, the jobs it waits on first)."""
    from engine.submit import submit
    from engine.worker import run_to_end
    from storage import jobs as store
    from storage.models import utcnow

    store.register_worker(device="cpu", now=utcnow(), name="busy")  # alive, never claims
    args = {"model": str(tiny_model_dir), "dataset": f"csv:{tiny_csv}"}
    waited = submit("evaluate", **args)
    polls: list[int] = []
    job = run_to_end(waited, poll_s=0.05, stop_when=lambda: len(polls) > 3 or polls.append(1))
    assert job.status == "cancelled" and job.started_at is None  # left to the live worker
    first = submit("evaluate", **args, fresh=True)
    second = submit("evaluate", **args)
    assert store.get_job(second).reused_from == first  # identical work: it waits on the first
    job = run_to_end(second, always=True, poll_s=0.05)
    assert job.status == "done" and store.get_job(first).status == "done"
    assert job.reused_from == first
