"""Sequence-length sweep: latency per length and batch size, split into attention and feed-forward.

`python -m engine submit seqlen --model M --set lengths=16,32,64,128,256,512 [--set against=M2]`
The runner times the model (and `against`, interleaved, role parent) at every length, batch
size and runtime, and stores a latency row for each and metrics["seqlen_sweep"]
(engine/toolkit/paired.sweep_table). Before that this method measures where the time goes
(metrics["attention_split"]): at each length and batch size, eager, the full model, the model
with every self-attention block replaced by identity, and the model with every feed-forward
block replaced by identity are timed interleaved in one `measure` call; attention_ms = full
p50 - p50 without attention, ffn_ms = full p50 - p50 without feed-forward (each block as a
whole: attention includes its Q/K/V and output projections and LayerNorm, whose cost is linear
in length; the score/softmax/context part is the quadratic one). No accuracy pass.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from engine.methods.registry import register
from engine.toolkit.config import ConfigError, MethodConfig, param


@dataclass(frozen=True)
class SeqlenConfig(MethodConfig):
    """Latency at several sequence lengths, with the attention share of the time."""

    method = "seqlen"
    version = 1
    produces_model = False
    measures_accuracy = False

    lengths: list[int] = param([16, 32, 64, 128, 256, 512], "Sequence lengths to time "
                               "(tokens, padded to exactly that length).", min=8, max=512)
    batch_sizes: list[int] = param([1, 8], "Batch sizes at which latency is measured.",
                                   min=1, max=1024)
    against: str = param("", "Optional: another model timed interleaved at every length "
                         "(paired ratios per length); empty: the input model alone.")
    runtimes: list[str] = param(["eager"], "Runtimes timed (compiled: one compile per length "
                                "and batch size, 10-30 s each for MiniLM on 2 threads).",
                                choices=("eager", "compiled"))
    split: bool = param(True, "Also time the model without attention and without "
                        "feed-forward (eager) to split the time.")
    warmup: int = param(2, "Untimed runs before timing, per batch size.", min=0, max=100,
                        advanced=True)
    latency_runs: int = param(30, "Timed runs per length and batch size, at least.", min=2,
                              max=1000, advanced=True)
    latency_max_runs: int = param(30, "Timed runs at most.", min=0, max=5000, advanced=True)

    def check(self) -> None:
        if not self.lengths:
            raise ConfigError("seqlen: give at least one length, e.g. lengths=16,64,256")
        if len(set(self.lengths)) != len(self.lengths):
            raise ConfigError("seqlen: each length once, please")

    def timing_lengths(self) -> list[int]:
        """The lengths the runner times at (engine/runner/evaluating.timing_lengths)."""
        return sorted(self.lengths)

    def pair_with(self) -> str | None:
        return self.against.strip() or None


def check_input(cfg: SeqlenConfig, card: dict[str, Any], dataset) -> None:
    """Every length must fit the model's (and `against`'s) position embeddings."""
    from engine.toolkit.timing import check_length, check_other_model

    check_length(card, cfg.lengths, "seqlen")
    if cfg.against.strip():
        check_other_model(cfg.against, cfg.lengths, "seqlen")


def bert_layers(model) -> list:
    """The transformer layers with a self-attention and a feed-forward block (BERT-style:
    .attention, .intermediate, .output)."""
    return [m for m in model.modules()
            if all(hasattr(m, a) for a in ("attention", "intermediate", "output"))
            and hasattr(m, "feed_forward_chunk")]


class Without:
    """Call `model` with one kind of block replaced by identity for the call's duration
    (`drop`: "attention" or "ffn"); the model itself is unchanged between calls."""

    def __init__(self, model, drop: str):
        self.model, self.drop, self.layers = model, drop, bert_layers(model)

    def __call__(self, **inputs):
        with self._dropped():
            return self.model(**inputs)

    @contextmanager
    def _dropped(self):
        for layer in self.layers:
            if self.drop == "attention":  # BertAttention returns (output, weights)
                layer.attention.forward = lambda hidden_states, *a, **k: (hidden_states, None)
            else:
                layer.feed_forward_chunk = lambda attention_output: attention_output
        try:
            yield
        finally:
            for layer in self.layers:
                target = layer.attention if self.drop == "attention" else layer
                name = "forward" if self.drop == "attention" else "feed_forward_chunk"
                target.__dict__.pop(name, None)


def attention_split(models: dict[str, Any], tokenizer, texts: list[str], lengths: list[int],
                    batch_sizes: list[int], device: str, warmup: int, runs: int,
                    progress=None) -> list[dict]:
    """Per role (name in `models`), length and batch size: {role, seq_len, batch_size,
    runtime: "eager", full_ms, attention_ms, ffn_ms, attention_share (attention_ms /
    full_ms)}, each from one interleaved `measure` of the full model and its two variants.
    Differences below zero (noise) are kept at zero."""
    from engine.toolkit.timing import Timed, measure

    out = []
    steps = len(lengths)
    for k, length in enumerate(lengths):
        timed = {}
        for role, model in models.items():
            if not bert_layers(model):
                continue
            timed[f"{role}:full"] = Timed(model, device)
            timed[f"{role}:attention"] = Timed(Without(model, "attention"), device)
            timed[f"{role}:ffn"] = Timed(Without(model, "ffn"), device)
        if not timed:
            return out
        lat = measure(timed, tokenizer, texts, batch_sizes, length, warmup=warmup, runs=runs,
                      progress=(lambda f, m, k=k: progress((k + f) / steps, m))
                      if progress else None)
        for role in models:
            if f"{role}:full" not in lat:
                continue
            for full, no_att, no_ffn in zip(lat[f"{role}:full"], lat[f"{role}:attention"],
                                            lat[f"{role}:ffn"]):
                att = max(full["p50_ms"] - no_att["p50_ms"], 0.0)
                ffn = max(full["p50_ms"] - no_ffn["p50_ms"], 0.0)
                out.append({"role": role, "seq_len": length, "batch_size": full["batch_size"],
                            "runtime": "eager", "full_ms": round(full["p50_ms"], 3),
                            "attention_ms": round(att, 3), "ffn_ms": round(ffn, 3),
                            "attention_share": round(att / full["p50_ms"], 4)})
    return out


@register(SeqlenConfig)
def apply(cfg: SeqlenConfig, ctx) -> None:
    """Measure the attention/feed-forward split (ctx.notes["attention_split"]); the runner
    then times every length and stores the sweep."""
    if not cfg.split:
        return None
    from engine.toolkit.checkpoints import load_classifier, resolve

    # a base encoder (minilm-l6) is timed too: it gets a random head, only latency is taken
    models = {"self": ctx.load_input(require_head=False)}
    if cfg.pair_with():
        models["parent"] = load_classifier(resolve(cfg.pair_with()), require_head=False,
                                           label_names=ctx.dataset.label_names).to(ctx.device)
    ctx.progress(0.0, "timing attention and feed-forward apart", force=True)
    ctx.notes["attention_split"] = attention_split(
        models, ctx.tokenizer, ctx.dataset.test.texts[:256], sorted(cfg.lengths),
        cfg.batch_sizes, ctx.device, cfg.warmup, cfg.latency_runs,
        progress=lambda f, m: ctx.progress(f, f"attention split: {m}"))
    return None
