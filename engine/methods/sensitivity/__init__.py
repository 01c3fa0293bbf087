"""Sensitivity map: where int8 and dropping a layer hurt a model, per layer and part, with head
importance and each part's share of the latency.

`python -m engine submit sensitivity --model M [--set val_examples=500]`. On the first
`val_examples` of the validation split's judging half (never the test split, never the
half training picks checkpoints on), against the float model: the
accuracy drop and the logits' SQNR (dB) with only one part int8 (query, key, value, attention
output, FFN in, FFN out of each layer, and the embeddings as layer None; engine/toolkit/
sensitivity.py), the accuracy drop with only one layer dropped, every head's gradient
importance (engine/toolkit/head_scoring.py, as prune scores them) and each part's share of a
forward pass measured here (forward hooks with timers; see `latency_share`). It makes no model:
the map is stored as metrics["sensitivity"] (shape: engine/reports/sensitivity.py), shown on
the "Where it hurts" page and read by quantize's max_drop. The runner then times the model as
it is (eager by default) and runs no test-split accuracy pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.methods.registry import register
from engine.toolkit.config import ConfigError, MethodConfig, check_head_fits, param


@dataclass(frozen=True)
class SensitivityConfig(MethodConfig):
    """Defaults: 500 validation examples, every part, layer and head (MiniLM on 2 CPU threads:
    about 40 validation passes, a few minutes)."""

    method = "sensitivity"
    version = 1
    produces_model = False
    measures_accuracy = False

    val_examples: int = param(500, "Validation examples every variant is scored on (the first "
                              "N of the validation split's judging half, which training never "
                              "picks checkpoints on; never the test split); 0: all of it.",
                              min=0, max=100_000)
    max_length: int = param(64, "Tokens per example for scoring and latency.", min=8, max=512)
    layer_drop: bool = param(True, "Also score each layer dropped alone.")
    heads: bool = param(True, "Also score every attention head (gradient importance, Michel "
                        "et al. 2019: one backward pass over the validation examples).")
    batch_size: int = param(32, "Examples per forward pass (scoring, head gradients, the "
                            "latency batch).", min=1, max=1024, advanced=True)
    latency_batches: int = param(5, "Timed forward passes for each part's latency share "
                                 "(after one untimed).", min=1, max=200, advanced=True)
    # no `choices`: the generated form draws a list with choices as one selectbox
    runtimes: list[str] = param(["eager"], "Runtimes the whole model is timed under after the "
                                "map: eager and/or compiled (a compile step more).",
                                advanced=True)

    def check(self) -> None:
        unknown = [r for r in self.runtimes if r not in ("eager", "compiled")]
        if unknown or not self.runtimes:
            raise ConfigError(f"sensitivity: runtimes={self.runtimes}: list eager and/or "
                              f"compiled, e.g. runtimes=eager")


def check_input(cfg: SensitivityConfig, card: dict[str, Any], dataset) -> None:
    """The map scores the model's own predictions: it needs a classification head that fits
    the dataset."""
    check_head_fits("sensitivity", card, dataset)


@register(SensitivityConfig)
def apply(cfg: SensitivityConfig, ctx) -> None:
    """Measure the map into ctx.notes["sensitivity"] (the runner stores the notes)."""
    from engine.toolkit import sensitivity as S
    from engine.toolkit.architecture import chain, has_kind
    from engine.toolkit.config import LabError
    from engine.toolkit.head_scoring import head_importance

    if has_kind(chain(ctx.input_ref), "quantized"):
        raise LabError(f"sensitivity: {ctx.job.model} is quantized already; map its float "
                       f"parent instead")
    ctx.progress(0.0, "loading the model", force=True)
    model = ctx.load_input().eval()
    texts, labels = S.validation_sample(ctx.dataset, cfg.val_examples)
    parts = S.model_parts(model)

    def within(lo: float, hi: float):
        return lambda f, m: ctx.progress(lo + (hi - lo) * f, m, force=True)

    ctx.progress(0.02, "scoring the float model on the validation split", force=True)
    scorer = S.Scorer(model, ctx.tokenizer, texts, labels, cfg.max_length, ctx.device,
                      cfg.batch_size)
    quant = S.quant_sensitivity(scorer, parts, within(0.05, 0.6))
    drops = S.layer_drop_sensitivity(scorer, within(0.6, 0.8)) if cfg.layer_drop else []
    heads: list = []
    if cfg.heads:
        ctx.progress(0.8, "scoring heads by gradient", force=True)
        heads = head_importance(model, ctx.tokenizer, texts, labels, "gradient",
                                max_length=cfg.max_length, batch_size=cfg.batch_size,
                                device=ctx.device,
                                progress=lambda f: within(0.8, 0.9)(f, "scoring heads"))
    ctx.progress(0.9, "timing each part", force=True)
    share, total_ms = S.latency_share(model, ctx.tokenizer, texts, parts, cfg.max_length,
                                      ctx.device, cfg.batch_size, cfg.latency_batches)
    ctx.notes["sensitivity"] = {
        "split": "validation", "examples": len(texts),
        "base_accuracy": round(scorer.base_accuracy, 6),
        "layers": model.config.num_hidden_layers, "parts": list(S.PARTS),
        "quant": quant, "layer_drop": drops, "heads": heads, "latency_share": share,
        # beyond the fixed shape: what the map was measured on
        "dataset": ctx.job.dataset, "model": ctx.job.model, "max_length": cfg.max_length,
        "head_importance_method": "gradient" if heads else None,
        "latency_total_ms": total_ms, "latency_batch_size": cfg.batch_size,
        "latency_device": ctx.device,
        "accuracy_meaningful": ctx.input_ref.source != "preset",  # random weights: latency only
    }
    ctx.notes["sensitivity_summary"] = summary(quant, drops, share)
    ctx.progress(1.0, "map measured", force=True)


def summary(quant: list[dict], drops: list[dict], share: list[dict]) -> str:
    """One sentence per finding: where int8 hurts most, which layer matters most, where the
    time goes."""
    from engine.toolkit.sensitivity import ranked

    out = []
    if quant:
        layer, part = ranked(quant)[0]
        row = next(r for r in quant if (r["layer"], r["part"]) == (layer, part))
        where = "the embeddings" if layer is None else f"layer {layer}'s {part}"
        out.append(f"int8 hurts most in {where} ({100 * row['acc_drop']:.2f} points lost, "
                   f"SQNR {row['sqnr_db']:.1f} dB)." if row["acc_drop"] > 0 else
                   f"int8 in any one part flips no more predictions than it fixes; its "
                   f"largest error is in {where} (SQNR {row['sqnr_db']:.1f} dB).")
    if drops:
        worst = max(drops, key=lambda r: r["acc_drop"])
        out.append(f"Dropping layer {worst['layer']} costs the most "
                   f"({100 * worst['acc_drop']:.2f} points)." if worst["acc_drop"] > 0 else
                   "Dropping any one layer costs no accuracy on these examples.")
    if share:
        top = max(share, key=lambda r: r["share"])
        where = "the embeddings" if top["layer"] is None else f"layer {top['layer']} {top['part']}"
        out.append(f"The largest share of the time is {where} ({top['share']:.0%}).")
    return " ".join(out)
