"""Accuracy-aware int8 (quantize with max_drop): keep the most sensitive parts in float until
the validation accuracy drop of the quantized model is within the budget.

The order comes from the model's stored sensitivity map (the newest `sensitivity` job on the
same input model and dataset, engine/reports/sensitivity.latest_sensitivity) or, when there is
none, from the int8 half of that map measured here through the same shared code
(engine/toolkit/sensitivity.py). The number of parts kept float is then searched by measuring:
k most sensitive parts float, the rest int8, scored on the validation split against the float
model (never the test split). The drop is not monotone in k for certain, so the search is a
bisection over measured points: the k it returns was measured within the budget (or is every
part float, which is the float model itself: drop 0).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from engine.toolkit import sensitivity as S
from engine.toolkit.config import LabError


def smallest_float_set(n: int, drop_with: Callable[[int], float],
                       budget: float) -> tuple[int, float, list[dict[str, Any]]]:
    """The smallest k (0..n) of most sensitive parts kept float whose measured drop is within
    `budget`, by bisection. `drop_with(k)` measures the drop (0..1) with k parts float; k = n
    (every part float: the float model) is taken as drop 0 without measuring. Returns (k, its
    drop, the probes [{float_parts: k, val_drop}] in the order measured)."""
    probes: list[dict[str, Any]] = []

    def probe(k: int) -> float:
        drop = float(drop_with(k))
        probes.append({"float_parts": k, "val_drop": round(drop, 6)})
        return drop

    first = probe(0)
    if first <= budget:
        return 0, first, probes
    lo, hi, hi_drop = 0, n, 0.0  # lo: measured over budget; hi: within it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        drop = probe(mid)
        if drop <= budget:
            hi, hi_drop = mid, drop
        else:
            lo = mid
    return hi, hi_drop, probes


def stored_order(job_model: str, dataset: str, parts: list[S.Part]) -> tuple[list, int | None]:
    """The (layer, part) order of the input model's stored map, most sensitive first, and the
    sensitivity job's id; ([], None) when no map for this model and dataset covers its parts."""
    from engine.reports.sensitivity import latest_sensitivity
    from storage import jobs as store

    names = [job_model]
    row = store.find_model(job_model)
    if row is not None and row.name not in names:
        names.append(row.name)  # "default" and "job:1" are one model
    for name in names:
        found = latest_sensitivity(name)
        if not found or found.get("dataset", dataset) != dataset:
            continue
        order = S.ranked(found["quant"])
        if {(p.layer, p.part) for p in parts} <= set(order):
            return order, found["job_id"]
    return [], None


def measure_drop(scorer: S.Scorer, quantized) -> float:
    """Validation accuracy drop (0..1) of `quantized` against the float model."""
    return scorer.score(quantized)[0]


def size_cost_mb(model, parts: list[S.Part]) -> float:
    """MB that keeping `parts` float costs against int8, estimated from the weight shapes:
    4 bytes a weight in fp32 against 1 byte plus one fp32 scale per row in int8 (the
    embeddings: every table of the embeddings block)."""
    import torch

    modules = dict(model.named_modules())
    extra = 0
    for p in parts:
        module = modules[p.fqn]
        weights = [m.weight for m in module.modules()
                   if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))]
        for w in weights:
            extra += 4 * w.numel() - (w.numel() + 4 * w.shape[0])
    return round(extra / 1e6, 3)


