"""Factorise Linear layers by truncated SVD into two thinner ones (low rank), then recover.

Each chosen weight W [out, in] is replaced by its best rank-r approximation U_r S_r V_r^T
(Eckart-Young), stored as Linear(in, r) then Linear(r, out): r x (in + out) weights instead
of in x out, and as much less arithmetic. The rank is a fraction of the full rank or the
smallest one that keeps a share of the spectral energy (sum of squared singular values).
Optional recovery fine-tuning, distilled from the unfactorised parent, wins back accuracy.
The machinery (SVD, replay, estimates) is in engine/methods/lowrank/factorise.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.methods.registry import register
from engine.toolkit.architecture import register_change
from engine.toolkit.config import ConfigError, LabError, MethodConfig, param


def _rebuild(model, change, saved_config):
    from engine.methods.lowrank.factorise import rebuild

    return rebuild(model, change, saved_config)


# {"kind": "factorised", "modules": [{"layer": original layer number, "module": path in the
# layer (e.g. "intermediate.dense"), "rank": r, ...}]}: the one loader replays it
register_change("factorised", rebuild=_rebuild)


@dataclass(frozen=True)
class LowRankConfig(MethodConfig):
    """Defaults: the feed-forward layers at half rank, then 300 recovery steps distilled from
    the unfactorised parent."""

    method = "lowrank"
    version = 1

    target: str = param("ffn", "Which Linear layers to factorise: the feed-forward block "
                        "(ffn: the two largest matrices of a layer), the attention projections "
                        "(query, key, value, output), or both.",
                        choices=("ffn", "attention", "both"))
    rank: float = param(0.5, "Rank kept, as a fraction of each matrix's full rank (min of its "
                        "two sides). Saves weights only below in x out / (in + out): for a "
                        "384 x 1536 matrix, a fraction below 0.8.", min=0.01, max=1.0)
    energy: float = param(0.0, "Instead of rank: keep the smallest rank whose singular values "
                          "hold this share of the matrix's spectral energy (e.g. 0.9); 0: use "
                          "rank.", min=0.0, max=1.0)
    layers: list[int] = param([], "Encoder layers to factorise (current numbers from 0); "
                              "empty: all.", min=0)
    recovery_steps: int = param(300, "Fine-tuning steps after factorising to win back "
                                "accuracy; 0: none.", min=0, max=100_000)
    distill_weight: float = param(0.5, "Share of the recovery loss that matches the parent's "
                                  "soft predictions (knowledge distillation); 0: labels only.",
                                  min=0.0, max=1.0)
    temperature: float = param(2.0, "Softening temperature of the distillation targets.",
                               min=0.5, max=20.0, advanced=True)
    lr: float = param(5e-5, "Peak learning rate of recovery (AdamW, warm-up then linear "
                      "decay).", min=1e-7, max=1e-2, advanced=True)
    batch_size: int = param(32, "Examples per recovery step.", min=1, max=1024, advanced=True)
    max_length: int = param(64, "Tokens per example for recovery and evaluation.", min=8,
                            max=512, advanced=True)
    eval_every: int = param(100, "Recovery steps between validation passes (the best is "
                            "kept).", min=1, advanced=True)
    seed: int = param(0, "Seed for the recovery order.", min=0, advanced=True)

    def check(self) -> None:
        if self.energy >= 1.0:
            raise ConfigError("lowrank: energy=1 keeps the full rank (nothing saved); use a "
                              "share below 1, e.g. 0.9, or 0 to use rank")


def check_input(cfg: LowRankConfig, card: dict[str, Any], dataset) -> None:
    """Layer numbers within the input model (card: engine.toolkit.checkpoints.checkpoint_card)."""
    n = card.get("layers")
    bad = [i for i in cfg.layers if n is not None and i >= n]
    if bad:
        raise ConfigError(f"lowrank: layers={cfg.layers}: the model has {n} layers (0 to "
                          f"{n - 1}); drop {bad}")


def explain_slow(cfg: LowRankConfig, device: str, metrics: dict[str, Any]) -> str | None:
    """Why a factorised model is not faster, from the job's own estimates (`metrics`)."""
    ratio = metrics.get("lowrank_weight_ratio")
    no_gain = metrics.get("lowrank_no_gain_modules") or 0
    parts = []
    if no_gain:
        parts.append(f"{no_gain} of the factorised matrices keep a rank r with r x (in + out) "
                     f">= in x out: their two thin matrices hold as many weights as the one "
                     f"they replace and save nothing; lower rank (or energy).")
    if ratio:
        parts.append(f"The factorised matrices do {ratio:.2f}x less arithmetic, which is "
                     f"{metrics.get('estimated_compute_ratio', 1):.2f}x less for the whole "
                     f"encoder (estimated from the shapes at {cfg.max_length} tokens).")
    parts.append("Two thin matrix products use the cores less well than one wide one, and "
                 "each adds a kernel call: at small batches fixed costs dominate.")
    return " ".join(parts)


