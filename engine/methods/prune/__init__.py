"""Prune attention heads, layers, feed-forward neurons or weights (unstructured; 2:4 on a GPU),
then recover."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.methods.prune.checks import check_input  # noqa: F401
from engine.methods.registry import register
from engine.toolkit.architecture import register_change
from engine.toolkit.config import ConfigError, LabError, MethodConfig, param
from engine.toolkit.device import compute_capability
from engine.toolkit.heads import format_heads, parse_heads

__all__ = ["PruneConfig", "apply", "availability", "explain_slow", "format_heads",
           "parse_heads", "semi_structured_problem"]


def _rebuild_heads(model, change, saved_config):
    from engine.methods.prune.surgery import rebuild_heads

    return rebuild_heads(model, change, saved_config)


def _finish_sparsified(model, change):
    from engine.methods.prune.surgery import finish_sparsified

    return finish_sparsified(model, change)


# The architecture changes this method makes (engine/toolkit/architecture.py replays them):
# heads_removed {"heads": {layer: [original heads]}} (the saved config's pruned_heads is what
# is rebuilt); layers_dropped {"dropped", "kept"} (original numbers; config.json already has
# the layer count, nothing to rebuild); ffn_narrowed {"from", "to"} (neurons per layer;
# config.json's intermediate_size is the new width, nothing to rebuild); sparsified
# {"pattern": "unstructured" | "2:4", "semi_structured": bool} (zeros are in the weights;
# 2:4 goes to sparse kernels on a GPU).
register_change("heads_removed", rebuild=_rebuild_heads)
register_change("layers_dropped")
register_change("ffn_narrowed")
register_change("sparsified", finish=_finish_sparsified)

@dataclass(frozen=True)
class PruneConfig(MethodConfig):
    """Defaults: remove 40 % of the heads by gradient importance, then 300 recovery steps
    distilled from the unpruned parent (about 4 minutes for the teacher on 2 CPU cores)."""

    method = "prune"
    version = 1

    kind: str = param("heads", "What to remove: attention heads, whole layers, feed-forward "
                      "neurons (ffn: the same share of every layer's intermediate width), "
                      "single weights (unstructured: smaller on paper, no faster on dense "
                      "kernels), or 2 of every 4 weights (2:4, needs an NVIDIA GPU, sm80 or "
                      "newer).", choices=("heads", "layers", "ffn", "unstructured", "2:4"))
    amount: float = param(0.4, "Fraction to remove: of the heads (heads), of the layers "
                          "(layers: top, bottom, alternate), of each layer's feed-forward "
                          "neurons (ffn), of the encoder's linear weights (unstructured). 2:4 "
                          "always removes half.", min=0.0, max=0.99)
    importance: str = param("gradient", "How heads (kind=heads) or feed-forward neurons "
                            "(kind=ffn) are ranked: gradient (Michel et al. 2019; for neurons "
                            "the first-order Taylor score, one backward pass over "
                            "scoring_examples), weight magnitude, or random (a baseline).",
                            choices=("gradient", "magnitude", "random"))
    heads: str = param("", "Heads to remove, chosen by hand as LAYER:HEAD pairs (e.g. "
                       "0:3,2:7; original head numbers); empty: the lowest-scoring amount. "
                       "The Heads page fills it.")
    layer_strategy: str = param("top", "Which layers to drop (kind=layers): the top or bottom "
                                "amount of them, or every other one from the top (Sajjad et "
                                "al., Poor Man's BERT).", choices=("top", "bottom", "alternate"))
    layers: list[int] = param([], "Layers to drop, chosen by hand (kind=layers), e.g. 4, 5; "
                              "empty: use layer_strategy and amount.", min=0)
    scope: str = param("global", "Unstructured pruning threshold: one over all encoder "
                       "weights (global, usually better) or one per weight matrix.",
                       choices=("global", "per-layer"))
    recovery_steps: int = param(300, "Fine-tuning steps after pruning to win back accuracy; "
                                "0: none (fast, but layer dropping loses a lot).", min=0,
                                max=100_000)
    distill_weight: float = param(0.5, "Share of the recovery loss that matches the unpruned "
                                  "parent's soft predictions (knowledge distillation); 0: "
                                  "labels only.", min=0.0, max=1.0)
    score_only: bool = param(False, "Only score the heads (kind=heads) and store the scores "
                             "for the Heads page; nothing is removed, no model is made.")
    scoring_examples: int = param(512, "Training examples used to score heads or neurons by "
                                  "gradient "
                                  "(a pass costs about 1.5x the forward pass over them).",
                                  min=8, max=100_000, advanced=True)
    temperature: float = param(2.0, "Softening temperature of the distillation targets.",
                               min=0.5, max=20.0, advanced=True)
    lr: float = param(5e-5, "Peak learning rate of recovery (AdamW, warm-up then linear "
                      "decay).", min=1e-7, max=1e-2, advanced=True)
    batch_size: int = param(32, "Examples per recovery step.", min=1, max=1024, advanced=True)
    max_length: int = param(64, "Tokens per example for scoring, recovery and evaluation.",
                            min=8, max=512, advanced=True)
    eval_every: int = param(100, "Recovery steps between validation passes (the best is "
                            "kept).", min=1, advanced=True)
    seed: int = param(0, "Seed for example choice, random scores and recovery order.", min=0,
                      advanced=True)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> MethodConfig:
        # YAML 1.1 (the CLI's --set and recipes) reads 2:4 as the base-60 integer 124 and 1:3
        # as 63: turn such integers back into the LAYER:HEAD text the user typed.
        values = dict(values)
        for key in ("kind", "heads"):
            v = values.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and v >= 60:
                values[key] = f"{v // 60}:{v % 60}"
        return super().from_values(values)

    def check(self) -> None:
        chosen = parse_heads(self.heads)
        if chosen and self.kind != "heads":
            raise ConfigError("prune: heads= is for kind=heads; clear it or set kind=heads")
        if self.layers and self.kind != "layers":
            raise ConfigError("prune: layers= is for kind=layers; clear it or set kind=layers")
        if self.score_only and self.kind != "heads":
            raise ConfigError("prune: score_only scores attention heads; set kind=heads")
        nothing = self.amount == 0 and not chosen and not self.layers
        if nothing and not self.score_only and self.kind != "2:4":
            raise ConfigError("prune: amount=0 removes nothing; set an amount above 0, pick "
                              "heads or layers, or use score_only=true to score heads")


def semi_structured_problem(device: str) -> str | None:
    """Why PyTorch's 2:4 semi-structured kernels cannot run on `device` (a worker description
    such as "cpu (2 threads)" or "cuda:... (sm90)"), or None. No torch: the Compress page
    calls it."""
    if not device.startswith("cuda"):
        return ("2:4 semi-structured sparsity needs an NVIDIA GPU (compute capability 8.0 or "
                "newer, e.g. A100, H100): the worker runs on the CPU, where PyTorch has no 2:4 "
                "kernels. Use kind=heads or kind=layers for a real CPU speedup")
    sm = compute_capability(device)
    if sm is not None and sm < 80:
        return (f"2:4 semi-structured sparsity needs compute capability 8.0 or newer; this "
                f"GPU is sm{sm}. Use kind=heads or kind=layers instead")
    return None


def availability(cfg: PruneConfig, device: str) -> str | None:
    """Why this config cannot run on the worker's device ("cpu (2 threads)", "cuda:... (sm90)")."""
    return semi_structured_problem(device) if cfg.kind == "2:4" else None


