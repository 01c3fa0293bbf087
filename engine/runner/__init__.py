"""`run_job(job_id)`: the one function that executes a job, whatever process runs it.

It rebuilds the config from the job row, calls the method's handler with a JobContext, saves
the produced model, evaluates it with the same harness as every other model, times it
interleaved with its parent (paired speedup), and stores everything in one transaction.
A failure records the error on the job; a cancel removes partial artifacts.

Elsewhere: the job contract (JobContext, Produced) is engine/toolkit/contract.py; the
interleaved timing is in engine/toolkit/timing.py, the paired ratios in
engine/toolkit/paired.py; the heartbeat thread and `run_claimed` (run_job with a heartbeat,
as the worker runs it) are in engine/worker.py.
"""

from __future__ import annotations

import logging
import shutil
import traceback
from pathlib import Path

from engine.runner.evaluating import (
    evaluate,
    evaluate_config_for,
    measures_accuracy,
    pair_with,
    stored_runtime,
    time_models,
    timing_lengths,
)
from engine.runner.parent import compare_with_parent, is_classifier_with_same_labels, timing_trust
from engine.runner.saving import save_and_reload, versions, write_card
from engine.toolkit.config import ConfigError, LabError
from engine.toolkit.contract import JobCancelled, JobContext
from engine.toolkit.data import DatasetError
from storage import jobs as store
from storage.artifacts import job_dir
from storage.jobs import StaleClaim
from storage.models import Job

log = logging.getLogger("engine")

