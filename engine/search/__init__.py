"""Budget-first search: the fastest (or smallest) model within an accuracy budget.

`python -m engine search --model M --max-drop 0.01 --batch 32 --minutes 60` plans candidate
chains over the lab's methods (engine/reports/search_plan.py), predicts each one's latency
from a latency table measured here (engine/search/latency.py) and its accuracy drop from the
model's sensitivity map (or priors), then runs the most promising first within the time
budget. Every candidate step is an ordinary job (engine.submit.submit, `from_job` for chains),
executed by the worker's one executor step (engine.worker.run_next) in the search's own
process: a live worker may claim a step first (the claim is atomic), else this process runs
it, so a search never waits for a free worker and never deadlocks with a single one.

Selection is on the validation split only: after each step the search runs one validation
pass of the step's model in its own process (the runner evaluates on the test split and is
left unchanged). A chain whose prefix already loses more than the budget is stopped there.
The winner is then reported on the test split against the starting model (bootstrap interval,
McNemar's test). The search's state is a JSON record (engine/search/records.py), written after
every step, so the Search page shows it live and after a reload; a cancelled search keeps
what it finished. Importing this package is cheap (no torch).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine.reports import search_plan as P
from engine.search import records
from engine.toolkit.config import LabError
from storage import jobs as store
from storage import settings
from storage.models import CANCELLED, DONE, FINISHED, QUEUED

METHODS = ("distill", "prune-layers", "prune-heads", "lowrank", "quantize")
SEQ_LEN = 64  # the methods' default max_length: candidates are built and timed at it
POLL_S = 0.5


# --------------------------------------------------------------------------- checks


def check_request(model: str, dataset: str, cons: P.Constraints, owner: str | None,
                  methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """Every check that needs no model run; LabError before anything is queued. Returns the
    model's card (engine.submit.input_card)."""
    from engine.submit import check_model_id, check_owner, input_card
    from engine.toolkit.data import DatasetError, load_dataset

    cons.check()
    check_owner(owner)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise LabError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; use some "
                       f"of {', '.join(METHODS)}")
    check_model_id(model)
    try:
        load_dataset(dataset)
    except DatasetError as exc:
        raise LabError(str(exc)) from exc
    card = input_card(model)
    if card and card.get("classifier") is False:
        raise LabError(f"{model} has no classification head, so there is no accuracy to keep: "
                       f"fine-tune it first (`python -m engine submit finetune --model "
                       f"{model}`), then search its job:ID, or search `default`")
    if card.get("path") and _is_quantized(card["path"]):
        raise LabError(f"{model} is already quantized, and a quantized model is not compressed "
                       f"further: search the float model it was made from")
    if card.get("source") == "preset":
        raise LabError(f"{model} has random weights: its accuracy means nothing, so an "
                       f"accuracy budget cannot be kept; search a trained model")
    return card


def _is_quantized(path: str) -> bool:
    from engine.toolkit.architecture import changes_of, has_kind
    from engine.toolkit.checkpoints import read_meta

    meta = read_meta(path)
    return bool(meta) and has_kind(changes_of(meta), "quantized")


# --------------------------------------------------------------------------- running jobs


def execute(job_id: int, search_id: int | None = None, deadline: float | None = None,
            clock=time.monotonic):
    """Run `job_id` to its end through the worker's executor step and return its row: this
    process claims it (engine.worker.run_next) unless a live worker already has; a job waiting
    on identical work runs that first. A watchdog asks the job to cancel once the search is
    cancelled or `deadline` (clock seconds) passes."""
    from engine.worker import run_next

    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(POLL_S):
            late = deadline is not None and clock() > deadline
            if late or (search_id is not None and records.cancel_requested(search_id)):
                store.request_cancel(job_id)
                return

    watchdog = threading.Thread(target=watch, daemon=True)
    watchdog.start()
    try:
        while True:
            job = store.get_job(job_id)  # refreshes: reaps, answers waiters
            if job.status in FINISHED:
                return job
            if job.status == QUEUED and job.reused_from and job.reused_from != job_id:
                execute(job.reused_from, search_id, deadline, clock)
                continue
            if run_next(None, job_id=job_id) is None:
                time.sleep(POLL_S)
    finally:
        stop.set()
        watchdog.join(timeout=2)