def explain_slow(cfg: PruneConfig, device: str, metrics: dict[str, Any]) -> str | None:
    """This method's own reasons a pruned model is not faster, from the job's measured and
    estimated facts (`metrics`: the job's metrics so far, with this method's notes)."""
    ratio = metrics.get("estimated_compute_ratio")
    if cfg.kind == "heads":
        share = metrics.get("ffn_share_of_compute")
        ffn = (f"the feed-forward block ({share:.0%} of the encoder's arithmetic at "
               f"{cfg.max_length} tokens, estimated from this model's shape)"
               if share is not None else "the feed-forward block")
        return (f"Heads are only part of each layer: {ffn} is untouched, so the estimated "
                f"arithmetic falls only {ratio or 1:.2f}x, and thinner attention matrices use "
                f"the cores less well. For more speed, also drop layers (kind=layers).")
    if cfg.kind == "layers":
        return (f"Dropping layers cuts the estimated encoder arithmetic {ratio or 1:.2f}x, but "
                f"the embeddings, the classifier and fixed per-call costs stay; at small "
                f"batches those dominate the time.")
    if cfg.kind == "ffn":
        return (f"Narrower feed-forward blocks cut the estimated encoder arithmetic only "
                f"{ratio or 1:.2f}x: attention, the embeddings, LayerNorms and fixed per-call "
                f"costs stay, and thinner matrices use the cores less well. Combine with "
                f"fewer layers (distill or kind=layers) for more speed.")
    if cfg.kind == "unstructured":
        return UNSTRUCTURED_NOTE
    measured = metrics.get("semi_structured_speedup_vs_dense_fp16")
    return ("2:4 kernels halve the multiply work but add indexing: at these batch sizes the "
            "products are too small to gain"
            + (f" (measured here: {measured} against the same weights dense in fp16)"
               if measured else "")
            + ". They pay off for large batches and wide layers. The speedup against the "
              "parent also includes fp16 itself.")


