"""`run_job(job_id)`: the one function that executes a job, whatever process runs it.

It rebuilds the config from the job row, calls the method's handler with a JobContext, saves
the produced model, evaluates it with the same harness as every other model, times it
interleaved with its parent (paired speedup), and stores everything in one transaction.
A failure records the error on the job; a cancel removes partial artifacts.

Elsewhere: the interleaved timing and the paired ratios are in engine/benchmark.py; the
heartbeat thread and `run_claimed` (run_job with a heartbeat, as the worker runs it) are in
engine/worker.py.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import ConfigError, LabError
from engine.data import Dataset, DatasetError, load_dataset
from engine.models import ModelRef
from storage import jobs as store
from storage import settings
from storage.models import Job

log = logging.getLogger("engine")

SLOW_SPEEDUP = 1.1  # below this paired speedup a method's "why not faster" note is shown


class JobCancelled(Exception):
    """Raised inside a job at a progress step after the user asked to cancel it."""


@dataclass
class Produced:
    """What a model-producing method hands back to the runner."""

    model: Any  # torch.nn.Module
    tokenizer: Any
    meta: dict[str, Any] = field(default_factory=dict)  # saved in lab_meta.json ("loader": name)
    notes: dict[str, Any] = field(default_factory=dict)  # extra metrics (sparsity, scores...)
    save: Any = None  # save(out_dir) when the default save_pretrained does not fit
    device: str | None = None  # where the model runs (e.g. "cpu" for CPU-only int8 kernels)
    runtime: str = "eager"


class JobContext:
    """Everything a method needs from the job: inputs, device, progress, curves, cancel."""

    def __init__(self, job: Job, device: str):
        self.job = job
        self.job_id = job.id
        self.device = device
        self._last_write = 0.0
        self._curve_buffer: dict[str, tuple[float, float]] = {}
        self._span = (0.0, 1.0)
        # Extra metrics a method reports even when it returns no model (e.g. head scores).
        self.notes: dict[str, Any] = {}

    # -- inputs ---------------------------------------------------------------------------
    @functools.cached_property
    def dataset(self) -> Dataset:
        return load_dataset(self.job.dataset)

    @functools.cached_property
    def input_ref(self) -> ModelRef:
        from engine.models import resolve

        return resolve(self.job.model)

    @functools.cached_property
    def tokenizer(self):
        from engine.models import load_tokenizer

        return load_tokenizer(self.input_ref)

    def load_input(self, require_head: bool = True, eager_attention: bool = False):
        """A fresh copy of the input model on the job's device, labels from the dataset."""
        from engine.models import load_classifier

        model = load_classifier(self.input_ref, label_names=self.dataset.label_names,
                                require_head=require_head, eager_attention=eager_attention)
        return model.to(self.device)

    # -- reporting ------------------------------------------------------------------------
    def progress(self, fraction: float, message: str | None = None, force: bool = False) -> None:
        """Report progress (0..1 of the current span); raise JobCancelled if asked to stop.

        Writes are throttled to a few per second; the cancel flag is read with each write."""
        now = time.monotonic()
        if not force and now - self._last_write < 0.5 and fraction < 1.0:
            return
        self._last_write = now
        lo, hi = self._span
        cancel = store.report_progress(self.job_id, lo + (hi - lo) * fraction, message)
        if self._curve_buffer:
            store.add_curve_points(self.job_id, self._curve_buffer)
            self._curve_buffer = {}
        if cancel:
            raise JobCancelled(f"job {self.job_id} cancelled")

    def curve(self, step: float, **values: float) -> None:
        """Add points to live curves (train_loss, val_accuracy...) shown on the Jobs page."""
        for name, value in values.items():
            if name in self._curve_buffer:  # keep every point: flush the older one now
                store.add_curve_points(self.job_id, self._curve_buffer)
                self._curve_buffer = {}
            self._curve_buffer[name] = (step, value)

    def span(self, lo: float, hi: float) -> JobContext:
        """Map later progress(0..1) calls onto [lo, hi] of the whole job."""
        self._span = (lo, hi)
        return self