def _start_job(model: str) -> int | None:
    """The job whose output is `model` (building the teacher when `default` is missing)."""
    from engine.submit import DEFAULT_ALIAS, ensure_teacher

    if model == DEFAULT_ALIAS:
        row = store.find_model(DEFAULT_ALIAS)
        return row.job_id if row is not None else ensure_teacher()
    if model.startswith("job:"):
        return int(model[4:])
    return None


def val_accuracy(model_id: str, data) -> float:
    """Accuracy (0..1) on the validation split, the lab's one harness (never the test split:
    the search selects on it)."""
    from engine.toolkit import checkpoints as M
    from engine.toolkit import device as dev
    from engine.toolkit.evaluation import classification_metrics, predict

    device = dev.setup()
    ref = M.resolve(model_id)
    model = M.load_classifier(ref, label_names=data.label_names).to(device)
    preds, _ = predict(model, M.load_tokenizer(ref), data.val.texts, SEQ_LEN, device)
    return classification_metrics(data.val.labels, preds, data.num_labels)["accuracy"]


# --------------------------------------------------------------------------- planning


class Prepared:
    """What a search knows before it queues anything: the data, the start model's job, the
    latency tables, the sensitivity (or None) and the candidates with their predictions."""

    def __init__(self, model: str, dataset: str, cons: P.Constraints, owner: str | None,
                 methods: tuple[str, ...], train_steps: int, card: dict[str, Any]):
        from engine.reports.sensitivity import latest_sensitivity
        from engine.search.latency import table_for
        from engine.submit import device_kind, model_fingerprint
        from engine.toolkit.data import load_dataset
        from engine.worker import job_device

        self.model, self.dataset, self.cons, self.owner = model, dataset, cons, owner
        self.data = load_dataset(dataset)
        self.start_job = _start_job(model)
        if self.start_job is not None and store.get_job(self.start_job).status != DONE:
            job = execute(self.start_job)
            if job.status != DONE:
                raise LabError(f"the starting model {model} could not be made: job {job.id} "
                               f"{job.status} ({job.error or job.message})")
        self.card = card if card.get("layers") else self._card()
        kind, fp = device_kind(None), model_fingerprint(model)
        texts = self.data.test.texts[:256]
        self.table = table_for(model, fp, kind, cons.batch, SEQ_LEN, texts)
        self.table32 = self.table if cons.batch == 32 else table_for(model, fp, kind, 32,
                                                                      SEQ_LEN, texts)
        self.sensitivity = latest_sensitivity(model)
        device = job_device(probe=True) or "cpu"
        schemes = tuple(s for s in P.INT8_SCHEMES if "quantize" in methods
                        and _scheme_runs(s, device))
        layers, heads = self.table.layers, self.table.heads
        self.candidates = P.plan(layers, heads, tuple(m for m in methods if m != "quantize"),
                                 schemes, self.sensitivity, train_steps)
        self.size_mb = float(self.card.get("size_mb") or 1.0)
        P.predict(self.candidates, self.table, self.size_mb, self.sensitivity)
        for c in self.candidates:
            c.predicted["minutes"] = self.chain_seconds(c.steps) / 60
        reason = P.closest_to_ceiling(self.candidates, cons)
        if reason:
            raise LabError(reason)
        quickest = min(self.candidates, key=lambda c: c.predicted["minutes"])
        if quickest.predicted["minutes"] > cons.minutes:
            raise LabError(f"--minutes {cons.minutes:g} is too little for one candidate: the "
                           f"quickest, {quickest.label}, takes about "
                           f"{quickest.predicted['minutes']:.1f} minutes here; give at least "
                           f"--minutes {max(1, round(quickest.predicted['minutes'] + 0.5))}")

    def _card(self) -> dict[str, Any]:
        from engine.toolkit.checkpoints import checkpoint_card

        return checkpoint_card(self.model)

    def chain_seconds(self, steps: tuple[P.Step, ...], scale: float = 1.0) -> float:
        """About how long these steps take here (scaled by how far estimates were off)."""
        compiled = "compiled" in (settings.timing_runtimes() or ["eager", "compiled"])
        total = 0.0
        for s in steps:
            n = P.train_steps_of(s, len(self.data.train))
            total += P.step_seconds(s, self.table32, self.table32.full_ms, n,
                                    len(self.data.test), len(self.data.val),
                                    compiled or s.method == "quantize")
        return total * scale


