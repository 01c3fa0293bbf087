"""prune's submit-time checks against the input model's facts (no torch): chosen heads and
layers exist, an amount removes something (heads, layers, feed-forward neurons), the
classifier fits the dataset."""

from __future__ import annotations

from typing import Any

from engine.toolkit.config import ConfigError, card_config, check_head_fits


def _pruned(card: dict[str, Any]) -> dict[int, list[int]]:
    """Heads already removed per layer (original numbers), from the model's config.json."""
    raw = card_config(card).get("pruned_heads") or {}
    return {int(k): [int(h) for h in v] for k, v in raw.items()}


def check_input(cfg: Any, card: dict[str, Any], dataset: Any) -> None:
    """Raise ConfigError for what the job would refuse after loading the model."""
    check_head_fits("prune", card, dataset)
    pairs = cfg.heads.replace(",", " ").split()
    twice = sorted({p for p in pairs if pairs.count(p) > 1})
    if twice:
        raise ConfigError(f"prune: heads={cfg.heads!r} lists {', '.join(twice)} more than "
                          f"once; give each LAYER:HEAD pair once")
    n, per_layer = card.get("layers"), card.get("heads_per_layer")
    if not n:
        return  # facts unknown (a hub model, a job not finished yet): the job checks
    if cfg.kind == "heads":
        chosen: dict[int, list[int]] = {}
        for pair in pairs:  # LAYER:HEAD, the format PruneConfig.check has already accepted
            layer, _, head = pair.partition(":")
            if layer.isdigit() and head.isdigit():
                chosen.setdefault(int(layer), []).append(int(head))
        pruned = _pruned(card)
        for layer, heads in chosen.items():
            if layer >= n:
                raise ConfigError(f"prune: heads={cfg.heads!r} names layer {layer}, but the "
                                  f"model has {n} layers (0 to {n - 1}); pick heads of those")
            for h in heads:
                if per_layer and h >= per_layer:
                    raise ConfigError(f"prune: heads={cfg.heads!r} names head {layer}:{h}, but "
                                      f"each layer has {per_layer} heads (0 to "
                                      f"{per_layer - 1})")
                if h in pruned.get(layer, []):
                    raise ConfigError(f"prune: head {layer}:{h} was removed already (removed "
                                      f"in layer {layer}: {pruned[layer]}); pick heads that "
                                      f"are left")
        total = card.get("heads") or (n * per_layer if per_layer else 0)
        if not chosen and not cfg.score_only and total and round(cfg.amount * total) == 0:
            raise ConfigError(f"prune: amount={cfg.amount} of {total} heads rounds to none; "
                              f"raise it to at least {0.5 / total:.3f} or pick heads")
    elif cfg.kind == "layers":
        if cfg.layers:
            bad = [i for i in cfg.layers if i >= n]
            if bad:
                raise ConfigError(f"prune: layers={cfg.layers} names layer "
                                  f"{', '.join(map(str, bad))}, but the model has {n} layers "
                                  f"(0 to {n - 1}); pick layers of those")
            if len(set(cfg.layers)) >= n:
                raise ConfigError(f"prune: layers={cfg.layers} would drop all {n} layers; "
                                  f"keep at least one")
        elif min(n - 1, round(cfg.amount * n)) == 0:
            raise ConfigError(f"prune: amount={cfg.amount} of {n} layers rounds to none"
                              + (f"; raise it to at least {0.5 / n:.2f} or list the layers"
                                 if n > 1 else "; the model has one layer, which must stay"))
    elif cfg.kind == "ffn":
        width = card_config(card).get("intermediate_size")
        if width and max(1, round((1 - cfg.amount) * width)) >= width:
            raise ConfigError(f"prune: amount={cfg.amount} of {width} feed-forward neurons per "
                              f"layer rounds to none; raise it to at least "
                              f"{0.5 / width:.4f}")