UNSTRUCTURED_NOTE = (
    "Unstructured zeros are still stored and still multiplied: dense matrix kernels (what "
    "PyTorch runs on the CPU and the GPU) do the same work whatever the values, so latency "
    "and file size stay the same. It pays only with sparse kernels at very high sparsity, or "
    "once the weights are compressed for storage. For real speed, remove heads or layers "
    "(kind=heads, kind=layers), or use 2:4 on a recent GPU.")


@register(PruneConfig)
def apply(cfg: PruneConfig, ctx):
    """Score, remove, recover; the runner then saves, reloads, evaluates and times the result
    against its parent. A score_only job stores the scores and returns no model."""
    from engine.methods.prune import neurons as N
    from engine.methods.prune import surgery as P
    from engine.methods.prune.importance import lowest_heads
    from engine.toolkit.architecture import chain
    from engine.toolkit.contract import Produced

    ctx.progress(0.0, "loading the model", force=True)
    model = ctx.load_input()
    seq = cfg.max_length
    if cfg.kind == "heads" and not P.plain_attention(model):
        raise LabError("prune: the input's attention projections are factorised (a lowrank "
                       "output); remove heads first and factorise afterwards (prune -> "
                       "lowrank), or use kind=layers")
    if cfg.kind == "ffn" and not N.plain_ffn(model):
        raise LabError("prune: the input's feed-forward blocks are factorised (a lowrank "
                       "output); remove neurons first and factorise afterwards (prune -> "
                       "lowrank), or use kind=heads or kind=layers")
    changes: list[dict[str, Any]] = []
    flops_before = P.encoder_flops_per_token(model.config, seq)
    params_before = sum(p.numel() for p in model.parameters())
    notes: dict[str, Any] = {"prune_kind": cfg.kind}
    masks = None

    if cfg.kind == "heads":
        chosen = parse_heads(cfg.heads)
        if not chosen or cfg.score_only:
            scores, info = _score(cfg, model, ctx)
            notes.update(info)
            if cfg.score_only:  # the scores and the scored model's shape are the result
                from engine.toolkit.checkpoints import facts

                ctx.notes.update(notes, **facts(model))
                return None
            chosen = lowest_heads(scores, cfg.amount)
        total = sum(P.heads_per_layer(model.config))
        if not chosen:
            raise LabError(f"prune: amount={cfg.amount} of {total} heads rounds to none; raise "
                           f"it to at least {0.5 / total:.3f} or pick heads")
        removed = P.remove_heads(model, chosen)
        changes.append({"kind": "heads_removed",
                        "heads": {str(k): v for k, v in chosen.items()}})
        left = P.heads_per_layer(model.config)
        notes.update(removed_heads={str(k): v for k, v in chosen.items()},
                     heads_per_layer=left)
        empty = [i for i, n in enumerate(left) if n == 0]
        notes["explanation"] = (
            f"Removed {removed} of {total} attention heads ({removed / total:.0%}"
            f"{', chosen by hand' if cfg.heads else f', lowest {cfg.importance} importance'}):"
            f" the query, key and value rows and the output-projection columns of those heads"
            f" are gone, so {P.fewer_params(params_before, model)}. Heads left per layer: "
            f"{', '.join(map(str, left))}."
            + (f" Layer{'s' if len(empty) > 1 else ''} {', '.join(map(str, empty))} lost every"
               f" head: its attention block passes the input through (plus the output bias)."
               if empty else ""))
    elif cfg.kind == "layers":
        n = model.config.num_hidden_layers
        drop = sorted(set(cfg.layers)) or P.layers_to_drop(n, cfg.amount, cfg.layer_strategy)
        bad = [i for i in drop if i >= n]
        if bad or len(drop) >= n:
            raise LabError(f"prune: cannot drop layers {drop} of a {n}-layer model (layers are"
                           f" 0 to {n - 1} and one must stay)")
        if not drop:
            raise LabError(f"prune: amount={cfg.amount} of {n} layers rounds to none; raise it"
                           f" to at least {0.5 / n:.2f} or list the layers")
        original = list(getattr(model.config, "kept_layers", None) or range(n))
        kept = P.drop_layers(model, drop)
        changes.append({"kind": "layers_dropped", "dropped": [int(original[i]) for i in drop],
                        "kept": list(model.config.kept_layers)})
        notes.update(dropped_layers=drop, kept_layers=kept)
        how = "chosen by hand" if cfg.layers else f"the {cfg.layer_strategy} strategy"
        notes["explanation"] = (
            f"Dropped encoder layers {', '.join(map(str, drop))} of {n} ({how}); layers "
            f"{', '.join(map(str, kept))} remain, renumbered 0 to {len(kept) - 1}. Every layer"
            f" costs about the same, so compute falls by about {len(drop) / n:.0%}, and "
            f"{P.fewer_params(params_before, model)}.")
    elif cfg.kind == "ffn":
        notes.update(N.narrow_ffn(cfg, model, ctx, params_before))
        changes.append({"kind": "ffn_narrowed", "from": notes["ffn_neurons_before"],
                        "to": notes["ffn_neurons_per_layer"]})
    else:
        if cfg.kind == "unstructured":
            masks = P.magnitude_masks(model, cfg.amount, cfg.scope)
        else:
            masks = P.two_four_masks(model)
        P.apply_masks(model, masks)
        changes.append({"kind": "sparsified", "pattern": cfg.kind,
                        "semi_structured": cfg.kind == "2:4"})

    if cfg.recovery_steps:
        notes.update(_recover(cfg, model, ctx, masks))
    if masks is not None:
        P.apply_masks(model, masks)  # exact zeros, whatever recovery did
        notes.update(_sparsity_notes(cfg, model, P.sparsity(model)))

    flops_after = P.encoder_flops_per_token(model.config, seq)
    notes["estimated_compute_ratio"] = round(flops_before / flops_after, 3)
    if cfg.kind in ("heads", "layers", "ffn"):
        notes["explanation"] += (f" Estimated encoder arithmetic at {seq} tokens: "
                                 f"{flops_before / flops_after:.2f}x less.")
    notes["ffn_share_of_compute"] = round(P.ffn_share(model.config, seq), 3)
    meta: dict[str, Any] = {"loader": "prune", "changes": chain(ctx.input_ref, *changes)}
    device = None
    if cfg.kind == "2:4":
        notes.update(_semi_structured(model, ctx))
        meta["semi_structured"] = True
        device = ctx.device
    return Produced(model=model, tokenizer=ctx.tokenizer, meta=meta, notes=notes,
                    device=device)


