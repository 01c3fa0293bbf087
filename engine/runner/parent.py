"""Parent comparison step: is the input a comparable classifier, its accuracy on the same
test split, the accuracy delta, the size ratio, and why a model is not faster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.runner.evaluating import evaluate
from engine.toolkit.contract import JobContext
from engine.toolkit.paired import NOT_FASTER as SLOW_SPEEDUP  # the one "not faster" threshold
from storage import jobs as store


def compare_with_parent(metrics: dict[str, Any], ctx: JobContext, parent_model, ecfg,
                         size_mb: float | None,
                         busy: str | None) -> None:
    """Add the parent's accuracy, the accuracy delta/retained, the size ratio, and why the
    model is not faster when a paired speedup is below SLOW_SPEEDUP (`metrics` already holds
    the paired speedups)."""
    from engine.toolkit import checkpoints as M
    from engine.toolkit.paired import ratios

    slow = {bs: x for bs, x in metrics["speedup_vs_parent"].items() if x < SLOW_SPEEDUP}
    slow_note = _explain_slow(ctx, metrics) if slow else None  # the method's own hook
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


def _explain_slow(ctx: JobContext, metrics: dict[str, Any]) -> str | None:
    """The method's own causes (its spec's explain_slow hook), from the job's measured facts."""
    from engine.methods.registry import config_from_json, get_method

    spec = get_method(ctx.job.method)
    if spec.explain_slow is None:
        return None
    cfg = config_from_json(ctx.job.method, ctx.job.config)
    return spec.explain_slow(cfg, metrics.get("device") or ctx.device, metrics)


def is_classifier_with_same_labels(ctx: JobContext) -> bool:
    """Pairing against the parent makes sense only when the parent is a classifier for the
    same labels (not the base encoder a finetune starts from)."""
    from engine.toolkit.checkpoints import read_meta

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
    metrics, _ = evaluate(ctx, parent_model, ctx.tokenizer, ctx.device, ecfg, True, (0.99, 0.99))
    return metrics["accuracy"]


def _n_test(ctx: JobContext, ecfg) -> int:
    n = len(ctx.dataset.test)
    return min(n, ecfg.test_limit) if ecfg.test_limit else n


def earlier_latencies(model_id: str, exclude_job: int) -> list[dict]:
    """Latency rows this lab stored earlier for model `model_id` (as a job's own model or as
    the model a job was paired with), from done local jobs other than `exclude_job` whose
    timing was not itself flagged unreliable. Ids are matched by the model's folder, so
    `default` and `job:N` of the teacher are one model."""
    from engine.toolkit.timing import LATENCY_KEYS

    paths: dict[str, str] = {}
    for m in store.list_models():
        paths[m.name] = m.path
        if m.alias:
            paths[m.alias] = m.path

    def key(ref: str | None) -> str | None:
        return paths.get(ref, ref) if ref else None

    target = key(model_id)
    rows = []
    for j in store.list_jobs(statuses=("done",)):
        extra = (j.metrics.extra if j.metrics is not None else None) or {}
        if j.id == exclude_job or getattr(j, "origin", None) or extra.get("timing_unreliable"):
            continue
        ids = {"self": j.output_model or j.model, "parent": extra.get("paired_with") or j.model}
        rows += [{k: getattr(r, k) for k in LATENCY_KEYS} for r in j.latencies
                 if key(ids.get(r.role)) == target]
    return rows


def timing_trust(job_id: int, latencies: list[dict], refs: dict[str, str | None]) -> str | None:
    """metrics["timing_unreliable"] for this run's stored `latencies` (rows with a role), or
    None: a wide spread within the run, or a timed model (`refs`: role -> model id, for the
    roles that are stored models) departing from its own earlier timings here."""
    from engine.toolkit.timing_trust import drift_problems, spread_problems, unreliable_reason

    problems = spread_problems(latencies)
    for role, model_id in refs.items():
        if model_id:
            rows = [r for r in latencies if r["role"] == role]
            who = "parent" if role == "parent" else "model"
            problems += drift_problems(rows, earlier_latencies(model_id, job_id), who=who)
    return unreliable_reason(problems)