def _out_dir(job_id: int) -> Path:
    return settings.artifacts_dir() / f"job-{job_id}"


def _versions() -> dict[str, str]:
    import torch
    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        import torchao

        out["torchao"] = torchao.__version__
    except ImportError:
        pass
    return out


def evaluate_config_for(job: Job, cfg) -> Any:
    """The evaluation settings: an evaluate job's own config, else the defaults with the
    method's max_length (so a model is measured at the length it was built for)."""
    from engine.methods.evaluate import EvaluateConfig

    if isinstance(cfg, EvaluateConfig):
        return cfg
    max_length = getattr(cfg, "max_length", None)
    return EvaluateConfig(max_length=max_length) if max_length else EvaluateConfig()


def _evaluate(ctx: JobContext, model, tokenizer, device: str, ecfg, accuracy_meaningful: bool,
              span: tuple[float, float]) -> tuple[dict, list]:
    from engine.evaluation import classification_metrics, predict

    data = ctx.dataset
    test_texts, test_labels = data.test.texts, data.test.labels
    if ecfg.test_limit:
        test_texts, test_labels = test_texts[:ecfg.test_limit], test_labels[:ecfg.test_limit]
    lo, hi = span
    preds, probs = predict(model, tokenizer, test_texts, ecfg.max_length, device,
                           batch_size=ecfg.eval_batch_size,
                           progress=lambda f: ctx.progress(lo + (hi - lo) * f,
                                                           "evaluating on the test split"))
    metrics = classification_metrics(test_labels, preds, data.num_labels)
    rows = [(i, int(y), int(p), float(probs[i, p]))
            for i, (y, p) in enumerate(zip(test_labels, preds))]
    metrics["accuracy_meaningful"] = accuracy_meaningful
    metrics["test_examples"] = len(test_texts)
    return metrics, rows


def run_job(job_id: int) -> str:
    """Execute a claimed (running) job to its end; return its final status. Never raises for
    a job's own failure: the error is recorded on the row."""
    from engine import device as dev

    job = store.get_job(job_id)
    out_dir = _out_dir(job_id)
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

    from engine import models as M
    from engine.benchmark import busy_warning, measure, speed_metrics, timed_models
    from engine.device import describe
    from engine.registry import config_from_json, get_method

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
        model, model_device = _save_and_reload(ctx, cfg, ecfg, produced, partial)
        tokenizer = produced.tokenizer
        size_mb = M.weights_size_mb(partial)
        if _is_classifier_with_same_labels(ctx):
            parent_model = ctx.load_input()
    else:
        model_device = device
        model = ctx.load_input()
        tokenizer = ctx.tokenizer
        size_mb = M.weights_size_mb(ctx.input_ref.path)

    metrics, preds = _evaluate(ctx, model, tokenizer, model_device, ecfg, accuracy_meaningful,
                               (0.82, 0.9))
    facts = M.facts(model)
    metrics.update(facts)
    metrics.update(size_mb=size_mb, device=describe(model_device), seq_len=ecfg.max_length,
                   versions=_versions(), threads=torch.get_num_threads())
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
        _compare_with_parent(metrics, ctx, parent_model, ecfg, size_mb, slow_note, busy)

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