def choose_float_parts(cfg, ctx, model, quantize: Callable[[Any, list[str]], None]
                       ) -> tuple[list[S.Part], dict[str, Any]]:
    """Which parts stay float for `cfg.max_drop`, and the notes that say so. `model` is the
    float input (unchanged); `quantize(copy, float_fqns)` quantizes a copy in place as the job
    will, keeping those modules float."""
    # the embedding tables are a part only when the scheme makes them int8 (embeddings=true)
    parts = [p for p in S.model_parts(model) if p.layer is not None or cfg.embeddings]
    texts, labels = S.validation_sample(ctx.dataset, cfg.max_drop_examples)
    ctx.progress(0.1, "scoring the float model on the validation split", force=True)
    scorer = S.Scorer(model, ctx.tokenizer, texts, labels, cfg.max_length, ctx.device)
    order, sens_job = stored_order(ctx.job.model, ctx.job.dataset, parts)
    if not order:
        rows = S.quant_sensitivity(scorer, parts, lambda f, m: ctx.progress(
            0.12 + 0.4 * f, f"no stored sensitivity: {m}", force=True))
        order = S.ranked(rows)
    by_key = {(p.layer, p.part): p for p in parts}
    ordered = [by_key[k] for k in order if k in by_key]

    def drop_with(k: int) -> float:
        ctx.progress(0.55 + 0.3 * min(1.0, k / max(1, len(ordered))),
                     f"int8 with {k} part{'s' if k != 1 else ''} float", force=True)
        variant = copy.deepcopy(model)
        quantize(variant, [p.fqn for p in ordered[:k]])
        return measure_drop(scorer, variant)

    k, drop, probes = smallest_float_set(len(ordered), drop_with, cfg.max_drop)
    kept = ordered[:k]
    if k == len(ordered) and ordered:
        raise LabError(f"quantize: no int8 part fits max_drop={cfg.max_drop}: every part had to "
                       f"stay float, which is the float model itself (measured: "
                       f"{100 * probes[0]['val_drop']:.2f} points lost with every part int8, on "
                       f"{len(texts)} validation examples); raise max_drop, or use the model "
                       f"as it is")
    cost = size_cost_mb(model, kept)
    notes = {
        "max_drop": cfg.max_drop, "float_parts": [{"layer": p.layer, "part": p.part}
                                                  for p in kept],
        "val_drop": round(drop, 6), "val_examples": len(texts),
        "val_accuracy_float": round(scorer.base_accuracy, 6),
        "val_drop_all_int8": probes[0]["val_drop"], "float_search": probes,
        "sensitivity_job": sens_job,
        "sensitivity_source": (f"sensitivity job {sens_job}" if sens_job else
                               "measured in this job (no stored sensitivity map for this "
                               "model and dataset)"),
        "float_size_cost_mb": cost,
    }
    return kept, notes


def describe(notes: dict[str, Any], plain_int8: dict[str, Any] | None) -> str:
    """The accuracy-aware result in plain words."""
    kept = notes["float_parts"]
    budget = 100 * notes["max_drop"]
    where = ", ".join("embeddings" if p["layer"] is None else f"layer {p['layer']} {p['part']}"
                      for p in kept)
    text = (f"Accuracy-aware int8 (budget {budget:.2f} points on {notes['val_examples']} "
            f"validation examples; order from {notes['sensitivity_source']}): ")
    if kept:
        text += (f"every part int8 lost {100 * notes['val_drop_all_int8']:.2f} points, so "
                 f"{len(kept)} part{'s' if len(kept) > 1 else ''} stayed float ({where}); the "
                 f"validation drop is now {100 * notes['val_drop']:.2f} points, for about "
                 f"{notes['float_size_cost_mb']:.2f} MB more than all int8.")
    else:
        text += (f"every part int8 lost {100 * notes['val_drop']:.2f} points, within the "
                 f"budget: no part stayed float.")
    if plain_int8:
        facts = [f"{plain_int8['size_mb']:.2f} MB" if plain_int8.get("size_mb") else "",
                 f"test accuracy {plain_int8['accuracy']:.1%}"
                 if plain_int8.get("accuracy") is not None else ""]
        facts = [f for f in facts if f]
        text += (f" A plain int8 run of the same model is job {plain_int8['job']}"
                 + (f" ({', '.join(facts)})" if facts else "") + ": compare the two on the "
                 "Results page.")
    return text


def plain_int8_run(job_model: str, dataset: str, scheme: str,
                   embeddings: bool) -> dict[str, Any] | None:
    """The newest done quantize job of the same input model, dataset and scheme without
    max_drop: {job, size_mb, accuracy}, or None."""
    from storage import jobs as store
    from storage.models import DONE

    for job in store.list_jobs(statuses=(DONE,), method="quantize", refresh_first=False):
        data = (job.config or {}).get("data", {})
        if (job.model, job.dataset) != (job_model, dataset) or data.get("max_drop"):
            continue
        if data.get("scheme", "int8-dynamic") != scheme or \
                bool(data.get("embeddings", True)) != embeddings or job.metrics is None:
            continue
        return {"job": job.id, "size_mb": job.metrics.size_mb,
                "accuracy": job.metrics.accuracy}
    return None