def run_job(job_id: int, attempt: int | None = None) -> str:
    """Execute a claimed (running) job to its end; return its final status. Never raises for
    a job's own failure: the error is recorded on the row.

    Every write is guarded by the claim `attempt` (the job's `attempts` when it was claimed;
    read from the row when None): a worker that lost its claim (stalled past the heartbeat
    timeout, re-queued, taken by another worker) gets StaleClaim, removes its own partial
    folder and returns "stale" without touching the row or the other attempt's files."""
    from engine.toolkit import device as dev

    job = store.load_job(job_id)
    attempt = job.attempts if attempt is None else attempt
    partial = job_dir(job_id, "partial", attempt=attempt)
    try:
        device = dev.setup()
        store.report_progress(job_id, 0.0, "loading", device=dev.describe(device),
                              attempt=attempt)
        return _run(job, attempt, device, partial)
    except StaleClaim:
        shutil.rmtree(partial, ignore_errors=True)
        log.warning("job %s: attempt %s lost its claim; its work is discarded", job_id, attempt)
        return "stale"
    except JobCancelled:
        shutil.rmtree(partial, ignore_errors=True)
        kept = job_dir(job_id, "best-on-cancel")  # distill keeps its best student
        return _end(job_id, attempt, "cancelled", lambda: store.mark_cancelled(
            job_id, attempt=attempt, message="cancelled" + (
                f"; the best model so far is saved in {kept}" if kept.is_dir() else "")))
    except (LabError, DatasetError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        error = str(exc)
        return _end(job_id, attempt, "failed",
                    lambda: store.fail(job_id, error, attempt=attempt))
    except Exception as exc:
        shutil.rmtree(partial, ignore_errors=True)
        detail = traceback.format_exc()
        log.exception("job %s failed", job_id)
        error = unexpected_error_line(job.method, exc)
        return _end(job_id, attempt, "failed", lambda: store.fail(
            job_id, error, attempt=attempt, detail=detail))
    finally:
        _free_memory()


def unexpected_error_line(method: str, exc: BaseException) -> str:
    """One plain line for a failure the lab did not foresee: what happened, what to do."""
    what = f"{type(exc).__name__} {exc}".strip() if str(exc) else type(exc).__name__
    what = " ".join(what.split())[:300]
    return (f"unexpected error in the {method} job: {what}. This is a bug in the lab: the "
            f"details are kept with the job (Jobs page, `show`); resubmit, or report it with "
            f"them")


def _end(job_id: int, attempt: int, status: str, write) -> str:
    """Record the job's end with `write`; "stale" when the claim was lost meanwhile."""
    try:
        write()
    except StaleClaim:
        log.warning("job %s: attempt %s lost its claim before it could record %s", job_id,
                    attempt, status)
        return "stale"
    return status


def _shared_cpu_warning(device: str) -> str | None:
    """The busy-machine warning when this job was timed on CPU cores that other live workers
    on this machine were using for jobs of their own (several workers, more than one job
    running). Timing wants one worker per core set (LAB_WORKERS)."""
    import socket
    from datetime import timedelta

    from storage.models import RUNNING, utcnow

    if not device.startswith("cpu"):
        return None
    now = utcnow()
    here = [w for w in store.alive_workers(now, 30.0, hostname=socket.gethostname())
            if w.device.startswith("cpu") and w.heartbeat_at >= now - timedelta(seconds=30)]
    if len(here) < 2 or len(store.list_jobs(statuses=(RUNNING,), refresh_first=False)) < 2:
        return None
    return (f"Timed while {len(here)} workers on this machine shared its CPU cores and other "
            f"jobs ran: latencies are inflated and the ratios unreliable; timing wants one "
            f"worker per core set (LAB_WORKERS=1, or LAB_THREADS x workers <= cores), or "
            f"re-time on a quiet machine.")


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _run(job: Job, attempt: int, device: str, partial: Path) -> str:
    import torch

    from engine.methods.registry import config_from_json, get_method
    from engine.toolkit import checkpoints as M
    from engine.toolkit.device import describe
    from engine.toolkit.paired import speed_metrics, sweep_table
    from engine.toolkit.timing import by_role, latency_rows, timed_models, timing_runtimes
    from engine.toolkit.timing_trust import busy_warning

    spec = get_method(job.method)
    cfg = config_from_json(job.method, job.config)
    ctx = JobContext(job, device)  # its writes pass job.attempts (== attempt) as the claim
    ecfg = evaluate_config_for(job, cfg)
    ctx.dataset  # noqa: B018 (fail early on a bad dataset, before loading any model)
    # Submit checks this against a live worker when it can; the job checks again here, on the
    # device it really has (a job queued with no worker alive, or moved to another machine).
    reason = spec.availability(cfg, describe(device)) if spec.availability else None
    if reason:
        raise ConfigError(reason)

    if spec.config.produces_model:
        produced = spec.apply(cfg, ctx.span(0.0, 0.8))
    else:  # a method that only measures may do its own part first (seqlen's split)
        produced = None
        spec.apply(cfg, ctx.span(0.0, 0.4))
    ctx.span(0.0, 1.0)
    if spec.config.produces_model and produced is None:
        # the method chose to make no model (prune score_only): its notes are the whole
        # result; evaluating and timing the unchanged input again would only repeat its runs
        store.complete(job.id, attempt, {"model": job.model, "dataset": job.dataset,
                                         **ctx.notes}, [], [])
        return "done"
    accuracy_meaningful = ctx.input_ref.source != "preset"  # random presets: latency only
    parent_model = None
    pair_id = pair_with(cfg)  # a model to time against instead of the parent (retime)
    if produced is not None:
        model, model_device = save_and_reload(ctx, cfg, ecfg, produced, partial)
        tokenizer = produced.tokenizer
        size_mb = M.weights_size_mb(partial)
        if is_classifier_with_same_labels(ctx):
            parent_model = ctx.load_input()
    else:
        model_device = device
        # a method that only times (seqlen) also times a base encoder: its new head is random,
        # and no accuracy is taken from it
        model = ctx.load_input(require_head=measures_accuracy(cfg))
        tokenizer = ctx.tokenizer
        size_mb = M.weights_size_mb(ctx.input_ref.path)
    if pair_id:
        parent_model = M.load_classifier(M.resolve(pair_id), label_names=ctx.dataset.label_names,
                                         require_head=measures_accuracy(cfg)).to(device)

    if measures_accuracy(cfg):
        metrics, preds = evaluate(ctx, model, tokenizer, model_device, ecfg,
                                  accuracy_meaningful, (0.82, 0.9))
    else:
        metrics, preds = {"accuracy": None, "macro_f1": None}, []
    facts = M.facts(model)
    metrics.update(facts)
    metrics.update(size_mb=size_mb, device=describe(model_device), seq_len=ecfg.max_length,
                   versions=versions(), threads=torch.get_num_threads())
    if produced is not None:
        metrics.update(produced.notes)
    metrics.update(ctx.notes)

    # ---- timing (engine/toolkit/timing.py): every runtime, self and parent interleaved
    runtime = produced.runtime if produced else stored_runtime(ctx.input_ref.path, ecfg.runtimes)
    runtimes = timing_runtimes(runtime, ecfg.runtimes)
    timed = timed_models(model, model_device, runtimes, parent_model, device)
    lengths = timing_lengths(cfg, ecfg)
    lat = time_models(ctx, timed, tokenizer, ecfg, lengths,
                      (0.9, 0.99) if measures_accuracy(cfg) else (0.45, 0.99))
    latencies = latency_rows(timed, lat)  # role self | parent, every runtime and length
    roles = by_role(timed, lat)
    metrics["runtime"] = runtime
    if "self:compiled" in timed:
        metrics["compile_seconds"] = round(sum(timed["self:compiled"].first_call_s.values()), 1)
    busy = busy_warning(model_device) or _shared_cpu_warning(model_device)
    if busy:
        metrics["timing_warning"] = busy
    length = ecfg.max_length if ecfg.max_length in lengths else lengths[-1]
    metrics.update(speed_metrics(roles, runtime, seq_len=length))
    if len(lengths) > 1:
        metrics["seqlen_sweep"] = sweep_table(roles, metrics.get("attention_split"))
    own_id = None if produced is not None else job.model
    parent_id = (pair_id or job.model) if parent_model is not None else None
    unreliable = timing_trust(job.id, latencies, {"self": own_id, "parent": parent_id})
    if unreliable:
        metrics["timing_unreliable"] = unreliable
    if pair_id:
        metrics["paired_with"] = pair_id
    elif parent_model is not None:
        compare_with_parent(metrics, ctx, parent_model, ecfg, size_mb, busy)

    model_row = None
    publish = None
    if produced is not None:
        ctx.progress(0.995, "registering the model", force=True)
        out_dir = job_dir(job.id)
        model_row = dict(name=f"job:{job.id}", path=str(out_dir), source="job", job_id=job.id,
                         alias=job.alias, method=job.method, size_mb=size_mb,
                         info={"label_names": ctx.dataset.label_names,
                               "dataset": job.dataset, "input_model": job.model,
                               # the splits it trained on (a teacher from an older split is
                               # rebuilt: engine.submit.ensure_teacher)
                               "dataset_fingerprint": ctx.dataset.fingerprint,
                               "max_length": ecfg.max_length},
                         **facts)

        write_card(partial, job, metrics, latencies)

        def publish() -> None:  # only the claim that completes the job moves its files
            shutil.rmtree(out_dir, ignore_errors=True)
            partial.rename(out_dir)

    store.complete(job.id, attempt, {"model": model_row["name"] if model_row else job.model,
                                     "dataset": job.dataset, **metrics},
                   latencies, preds, model=model_row, publish=publish)
    return "done"