def _scheme_runs(scheme: str, device: str) -> bool:
    from engine.methods.registry import get_method

    spec = get_method("quantize")
    return spec.availability is None or not spec.availability(spec.config.from_values(
        {"scheme": scheme}), device)


# --------------------------------------------------------------------------- the search


def new_record(model: str, dataset: str, cons: P.Constraints, owner: str | None,
               methods: tuple[str, ...], train_steps: int, max_candidates: int | None,
               status: str = "running") -> int:
    from engine.submit import check_owner
    from storage.models import utcnow

    return records.create({
        "status": status, "model": model, "dataset": dataset, "owner": check_owner(owner),
        "constraints": cons.__dict__, "methods": list(methods), "train_steps": train_steps,
        "max_candidates": max_candidates, "created_at": utcnow().isoformat(),
        "pid": os.getpid(), "host": socket.gethostname(), "candidates": [],
        "message": "planning"})


def search(model: str, dataset: str, cons: P.Constraints, owner: str | None = None,
           methods: tuple[str, ...] = METHODS, train_steps: int = 0,
           max_candidates: int | None = None, search_id: int | None = None,
           on_update=None) -> dict[str, Any]:
    """Check, plan, run and report one search; return its final record. Bad input raises
    LabError before any candidate is queued (with `search_id`, the record says so too)."""
    t0 = time.monotonic()  # the budget counts from here: planning and measuring too
    try:
        card = check_request(model, dataset, cons, owner, methods)
        prep = Prepared(model, dataset, cons, owner, methods, train_steps, card)
    except LabError as exc:
        if search_id is not None:
            rec = records.load(search_id)
            records.save({**rec, "status": "failed", "error": str(exc), "message": str(exc)})
        raise
    if search_id is None:
        search_id = new_record(model, dataset, cons, owner, methods, train_steps,
                               max_candidates)
    rec = records.load(search_id)
    if rec["cancel_requested"]:
        records.save({**rec, "status": CANCELLED, "message": "cancelled before it started"})
        return records.load(search_id)
    return Run(prep, rec, max_candidates, on_update, t0).go()