def _save_and_reload(ctx: JobContext, cfg, ecfg, produced: Produced,
                     partial: Path) -> tuple[Any, str]:
    """Save the produced model into `partial` (with lab_meta.json), then load it back:
    what is measured is what was saved, so a model that does not reload fails the job here.
    Returns (reloaded model on its device, that device)."""
    from engine import models as M

    job = ctx.job
    ctx.progress(0.8, "saving the model", force=True)
    shutil.rmtree(partial, ignore_errors=True)
    meta = {"method": job.method, "job_id": job.id, "input_model": job.model,
            "dataset": job.dataset, "max_length": ecfg.max_length,
            "label_names": ctx.dataset.label_names, "config": cfg.to_json(), **produced.meta}
    if produced.save is not None:
        partial.mkdir(parents=True)
        produced.save(partial)
        (partial / M.META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    else:
        M.save_model(produced.model, produced.tokenizer, partial, meta)
    del produced.model
    ref = M.ModelRef(f"job:{job.id}", str(partial), "job", job.id)
    model_device = produced.device or ctx.device
    return M.load_classifier(ref).to(model_device), model_device


def _compare_with_parent(metrics: dict[str, Any], ctx: JobContext, parent_model, ecfg,
                         size_mb: float | None, slow_note: str | None,
                         busy: str | None) -> None:
    """Add the parent's accuracy, the accuracy delta/retained, the size ratio, and why the
    model is not faster when a paired speedup is below SLOW_SPEEDUP (`metrics` already holds
    the paired speedups)."""
    from engine import models as M
    from engine.benchmark import ratios

    slow = {bs: x for bs, x in metrics["speedup_vs_parent"].items() if x < SLOW_SPEEDUP}
    if slow and (slow_note or busy):
        metrics["why_not_faster"] = " ".join(
            filter(None, [f"Not faster here ({ratios(slow)}).", busy, slow_note]))
    if busy:
        metrics["speed_summary"] += " " + busy
    parent_size = M.weights_size_mb(ctx.input_ref.path)
    if parent_size and size_mb:
        metrics["size_ratio_vs_parent"] = round(parent_size / size_mb, 3)
    parent_acc = _parent_accuracy(ctx, parent_model, ecfg)
    if parent_acc is not None:
        metrics["parent_accuracy"] = parent_acc
        metrics["accuracy_delta_vs_parent"] = round(metrics["accuracy"] - parent_acc, 5)
        if parent_acc > 0:
            metrics["accuracy_retained"] = round(metrics["accuracy"] / parent_acc, 5)


def _is_classifier_with_same_labels(ctx: JobContext) -> bool:
    """Pairing against the parent makes sense only when the parent is a classifier for the
    same labels (not the base encoder a finetune starts from)."""
    from engine.models import read_meta

    ref = ctx.input_ref
    if ref.source == "preset":
        return True
    if ref.source == "hub":
        return False
    meta = read_meta(ref.path)
    if meta.get("label_names"):
        return meta["label_names"] == ctx.dataset.label_names
    cfg = json.loads((Path(ref.path) / "config.json").read_text())
    is_head = any(a.endswith("ForSequenceClassification") for a in cfg.get("architectures", []))
    return is_head and cfg.get("num_labels", len(cfg.get("id2label", {}))) == \
        ctx.dataset.num_labels


def _parent_accuracy(ctx: JobContext, parent_model, ecfg) -> float | None:
    """The parent's accuracy on the same test split: from its own stored evaluation when one
    matches (same dataset and length), else measured now with the same harness."""
    job = store.latest_metrics_for(ctx.job.model, ctx.job.dataset) if ctx.job.model else None
    if job is None and ctx.input_ref.job_id is not None:
        job = store.latest_metrics_for(f"job:{ctx.input_ref.job_id}", ctx.job.dataset)
    m = job.metrics if job is not None else None
    if (m is not None and m.seq_len == ecfg.max_length and m.accuracy is not None
            and m.extra.get("test_examples") == _n_test(ctx, ecfg)):
        return m.accuracy
    metrics, _ = _evaluate(ctx, parent_model, ctx.tokenizer, ctx.device, ecfg, True, (0.99, 0.99))
    return metrics["accuracy"]


def _n_test(ctx: JobContext, ecfg) -> int:
    n = len(ctx.dataset.test)
    return min(n, ecfg.test_limit) if ecfg.test_limit else n
