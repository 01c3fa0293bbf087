"""bench_workshop's moving parts: the child processes (attendees who submit, watchers who
render Jobs and Results), the start barrier they wait on, `Lab`, one throwaway lab with its
LAB_HOME, database and workers, and the teacher it starts from (a pack of it for PostgreSQL,
a tiny one for smoke runs). The scenarios and the report are in bench_workshop.py.

A child is `python -m tests.benchmarks.workshop_lab SPEC_JSON`: it prints one `RESULT {json}`
line, which `collect` reads."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("pages/jobs.py", "pages/results.py")


# --------------------------------------------------------------------------- child processes


def ready_and_wait(barrier: Path, name: str) -> float:
    """Say `name` is warm (a file in `barrier`), then wait for the scenario's `go` file and
    return the start time it holds (epoch seconds).

    A workshop's submits go through one long-lived, warm server process; here every attendee
    is its own process, and 30 interpreters importing the lab and loading the dataset take
    both cores for a while (the bench prints how long). Without the barrier (a fixed 20 s
    head start) that start-up could overlap the first jobs and count in the class's wall time:
    a cost of the bench, not of the lab."""
    (barrier / f"{name}.ready").touch()
    go = barrier / "go"
    while not go.exists():
        time.sleep(0.05)
    return float(go.read_text())


def attendee(name: str, offset: float, jobs: list[tuple[str, list[str]]], dataset: str,
             fresh: bool, barrier: Path) -> dict[str, Any]:
    """Warm up, wait for the scenario's start (`ready_and_wait`), sleep `offset` s more, then
    submit `jobs` as `name` the way the pages do. Warm as the dashboard's long-lived server
    process is: the database connected and migrated, the dataset loaded (else the first
    submit times this process's start-up)."""
    from engine.submit import submit
    from engine.toolkit.data import load_dataset
    from engine.worker import job_device
    from storage.db import check

    check()
    load_dataset(dataset)
    out: dict[str, Any] = {"ids": [], "latency_s": [], "errors": [], "submitted_at": []}
    start = ready_and_wait(barrier, name)
    time.sleep(max(0.0, start + offset - time.time()))
    for method, sets in jobs:
        t = time.perf_counter()
        try:
            out["submitted_at"].append(time.time())
            out["ids"].append(submit(method, model="default", dataset=dataset, sets=sets,
                                     owner=name, fresh=fresh, device=job_device()))
        except Exception as exc:  # noqa: BLE001 - what the attendee would see
            out["errors"].append(f"{type(exc).__name__}: {exc}")
        out["latency_s"].append(time.perf_counter() - t)
    return out


def renderer(name: str, stop_file: Path, pause_s: float, barrier: Path) -> dict[str, Any]:
    """Render Jobs and Results (as `name`, everyone's runs), `pause_s` apart, from the
    scenario's start until `stop_file` exists."""
    from streamlit.testing.v1 import AppTest

    times: dict[str, list[float]] = {p: [] for p in PAGES}
    errors: list[str] = []
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["attendee"] = name
    at.session_state["jobs_everyone"] = at.session_state["results_everyone"] = True
    at.run()
    ready_and_wait(barrier, name)
    while not stop_file.exists():
        for page in PAGES:
            at.switch_page(page)
            t = time.perf_counter()
            at.run()
            times[page].append(time.perf_counter() - t)
            errors += [f"{page}: {e.message}" for e in at.exception]
            errors += [f"{page}: {e.value}" for e in at.error]
            time.sleep(pause_s)
    return {"times": times, "errors": errors}


def child_main(spec_json: str) -> None:
    """A child process's body: run the role its spec (JSON) names, print its RESULT line."""
    spec = json.loads(spec_json)
    if spec["role"] == "attendee":
        result = attendee(spec["name"], spec["offset"], [tuple(j) for j in spec["jobs"]],
                          spec["dataset"], spec["fresh"], Path(spec["barrier"]))
    else:
        result = renderer(spec["name"], Path(spec["stop"]), spec["pause"],
                          Path(spec["barrier"]))
    print("RESULT " + json.dumps(result))


# --------------------------------------------------------------------------- one lab


class Lab:
    """A throwaway lab: LAB_HOME (and database) with the teacher, workers, child processes."""

    def __init__(self, base: Path, name: str, source: Path, backend: str,
                 admin_url: str | None, pack: Path | None, args: argparse.Namespace):
        self.home, self.backend, self.args = base / name, backend, args
        self.env = {**os.environ, "LAB_HOME": str(self.home), "LAB_WORKER_AUTOSTART": "0",
                    "LAB_BUILD_TEACHER": "0", "HF_HUB_OFFLINE": "1",
                    "LAB_CACHE_DIR": str(base / "machine-cache"),
                    "LAB_MODEL_DIRS": f"{self.home}:{source}"}
        if args.runtimes:
            self.env["LAB_TIMING_RUNTIMES"] = args.runtimes
        self.env.pop("LAB_DATABASE_URL", None)
        self.database = None
        if backend == "sqlite":
            shutil.copytree(source, self.home)
        else:
            from tests import databases

            self.home.mkdir(parents=True)
            self.database = databases.create_database(admin_url)
            self.env["LAB_DATABASE_URL"] = self.database
        self.use()
        if backend != "sqlite":
            from engine.packs import import_pack

            import_pack(pack)
        self.workers: list[subprocess.Popen] = []
        self.barrier = self.home / "barrier"
        self.barrier.mkdir()

    def use(self) -> None:
        """Point this process's storage at the lab."""
        from storage.db import dispose_all

        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("LAB_", "HF_"))})
        if "LAB_DATABASE_URL" not in self.env:
            os.environ.pop("LAB_DATABASE_URL", None)
        dispose_all()

    def start_workers(self, n: int) -> None:
        self.workers = [subprocess.Popen(
            [sys.executable, "-m", "engine", "worker", "--name", f"bench/cpu{i}"], cwd=ROOT,
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i in range(n)]

    def start(self, children: dict[str, subprocess.Popen], timeout: float = 600.0) -> float:
        """Once every child (name: process) is warm and every worker registered, start the
        scenario (`ready_and_wait`): return its start time (epoch seconds, 1 s from now).
        A child that died meanwhile starts it at once (its error is collected as a result)."""
        from engine.worker import alive

        began = time.time()
        deadline = began + timeout
        while time.time() < deadline and not (
                all((self.barrier / f"{n}.ready").exists() for n in children)
                and len(alive()) >= len(self.workers)):
            if any(p.poll() is not None for p in children.values()):
                break
            time.sleep(0.2)
        warm = sum((self.barrier / f"{n}.ready").exists() for n in children)
        print(f"  {warm} of {len(children)} children warm and {len(alive())} of "
              f"{len(self.workers)} workers registered in {time.time() - began:.1f} s",
              flush=True)
        start = time.time() + 1.0
        (self.barrier / "go.tmp").write_text(repr(start))
        (self.barrier / "go.tmp").rename(self.barrier / "go")  # never read half-written
        return start

    def child(self, spec: dict[str, Any]) -> subprocess.Popen:
        spec = {**spec, "barrier": str(self.barrier)}
        return subprocess.Popen([sys.executable, "-m", "tests.benchmarks.workshop_lab",
                                 json.dumps(spec)], cwd=ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def close(self, admin_url: str | None) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(timeout=120)
            except subprocess.TimeoutExpired:
                w.kill()
        from storage.db import dispose_all

        dispose_all()
        if self.database:
            from tests import databases

            databases.drop_database(admin_url, self.database)


def collect(proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    """A child's RESULT line (its error text when it died)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"crashed": (err or "")[-1500:]}


def job_rows(ids: list[int] | None = None) -> list[dict[str, Any]]:
    from storage import jobs as store

    return [{"id": j.id, "status": j.status, "attempts": j.attempts, "owner": j.owner,
             "reused_from": j.reused_from, "work_key": j.work_key, "started_at": j.started_at,
             "finished_at": j.finished_at}
            for j in store.list_jobs(refresh_first=False) if ids is None or j.id in ids]


def wait_finished(ids: list[int], timeout: float) -> float:
    """Poll until every job in `ids` is done, failed or cancelled; return the time it was."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        from storage import jobs as store

        store.refresh()
        if all(r["status"] in ("done", "failed", "cancelled") for r in job_rows(ids)):
            return time.time()
        time.sleep(1.0)
    return time.time()


# --------------------------------------------------------------------------- the teacher


def tiny_bert(home: Path) -> str:
    """A random BERT classifier small enough that every job takes seconds (4 layers, hidden
    64, 4 heads, seed 0; the embedded MiniLM tokenizer), saved under `home`/models."""
    out = home / "models" / "tiny-bert"
    if not out.is_dir():
        import torch
        from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

        from engine.toolkit.checkpoints import embedded_minilm_path

        torch.manual_seed(0)
        config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=4,
                            num_attention_heads=4, intermediate_size=128,
                            max_position_embeddings=128, num_labels=2,
                            id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
        BertForSequenceClassification(config).save_pretrained(out, safe_serialization=True)
        AutoTokenizer.from_pretrained(embedded_minilm_path()).save_pretrained(out)
    return str(out)


def prepare_teacher(home: Path, steps: int, dataset: str, runtimes: str | None,
                    base_model: str = "minilm-l6") -> None:
    """Build a quick default teacher (finetune of `base_model` with max_steps=`steps`) in
    `home` if it has none."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ["LAB_HOME"] = str(home)
    os.environ.pop("LAB_DATABASE_URL", None)
    from engine.submit import build_config
    from storage import jobs as store
    from storage.db import dispose_all

    dispose_all()
    if store.find_model("default") is not None:
        return
    cfg = build_config("finetune", sets=[f"max_steps={steps}"]).to_json()
    store.enqueue("finetune", cfg, base_model, dataset, alias="default", owner="bench")
    subprocess.run([sys.executable, "-m", "engine", "worker", "--once"], cwd=ROOT, check=True,
                   env={**os.environ, "LAB_WORKER_AUTOSTART": "0", "HF_HUB_OFFLINE": "1",
                        **({"LAB_TIMING_RUNTIMES": runtimes} if runtimes else {})})
    dispose_all()
    if store.find_model("default") is None:
        sys.exit(f"building the quick teacher in {home} failed: see `python -m engine jobs`")


def tiny_dataset(home: Path) -> str:
    """80 short two-label reviews (as tests/conftest.py's tiny_csv) beside the teacher."""
    from tests.conftest import NEGATIVE, POSITIVE

    path = home / "tiny.csv"
    if not path.exists():
        rows = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
        rows = [(f"{rows[i % 16][0]}, take {i // 16 + 1}", rows[i % 16][1]) for i in range(80)]
        random.Random(0).shuffle(rows)
        home.mkdir(parents=True, exist_ok=True)
        path.write_text("text,label\n" + "\n".join(f'"{t}",{y}' for t, y in rows) + "\n")
    return f"csv:{path}"


def teacher_pack(source: Path, base: Path) -> Path:
    """The teacher's run and model as a pack, exported from a copy of `source`."""
    copy = base / "pack-source"
    shutil.copytree(source, copy)
    os.environ["LAB_HOME"] = str(copy)
    os.environ.pop("LAB_DATABASE_URL", None)
    from engine.packs import export_pack
    from storage import jobs as store
    from storage.db import dispose_all

    dispose_all()
    teacher = store.find_model("default")
    path = base / "teacher.labpack"
    export_pack(path, [teacher.job_id], with_models=True)
    dispose_all()
    return path


if __name__ == "__main__":
    child_main(sys.argv[1])
