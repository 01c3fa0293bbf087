"""Evaluation step: the same harness for every model (accuracy and macro-F1 on the test split,
per-example predictions kept)."""

from __future__ import annotations

from typing import Any

from engine.toolkit.contract import JobContext
from storage.models import Job


def evaluate_config_for(job: Job, cfg) -> Any:
    """The evaluation settings: an evaluate job's own config, else the defaults with the
    method's max_length (so a model is measured at the length it was built for)."""
    from engine.methods.evaluate import EvaluateConfig

    if isinstance(cfg, EvaluateConfig):
        return cfg
    max_length = getattr(cfg, "max_length", None)
    return EvaluateConfig(max_length=max_length) if max_length else EvaluateConfig()


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