class Run:
    """One search's loop: pick the most promising candidate that fits the time left, run its
    steps (reusing a prefix another candidate ran), measure, re-predict, record."""

    def __init__(self, prep: Prepared, rec: dict[str, Any], max_candidates: int | None,
                 on_update=None, t0: float | None = None):
        self.prep, self.rec, self.max_candidates = prep, rec, max_candidates
        self.on_update = on_update or (lambda rec: None)
        self.t0 = time.monotonic() if t0 is None else t0
        self.deadline = self.t0 + prep.cons.minutes * 60
        self.jobs: dict[tuple[P.Step, ...], int] = {}  # prefix -> its done job
        self.val: dict[int, float] = {}  # job id -> validation accuracy
        self.measured: dict[tuple[P.Step, ...], float] = {}  # prefix -> validation drop
        self.state = {c: "planned" for c in prep.candidates}
        self.scale = 1.0  # measured / estimated seconds so far
        self.current: int | None = None  # the job running now

    # ---- the record
    def save(self, **changes: Any) -> None:
        self.rec.update(changes, candidates=[self.row(c) for c in self.prep.candidates],
                        minutes=round((time.monotonic() - self.t0) / 60, 2))
        records.save({k: v for k, v in self.rec.items() if k != "cancel_requested"})
        self.on_update(self.rec)

    def row(self, c: P.Candidate) -> dict[str, Any]:
        ids = [self.jobs[c.steps[:n]] for n in range(1, len(c.steps) + 1)
               if c.steps[:n] in self.jobs]
        last = ids[-1] if len(ids) == len(c.steps) else None
        out = {"id": last, "jobs": ids, "chain": c.label,
               "steps": [s.as_dict() for s in c.steps], "status": self.state[c],
               "val_accuracy": self.val.get(ids[-1]) if ids else None,
               "predicted": {k: (round(v, 5) if isinstance(v, float) else v)
                             for k, v in c.predicted.items()}}
        if last is not None:
            out.update(self.measured_figures(last, ids))
        return out

    def measured_figures(self, last: int, ids: list[int]) -> dict[str, Any]:
        from engine.reports.runs import FASTEST, latency_row

        run = store.job_as_dict(store.get_job(last, refresh_first=False))
        m = run["metrics"] or {}
        lat = latency_row(run, self.prep.cons.batch, FASTEST) or {}
        speed, runtime = chain_speedup(ids, self.prep.cons.batch)
        return {"speedup_vs_start": speed, "speedup_runtime": runtime,
                "p50_ms": lat.get("p50_ms"), "p50_runtime": lat.get("runtime"),
                "size_mb": m.get("size_mb"), "test_accuracy": m.get("accuracy")}

    # ---- the loop
    def go(self) -> dict[str, Any]:
        try:
            return self.loop()
        except KeyboardInterrupt:  # Ctrl-C on the CLI: a cancel that keeps what finished
            if self.current is not None:
                store.request_cancel(self.current)
            self.finish(CANCELLED, "cancelled")
            raise
        except LabError as exc:  # e.g. the start could not be evaluated
            self.save(status="failed", message=f"{exc}; the candidates it finished are kept")
            raise
        except Exception as exc:  # a bug: say so on the record, keep what finished
            self.save(status="failed", message=f"the search stopped on an unexpected error: "
                      f"{type(exc).__name__} {exc}; the candidates it finished are kept")
            raise

    def loop(self) -> dict[str, Any]:
        prep = self.prep
        self.save(status="running", message="evaluating the starting model", pid=os.getpid(),
                  sensitivity_job=(prep.sensitivity or {}).get("job_id"),
                  prediction_source=prep.candidates[0].predicted["source"],
                  latency_table=prep.table.__dict__)
        ref = self.reference_job()
        if ref is None:
            return self.finish(CANCELLED, "cancelled before any candidate ran")
        self.start_val = val_accuracy(prep.model, prep.data)
        self.allowed = prep.cons.allowed_drop(self.start_val)
        self.refit()
        self.save(start_job=ref, start_val_accuracy=self.start_val,
                  allowed_drop=self.allowed, message="running candidates")
        ran = 0
        while True:
            if records.cancel_requested(self.rec["id"]):
                return self.finish(CANCELLED, "cancelled")
            if self.max_candidates is not None and ran >= self.max_candidates:
                break
            pick = self.next_candidate()
            if pick is None:
                break
            # a chain whose every step another one ran costs nothing: it does not count
            ran += any(pick.steps[:n] not in self.jobs for n in range(1, len(pick.steps) + 1))
            if not self.run_candidate(pick):
                if records.cancel_requested(self.rec["id"]):
                    return self.finish(CANCELLED, "cancelled")
            self.refit()
        limit = self.max_candidates is not None and ran >= self.max_candidates
        for c in prep.candidates:
            if self.state[c] == "planned":
                fits = bool(P.rank([c], prep.cons, self.allowed))
                self.state[c] = ("not run (predicted outside the budget)" if not fits
                                       else "not run (candidate limit)" if limit
                                       else "not run (no time left)")
        return self.finish(DONE, None)

    def refit(self) -> None:
        """Re-plan the candidates not run yet from what is known now: each int8 step is
        accuracy-aware where what the budget has left after its chain's earlier steps
        (measured when they ran) is tight (search_plan.fit_int8), then every prediction."""
        prep = self.prep
        planned = [c for c in prep.candidates if self.state[c] == "planned"]
        P.fit_int8(planned, self.allowed, prep.table.layers, prep.sensitivity, self.measured)
        P.predict(planned, prep.table, prep.size_mb, prep.sensitivity, self.measured)
        for c in planned:
            c.predicted["minutes"] = prep.chain_seconds(c.steps) / 60

    def reference_job(self) -> int | None:
        """A done job holding the start model's test predictions on this dataset: the job that
        made it, else an `evaluate` job (queued and run here)."""
        from engine.submit import submit

        prep = self.prep
        if prep.start_job is not None:
            job = store.get_job(prep.start_job)
            if job.dataset == prep.dataset and job.metrics is not None \
                    and job.metrics.accuracy is not None:
                return job.id
        job_id = submit("evaluate", model=prep.model, dataset=prep.dataset, owner=prep.owner)
        job = execute(job_id, self.rec["id"], self.deadline)
        if job.status != DONE:
            if job.status == CANCELLED:
                return None
            raise LabError(f"evaluating the starting model failed (job {job.id}): {job.error}")
        return job.id

    def next_candidate(self) -> P.Candidate | None:
        """The most promising planned candidate whose remaining steps fit the time left."""
        left = self.deadline - time.monotonic()
        for c in P.rank([c for c in self.prep.candidates if self.state[c] == "planned"],
                        self.prep.cons, self.allowed):
            todo = tuple(s for n, s in enumerate(c.steps) if c.steps[:n + 1] not in self.jobs)
            if self.prep.chain_seconds(todo, self.scale) <= left:
                return c
            self.state[c] = "not run (no time left)"
        return None

    def run_candidate(self, c: P.Candidate) -> bool:
        """Run the chain's missing steps; True when it ran to its end (met or not)."""
        from engine.submit import submit

        self.state[c] = "running"
        parent: int | None = None
        for n in range(1, len(c.steps) + 1):
            prefix = c.steps[:n]
            if prefix in self.jobs:
                parent = self.jobs[prefix]
                continue
            s = prefix[-1]
            self.save(message=f"running {c.label}" + (
                f" (step {n} of {len(c.steps)}: {s.label})" if len(c.steps) > 1 else ""))
            began, guess = time.monotonic(), self.prep.chain_seconds((s,))
            kwargs = {"from_job": parent} if parent is not None else {"model": self.prep.model}
            try:
                job_id = submit(s.method, dataset=self.prep.dataset, values=s.config(),
                                owner=self.prep.owner, **kwargs)
            except LabError as exc:  # refused (a queue cap, a check on its input): the next
                self.state[c] = f"refused ({s.label}: {exc})"
                self.save()
                return False
            self.jobs[prefix] = self.current = job_id  # shown while it runs
            job = execute(job_id, self.rec["id"], self.deadline)
            self.current = None
            if job.status != DONE:
                del self.jobs[prefix]
                late = time.monotonic() > self.deadline
                self.state[c] = ("cancelled" if job.status == CANCELLED and not late
                                       else "out of time" if late
                                       else f"failed (job {job.id}: {job.error})")
                self.save()
                return False
            if not job.reused_from:
                self.scale = max(0.2, min(5.0, (time.monotonic() - began) / guess))
            acc = val_accuracy(f"job:{job_id}", self.prep.data)
            self.val[job_id] = acc
            drop = self.start_val - acc
            self.measured[prefix] = drop
            parent = job_id
            if n < len(c.steps) and drop > self.allowed:
                # a later step only loses more (int8) or too little back: stop the chain and
                # every chain that starts the same way
                for other in self.prep.candidates:
                    if other.steps[:n] == prefix and self.state[other] in (
                            "planned", "running"):
                        self.state[other] = (f"stopped early ({s.label} lost "
                                                   f"{100 * drop:.2f} points on validation)")
                self.save()
                return True
        self.state[c] = self.verdict(c)
        self.save()
        return True

    def verdict(self, c: P.Candidate) -> str:
        row = self.row(c)
        cons = self.prep.cons
        drop = self.start_val - row["val_accuracy"]
        if drop > self.allowed:
            return f"over budget (lost {100 * drop:.2f} points on validation)"
        if cons.max_latency_ms is not None and (row["p50_ms"] or 0) > cons.max_latency_ms:
            return f"over the latency ceiling ({row['p50_ms']:.1f} ms)"
        if cons.max_size_mb is not None and (row["size_mb"] or 0) > cons.max_size_mb:
            return f"over the size ceiling ({row['size_mb']:.1f} MB)"
        x = (row["speedup_vs_start"] or {}).get(str(cons.batch))
        if cons.objective == "speed" and x is not None and x <= 1.0:
            return f"not faster than the start ({x:.2f}x at batch {cons.batch})"
        return "met"

    def finish(self, status: str, message: str | None) -> dict[str, Any]:
        for c in self.prep.candidates:
            if self.state[c] in ("planned", "running"):
                self.state[c] = "cancelled" if status == CANCELLED else "not run"
        rows = [self.row(c) for c in self.prep.candidates]
        met = [r for r in rows if r["status"] == "met"]
        if self.prep.cons.objective == "speed":
            met.sort(key=lambda r: (-(r["speedup_vs_start"] or {}).get(
                str(self.prep.cons.batch), 0.0), -(r["val_accuracy"] or 0)))
        else:
            met.sort(key=lambda r: (r["size_mb"] or float("inf"), -(r["val_accuracy"] or 0)))
        winner = met[0] if met else None
        report = winner_report(self.rec.get("start_job"), winner) if winner else None
        if message is None:
            message = (report["sentence"] if report else self.nobody_text(rows))
        elif status == CANCELLED:
            done = [r for r in rows if r["id"] is not None]
            message = (f"cancelled; it keeps the {len(done)} candidate"
                       f"{'s' * (len(done) != 1)} it finished"
                       + (f" (jobs {', '.join(str(r['id']) for r in done)})" if done else ""))
        self.save(status=status, message=message, winner=winner["id"] if winner else None,
                  report=report, finished=True)
        return self.rec

    def nobody_text(self, rows: list[dict[str, Any]]) -> str:
        ran = [r for r in rows if r["val_accuracy"] is not None]
        if not ran:
            return ("no candidate met it: none could run within the time budget; give more "
                    "--minutes")
        kept = [r for r in ran if self.start_val - r["val_accuracy"] <= self.allowed]
        if kept:  # the accuracy held, a ceiling or the speed did not
            key = str(self.prep.cons.batch)
            best = (max(kept, key=lambda r: (r.get("speedup_vs_start") or {}).get(key) or 0)
                    if self.prep.cons.objective == "speed"
                    else min(kept, key=lambda r: r.get("size_mb") or float("inf")))
            return (f"no candidate met it: {len(ran)} ran and {len(kept)} kept the accuracy "
                    f"budget, but the closest, {best['chain']} (job {best['jobs'][-1]}), is "
                    f"{best['status']}; loosen the ceiling or give more time")
        best = max(ran, key=lambda r: r["val_accuracy"])
        return (f"no candidate met it: {len(ran)} ran; the closest was {best['chain']} (job "
                f"{best['jobs'][-1]}) at {100 * (self.start_val - best['val_accuracy']):.2f} "
                f"points lost on validation against a budget of "
                f"{100 * self.allowed:.2f}; loosen the budget or give more time")