def _score(cfg: PruneConfig, model, ctx) -> tuple[Any, dict[str, Any]]:
    """Head importance on a seeded sample of the training split (never the test split)."""
    from engine.methods.prune import surgery as P
    from engine.toolkit.head_scoring import head_importance, scoring_sample

    texts, labels = scoring_sample(ctx.dataset.train, cfg.scoring_examples, cfg.seed)
    ctx.progress(0.02, f"scoring heads by {cfg.importance}", force=True)
    scores, seconds = P.timed(lambda: head_importance(
        model, ctx.tokenizer, texts, labels, cfg.importance, max_length=cfg.max_length,
        batch_size=cfg.batch_size, seed=cfg.seed, device=ctx.device,
        progress=lambda f: ctx.progress(0.02 + 0.18 * f, f"scoring heads by {cfg.importance}")))
    return scores, {"head_importance": scores, "head_importance_method": cfg.importance,
                    "head_importance_examples":
                        len(texts) if cfg.importance == "gradient" else 0,
                    "head_importance_seconds": round(seconds, 2),
                    "heads_per_layer_before": P.heads_per_layer(model.config)}


def _recover(cfg: PruneConfig, model, ctx, masks) -> dict[str, Any]:
    """Fine-tune the pruned model, optionally distilling from the unpruned parent; pruned
    weights (unstructured, 2:4) stay at zero."""
    from engine.methods.prune import surgery as P
    from engine.toolkit.losses import recovery_loss
    from engine.toolkit.training import TrainSettings, train_classifier

    ctx.progress(0.2, "recovery: loading the unpruned parent", force=True)
    parent = ctx.load_input().eval() if cfg.distill_weight > 0 else None
    distill_loss = recovery_loss(parent, cfg.distill_weight, cfg.temperature) if parent \
        else None

    settings = TrainSettings(lr=cfg.lr, max_steps=cfg.recovery_steps, batch_size=cfg.batch_size,
                             max_length=cfg.max_length, seed=cfg.seed, eval_every=cfg.eval_every)
    handles = P.keep_masked(model, masks) if masks else []
    try:
        info = train_classifier(model, ctx.tokenizer, ctx.dataset, settings, ctx,
                                device=ctx.device, loss_fn=distill_loss if parent else None,
                                span=(0.22, 1.0))
    finally:
        for h in handles:
            h.remove()
    return {f"recovery_{k}": v for k, v in info.items()}


