"""`run_job(job_id)`: the one function that executes a job, whatever process runs it.

It rebuilds the config from the job row, calls the method's handler with a JobContext, saves
the produced model, evaluates it with the same harness as every other model, times it
interleaved with its parent (paired speedup), and stores everything in one transaction.
A failure records the error on the job; a cancel removes partial artifacts.

Elsewhere: the job contract (JobContext, Produced) is engine/toolkit/contract.py; the
interleaved timing and the paired ratios are in engine/toolkit/timing.py; the
heartbeat thread and `run_claimed` (run_job with a heartbeat, as the worker runs it) are in
engine/worker.py.
"""

from __future__ import annotations

import logging
import shutil
import traceback
from pathlib import Path

from engine.runner.evaluating import evaluate, evaluate_config_for
from engine.runner.parent import compare_with_parent, is_classifier_with_same_labels
from engine.runner.saving import job_dir, save_and_reload, versions
from engine.toolkit.config import ConfigError, LabError
from engine.toolkit.contract import JobCancelled, JobContext
from engine.toolkit.data import DatasetError
from storage import jobs as store
from storage.models import Job

log = logging.getLogger("engine")

def run_job(job_id: int) -> str:
    """Execute a claimed (running) job to its end; return its final status. Never raises for
    a job's own failure: the error is recorded on the row."""
    from engine.toolkit import device as dev

    job = store.get_job(job_id)
    out_dir = job_dir(job_id)
    partial = out_dir.with_name(out_dir.name + ".partial")
    try:
        device = dev.setup()
        store.report_progress(job_id, 0.0, "loading", device=dev.describe(device))
        status = _run(job, device, partial, out_dir)
        return status
    except JobCancelled:
        shutil.rmtree(partial, ignore_errors=True)
        kept = out_dir.with_name(f"{out_dir.name}-best-on-cancel")  # distill keeps its best
        store.mark_cancelled(job_id, message="cancelled" + (
            f"; the best model so far is saved in {kept}" if kept.is_dir() else ""))
        return "cancelled"
    except (LabError, DatasetError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        store.fail(job_id, str(exc))
        return "failed"
    except Exception as exc:
        shutil.rmtree(partial, ignore_errors=True)
        log.exception("job %s failed", job_id)
        store.fail(job_id, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        return "failed"
    finally:
        _free_memory()


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _run(job: Job, device: str, partial: Path, out_dir: Path) -> str:
    import torch

    from engine.methods.registry import config_from_json, get_method
    from engine.toolkit import checkpoints as M
    from engine.toolkit.device import describe
    from engine.toolkit.timing import busy_warning, measure, speed_metrics, timed_models

    spec = get_method(job.method)
    cfg = config_from_json(job.method, job.config)
    ctx = JobContext(job, device)
    ecfg = evaluate_config_for(job, cfg)
    ctx.dataset  # noqa: B018 (fail early on a bad dataset, before loading any model)
    # Submit checks this against a live worker when it can; the job checks again here, on the
    # device it really has (a job queued with no worker alive, or moved to another machine).
    reason = spec.availability(cfg, describe(device)) if spec.availability else None
    if reason:
        raise ConfigError(reason)

    produced = spec.apply(cfg, ctx.span(0.0, 0.8)) if spec.config.produces_model else None
    ctx.span(0.0, 1.0)
    if spec.config.produces_model and produced is None:
        # the method chose to make no model (prune score_only): its notes are the whole
        # result; evaluating and timing the unchanged input again would only repeat its runs
        store.save_results(job.id, {"model": job.model, "dataset": job.dataset, **ctx.notes},
                           [], [])
        store.finish(job.id, None)
        return "done"
    accuracy_meaningful = ctx.input_ref.source != "preset"  # random presets: latency only
    parent_model = None
    if produced is not None:
        model, model_device = save_and_reload(ctx, cfg, ecfg, produced, partial)
        tokenizer = produced.tokenizer
        size_mb = M.weights_size_mb(partial)
        if is_classifier_with_same_labels(ctx):
            parent_model = ctx.load_input()
    else:
        model_device = device
        model = ctx.load_input()
        tokenizer = ctx.tokenizer
        size_mb = M.weights_size_mb(ctx.input_ref.path)

    metrics, preds = evaluate(ctx, model, tokenizer, model_device, ecfg, accuracy_meaningful,
                               (0.82, 0.9))
    facts = M.facts(model)
    metrics.update(facts)
    metrics.update(size_mb=size_mb, device=describe(model_device), seq_len=ecfg.max_length,
                   versions=versions(), threads=torch.get_num_threads())
    if produced is not None:
        metrics.update(produced.notes)
    metrics.update(ctx.notes)
    slow_note = metrics.pop("if_not_faster", None)  # shown only if not faster (below)

    runtime = produced.runtime if produced else "eager"
    timed = timed_models(model, model_device, runtime, parent_model, device)
    texts = ctx.dataset.test.texts[:256]
    lat = measure(timed, tokenizer, texts, ecfg.batch_sizes, ecfg.max_length,
                  warmup=ecfg.warmup, runs=ecfg.latency_runs,
                  progress=lambda f, m: ctx.progress(0.9 + 0.09 * f, m))
    # role is self | parent; a parent timed both eager and compiled has rows of both runtimes
    latencies = [{"role": "self" if role == "self" else "parent", **row}
                 for role, rows in lat.items() for row in rows]
    metrics["runtime"] = runtime
    if runtime == "compiled":
        metrics["compile_seconds"] = round(sum(timed["self"].first_call_s.values()), 1)
    busy = busy_warning(model_device)
    if busy:
        metrics["timing_warning"] = busy
    if parent_model is not None:
        metrics.update(speed_metrics(lat, runtime))
        compare_with_parent(metrics, ctx, parent_model, ecfg, size_mb, slow_note, busy)

    output_model = None
    if produced is not None:
        ctx.progress(0.995, "registering the model", force=True)
        shutil.rmtree(out_dir, ignore_errors=True)
        partial.rename(out_dir)
        output_model = f"job:{job.id}"
        store.register_model(output_model, str(out_dir), "job", job_id=job.id,
                             alias=job.alias, method=job.method, size_mb=size_mb,
                             info={"label_names": ctx.dataset.label_names,
                                   "dataset": job.dataset, "input_model": job.model,
                                   "max_length": ecfg.max_length},
                             **facts)
    store.save_results(job.id, {"model": output_model or job.model, "dataset": job.dataset,
                                **metrics}, latencies, preds)
    store.finish(job.id, output_model)
    return "done"