@register(LowRankConfig)
def apply(cfg: LowRankConfig, ctx):
    """Factorise, recover; the runner saves, reloads (replaying the factorisation), evaluates
    and times the result against its parent."""
    from engine.methods.lowrank import factorise as F
    from engine.toolkit.architecture import chain, has_kind
    from engine.toolkit.contract import Produced

    if has_kind(chain(ctx.input_ref), "quantized"):
        raise LabError(f"lowrank: {ctx.job.model} is quantized; factorise its float parent "
                       f"and quantize afterwards (lowrank -> quantize)")
    ctx.progress(0.0, "loading the model", force=True)
    model = ctx.load_input()
    n = model.config.num_hidden_layers
    if any(i >= n for i in cfg.layers):
        raise LabError(f"lowrank: layers={cfg.layers}: the model has layers 0 to {n - 1}")
    seq = cfg.max_length
    macs_before = F.encoder_macs_per_token(model, seq)
    params_before = sum(p.numel() for p in model.parameters())
    ctx.progress(0.02, "factorising by SVD", force=True)
    records = F.factorise(model, cfg.target, cfg.rank, cfg.energy, cfg.layers,
                          progress=lambda f: ctx.progress(0.02 + 0.18 * f,
                                                          "factorising by SVD"))
    if not records:
        raise LabError(f"lowrank: no plain Linear layer to factorise for target={cfg.target} "
                       f"(already factorised, or every head removed)")
    notes: dict[str, Any] = {"factorised_modules": len(records),
                             "ranks": {f"{r['layer']}.{r['module']}": r["rank"]
                                       for r in records}}
    if cfg.recovery_steps:
        notes.update(_recover(cfg, model, ctx))
    macs_after = F.encoder_macs_per_token(model, seq)
    dense = sum(r["in"] * r["out"] for r in records)
    thin = sum(r["rank"] * (r["in"] + r["out"]) for r in records)
    params_after = sum(p.numel() for p in model.parameters())
    mean_energy = sum(r["energy"] for r in records) / len(records)
    notes.update(
        lowrank_weight_ratio=round(dense / thin, 3),
        lowrank_no_gain_modules=sum(r["rank"] * (r["in"] + r["out"]) >= r["in"] * r["out"]
                                    for r in records),
        energy_kept_mean=round(mean_energy, 4),
        estimated_compute_ratio=round(macs_before / macs_after, 3))
    how = (f"the smallest rank keeping {cfg.energy:.0%} of each matrix's spectral energy"
           if cfg.energy > 0 else f"{cfg.rank:.0%} of each matrix's full rank")
    ranks = sorted({r["rank"] for r in records})
    notes["explanation"] = (
        f"Factorised {len(records)} {cfg.target} matrices by truncated SVD at {how} (ranks "
        f"{', '.join(map(str, ranks[:6]))}{'...' if len(ranks) > 6 else ''}): each W [out, in]"
        f" became Linear(in, r) then Linear(r, out), keeping on average {mean_energy:.1%} of "
        f"the spectral energy. Those matrices hold {dense / thin:.2f}x fewer weights; the model"
        f" has {1 - params_after / params_before:.0%} fewer parameters "
        f"({params_before / 1e6:.1f}M -> {params_after / 1e6:.1f}M); estimated encoder "
        f"arithmetic at {seq} tokens: {macs_before / macs_after:.2f}x less.")
    change = {"kind": "factorised", "target": cfg.target,
              "modules": [{k: r[k] for k in ("layer", "module", "rank")} for r in records]}
    return Produced(model=model, tokenizer=ctx.tokenizer, notes=notes,
                    # "loader" only names the method (an export says the folder needs the
                    # lab's loader); "changes" is what the loader replays
                    meta={"loader": "lowrank", "changes": chain(ctx.input_ref, change)})


def _recover(cfg: LowRankConfig, model, ctx) -> dict[str, Any]:
    """Fine-tune the factorised model, optionally distilling from the parent."""
    from engine.toolkit.losses import recovery_loss
    from engine.toolkit.training import TrainSettings, train_classifier

    ctx.progress(0.2, "recovery: loading the parent", force=True)
    parent = ctx.load_input().eval() if cfg.distill_weight > 0 else None
    loss_fn = recovery_loss(parent, cfg.distill_weight, cfg.temperature) if parent else None
    settings = TrainSettings(lr=cfg.lr, max_steps=cfg.recovery_steps, batch_size=cfg.batch_size,
                             max_length=cfg.max_length, seed=cfg.seed, eval_every=cfg.eval_every)
    info = train_classifier(model, ctx.tokenizer, ctx.dataset, settings, ctx,
                            device=ctx.device, loss_fn=loss_fn, span=(0.22, 1.0))
    return {f"recovery_{k}": v for k, v in info.items()}