def _sparsity_notes(cfg: PruneConfig, model, reached: dict[str, float]) -> dict[str, Any]:
    notes: dict[str, Any] = {"sparsity": reached["encoder_linear"],
                             "sparsity_all_params": reached["all_params"]}
    if cfg.kind == "unstructured":
        notes["explanation"] = (
            f"Set {reached['encoder_linear']:.1%} of the encoder's linear weights to zero "
            f"(smallest magnitudes, {cfg.scope} threshold; target {cfg.amount:.0%}), which is "
            f"{reached['all_params']:.1%} of all parameters. Every matrix keeps its shape.")
        # Always true, so always shown (explain_slow gives the same when the runner finds
        # the model not faster)
        notes["why_not_faster"] = UNSTRUCTURED_NOTE
    else:
        notes["explanation"] = (
            f"In every group of 4 consecutive weights of the encoder's linear layers the 2 "
            f"smallest were zeroed ({reached['encoder_linear']:.1%} sparsity); the GPU's sparse "
            f"tensor cores then skip them. Weights run in half precision.")
    return notes


def _semi_structured(model, ctx) -> dict[str, Any]:
    """On the GPU: time the 2:4 model against the same weights dense (both fp16), paired, so
    the sparsity's own speedup is not confused with the fp16 one."""
    import copy

    from engine.methods.prune import surgery as P
    from engine.toolkit.paired import NOT_FASTER, speedups
    from engine.toolkit.timing import Timed, measure

    ctx.progress(0.95, "timing 2:4 kernels against dense fp16", force=True)
    dense = copy.deepcopy(model).half().to(ctx.device).eval()
    sparse = copy.deepcopy(model).to(ctx.device).eval()
    left_dense = P.to_semi_structured(sparse)
    texts = ctx.dataset.test.texts[:256]
    lat = measure({"sparse": Timed(sparse, ctx.device), "dense": Timed(dense, ctx.device)},
                  ctx.tokenizer, texts, [1, 32, 128], 128, warmup=5, runs=20)
    ratio = speedups(lat["sparse"], lat["dense"])
    notes: dict[str, Any] = {"semi_structured_speedup_vs_dense_fp16": ratio,
                             "semi_structured_dense_left": left_dense,
                             "semi_structured_timing": "fp16, 128 tokens, paired"}
    if max(ratio.values(), default=0) < NOT_FASTER:
        notes["why_not_faster"] = explain_slow(
            PruneConfig(kind="2:4"), ctx.device,
            {"semi_structured_speedup_vs_dense_fp16": ratio})
    return notes

