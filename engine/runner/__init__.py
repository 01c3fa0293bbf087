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

from engine.runner.evaluating import (
    evaluate,
    evaluate_config_for,
    measures_accuracy,
    pair_with,
    time_models,
    timing_lengths,
)
from engine.runner.parent import compare_with_parent, is_classifier_with_same_labels, timing_trust
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
    from engine.toolkit.timing import (
        busy_warning,
        by_role,
        latency_rows,
        speed_metrics,
        sweep_table,
        timed_models,
        timing_runtimes,
    )

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

    if spec.config.produces_model:
        produced = spec.apply(cfg, ctx.span(0.0, 0.8))
    else:  # a method that only measures may do its own part first (seqlen's split)
        produced = None
        spec.apply(cfg, ctx.span(0.0, 0.4))
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
    pair_id = pair_with(cfg)  # a model to time against instead of the parent (retime)
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
    if pair_id:
        parent_model = M.load_classifier(M.resolve(pair_id),
                                         label_names=ctx.dataset.label_names).to(device)

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
    slow_note = metrics.pop("if_not_faster", None)  # shown only if not faster (below)

    # ---- timing (engine/toolkit/timing.py): every runtime, self and parent interleaved
    runtime = produced.runtime if produced else "eager"
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
    busy = busy_warning(model_device)
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


