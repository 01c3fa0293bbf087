"""The attention-head grid of a BERT-style model, shared by pruning, the loader, the Heads page
and the attention views: head lists as text ("0:3,2:7"), and which ORIGINAL heads a layer still
has (`config.pruned_heads` maps a layer index to the original numbers of its removed heads).
No torch at import."""

from __future__ import annotations

import re

from engine.toolkit.config import ConfigError

HEAD = re.compile(r"^(\d+):(\d+)$")


def parse_heads(text: str) -> dict[int, list[int]]:
    """"0:3, 2:7 2:8" -> {0: [3], 2: [7, 8]} (layer:head pairs, original head numbers)."""
    chosen: dict[int, set[int]] = {}
    for item in text.replace(",", " ").split():
        match = HEAD.match(item)
        if not match:
            raise ConfigError(f"prune: heads={text!r}: write LAYER:HEAD pairs separated by "
                              f"commas, e.g. 0:3,2:7 ({item!r} is not one)")
        chosen.setdefault(int(match[1]), set()).add(int(match[2]))
    return {k: sorted(v) for k, v in sorted(chosen.items())}


def format_heads(heads: dict[int, list[int]]) -> str:
    """{0: [3], 2: [7, 8]} -> "0:3,2:7,2:8"."""
    return ",".join(f"{layer}:{h}" for layer, hs in sorted(heads.items()) for h in sorted(hs))


def head_size(config) -> int:
    return config.hidden_size // config.num_attention_heads


def pruned_map(config) -> dict[int, list[int]]:
    """config.pruned_heads with int keys (JSON stores them as strings) and sorted heads."""
    raw = getattr(config, "pruned_heads", None) or {}
    return {int(k): sorted(int(h) for h in v) for k, v in raw.items() if v}


def kept_heads(config, layer: int) -> list[int]:
    """Original numbers of the heads a layer still has, in the order of its weights."""
    gone = set(pruned_map(config).get(layer, []))
    return [h for h in range(config.num_attention_heads) if h not in gone]


def heads_per_layer(config) -> list[int]:
    return [len(kept_heads(config, i)) for i in range(config.num_hidden_layers)]