def chain_speedup(job_ids: list[int], batch: int) -> tuple[dict[str, float] | None, str | None]:
    """The chain's speedup against the start by batch size: the product of its steps' paired
    speedups under one runtime (compiled when every step has one, else eager), as the lab's
    lineage derives it; never a ratio across runtimes. (None, None) when a step lacks one."""
    from engine.reports.runs import paired_speedup

    runs = [store.job_as_dict(store.get_job(i, refresh_first=False)) for i in job_ids]
    for runtime in ("compiled", "eager"):
        out: dict[str, float] = {}
        for bs in P.BATCHES:
            x = 1.0
            for run in runs:
                step, _ = paired_speedup(run, bs, runtime)
                if not step:
                    x = None
                    break
                x *= step
            if x is not None:
                out[str(bs)] = round(x, 3)
        if str(batch) in out:
            return out, runtime
    return None, None


def winner_report(start_job: int | None, winner: dict[str, Any]) -> dict[str, Any]:
    """The winner against the start on the test split, in numbers and plain words."""
    from engine.reports.stats import bootstrap_ci, difference_ci, mcnemar

    job = store.get_job(winner["id"], refresh_first=False)
    own = {p.idx: p.pred == p.label for p in store.predictions(job.id)}
    base = {p.idx: p.pred == p.label for p in store.predictions(start_job)} if start_job else {}
    idx = sorted(set(own) & set(base))
    a, b = [base[i] for i in idx], [own[i] for i in idx]
    acc = job.metrics.accuracy if job.metrics is not None else None
    low, high = bootstrap_ci([own[i] for i in sorted(own)]) if own else (None, None)
    out: dict[str, Any] = {"job": job.id, "test_accuracy": acc, "test_ci": [low, high]}
    speed, runtime = winner.get("speedup_vs_start"), winner.get("speedup_runtime")
    words = [f"The winner is job {job.id}: {winner['chain']}."]
    if speed:
        by = " and ".join(f"{x:.2f}x at batch {bs}" for bs, x in speed.items())
        words.append(f"Its speedup against the starting model is {by} ({runtime}; the "
                     f"product of paired steps, each timed against its parent in one "
                     f"process).")
    if idx:
        delta, dlow, dhigh = difference_ci(a, b)
        test = mcnemar(a, b)
        out.update(accuracy_delta_vs_start=delta, delta_ci=[dlow, dhigh],
                   mcnemar_p=test.p_value, start_test_accuracy=sum(a) / len(a))
        change = ("the same as the start" if delta == 0 else f"{abs(100 * delta):.2f} points "
                  f"{'below' if delta < 0 else 'above'} the start")
        words.append(f"On the test split ({len(idx)} examples) it scores {100 * acc:.1f} % "
                     f"(95 % interval {100 * low:.1f}-{100 * high:.1f} %), {change} "
                     f"(difference interval {100 * dlow:+.2f} to {100 * dhigh:+.2f} points).")
        words.append(test.sentence("the start", f"job {job.id}"))
    out["sentence"] = " ".join(words)
    return out


