"""Evaluation step: the same harness for every model (accuracy and macro-F1 on the test split,
per-example predictions kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.toolkit.contract import JobContext
from storage.models import Job


def evaluate_config_for(job: Job, cfg) -> Any:
    """The evaluation and timing settings: an evaluate job's own config, else the defaults
    overridden by the method's fields of the same names (max_length for every method, so a
    model is measured at the length it was built for; retime and seqlen also set the timing
    fields: batch_sizes, runtimes, warmup, latency_runs, latency_max_runs)."""
    import dataclasses

    from engine.toolkit.measuring import EvaluateConfig

    if isinstance(cfg, EvaluateConfig):
        return cfg
    names = {f.name for f in dataclasses.fields(EvaluateConfig)}
    return EvaluateConfig(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                             if f.name in names})


def pair_with(cfg) -> str | None:
    """The model id a job's model is timed against instead of its parent, when its config
    names one: a config may define `pair_with() -> model id | None` (retime, seqlen)."""
    hook = getattr(cfg, "pair_with", None)
    return hook() if callable(hook) else None


def stored_runtime(path: str, timed: list[str] | None = None) -> str:
    """The torch runtime a stored model was made to run under (quantize records `compiled` in
    its lab_meta.json: its int8 kernels only pay off fused), else eager: the headline runtime
    of a job that times a model it did not make (evaluate, retime), so that a re-timed int8
    model is not headlined by its eager ratio while its own job headlined the compiled one.
    Only among the `timed` runtimes when given: those asked for win (runtimes=eager)."""
    from engine.toolkit.checkpoints import read_meta

    runtime = read_meta(path).get("runtime") if path and Path(path).is_dir() else None
    ok = runtime in ("eager", "compiled") and (timed is None or runtime in timed)
    return runtime if ok else "eager"


def timing_lengths(cfg, ecfg) -> list[int]:
    """The sequence lengths latency is timed at: the config's `timing_lengths()` when it
    defines one (seqlen's sweep), else the evaluation length."""
    hook = getattr(cfg, "timing_lengths", None)
    return list(hook()) if callable(hook) else [ecfg.max_length]


def measures_accuracy(cfg) -> bool:
    """False for a method that only times (retime, seqlen: class attribute
    `measures_accuracy = False`): the accuracy pass is skipped."""
    return bool(getattr(cfg, "measures_accuracy", True))


def time_models(ctx: JobContext, timed: dict, tokenizer, ecfg, lengths: list[int],
                span: tuple[float, float]) -> dict[str, list[dict]]:
    """`measure` at every length in `lengths` (all models interleaved within each length);
    {name: rows of every length}."""
    from engine.toolkit.timing import measure

    texts = ctx.dataset.test.texts[:256]
    lo, hi = span
    lat: dict[str, list[dict]] = {}
    for k, length in enumerate(lengths):
        a = lo + (hi - lo) * k / len(lengths)
        b = lo + (hi - lo) * (k + 1) / len(lengths)
        part = measure(timed, tokenizer, texts, ecfg.batch_sizes, length, warmup=ecfg.warmup,
                       runs=ecfg.latency_runs, max_runs=ecfg.latency_max_runs,
                       progress=lambda f, m, a=a, b=b, n=length: ctx.progress(
                           a + (b - a) * f, f"{m}, length {n}"))
        for name, rows in part.items():
            lat.setdefault(name, []).extend(rows)
    return lat


def evaluate(ctx: JobContext, model, tokenizer, device: str, ecfg, accuracy_meaningful: bool,
              span: tuple[float, float]) -> tuple[dict, list]:
    from engine.toolkit.evaluation import classification_metrics, predict

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