def result_json(rec: dict[str, Any]) -> dict[str, Any]:
    """The `--json` object: winner (as `show --json`), candidates, speedup_vs_start (paired,
    one runtime, by batch size), accuracy_delta_vs_start (test split) and minutes."""
    winner = store.job_as_dict(store.get_job(rec["winner"])) if rec.get("winner") else None
    row = next((c for c in rec["candidates"] if c["id"] == rec.get("winner")), {})
    report = rec.get("report") or {}
    return {"search": rec["id"], "status": rec["status"], "message": rec.get("message"),
            "winner": winner,
            "candidates": [{"id": c["id"], "chain": c["chain"],
                            "val_accuracy": c["val_accuracy"], "status": c["status"]}
                           for c in rec["candidates"]],
            "speedup_vs_start": row.get("speedup_vs_start"),
            "speedup_runtime": row.get("speedup_runtime"),
            "accuracy_delta_vs_start": report.get("accuracy_delta_vs_start"),
            "minutes": rec.get("minutes")}


# --------------------------------------------------------------------------- the page's verbs


def launch(model: str, dataset: str, cons: P.Constraints, owner: str | None,
           methods: tuple[str, ...] = METHODS, train_steps: int = 0) -> int:
    """Start a search in a background process (`python -m engine search --search-id N`) and
    return its id at once: what the Search page calls. The checks that need no model run
    happen here (LabError, nothing written); the rest is recorded on the search."""
    check_request(model, dataset, cons, owner, methods)
    search_id = new_record(model, dataset, cons, owner, methods, train_steps, None,
                           status="starting")
    root = Path(__file__).resolve().parent.parent.parent
    log = open(settings.logs_dir() / f"search-{search_id}.log", "ab")
    # its own session: it outlives a page rerun; the record says how it goes
    subprocess.Popen([sys.executable, "-m", "engine", "search", "--search-id", str(search_id)],
                     cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                     start_new_session=True)
    log.close()  # the child holds its own handle
    return search_id


def cancel(search_id: int, owner: str | None = None) -> str:
    """Ask a search to stop: its running candidate is cancelled, what it finished stays."""
    from engine.submit import default_owner

    rec = records.load(search_id)
    who = default_owner() if owner is None else " ".join(str(owner).split())
    if rec.get("owner") and rec["owner"] != who:
        raise LabError(f"search {search_id} belongs to {rec['owner']}; only they can cancel it")
    if rec["status"] not in records.RUNNING_STATES:
        raise LabError(f"search {search_id} already ended ({rec['status']}); it keeps its "
                       f"candidates: {rec.get('message') or ''}".rstrip(": "))
    records.request_cancel(search_id)
    return "cancel requested"
