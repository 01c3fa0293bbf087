"""Reading attention maps: two models' heads against each other (Jensen-Shannon divergence)
and what each head of one model mostly attends to (patterns and entropy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.attention.maps import SentenceAttention
from engine.toolkit.config import LabError

DOMINANT_SHARE = 0.5  # a head "mostly attends to" a pattern when it gets half the mass or more


def divergence(a: SentenceAttention, b: SentenceAttention) -> np.ndarray:
    """[layers, heads] Jensen-Shannon divergence (bits, 0..1) between matching heads'
    attention rows, averaged over the query tokens; NaN where either model lacks the head.

    The grid is the larger of the two models' grids. Both must have read the same tokens."""
    if a.tokens != b.tokens:
        raise LabError("the two models read different tokens (different tokenizers or "
                       "limits), so their heads cannot be compared row by row; pick models "
                       "with the same tokenizer")
    layers, heads = max(a.kept.shape[0], b.kept.shape[0]), max(a.kept.shape[1], b.kept.shape[1])
    out = np.full((layers, heads), np.nan)
    la, ha = a.kept.shape
    lb, hb = b.kept.shape
    both = np.zeros((layers, heads), dtype=bool)
    both[:min(la, lb), :min(ha, hb)] = a.kept[:min(la, lb), :min(ha, hb)] & \
        b.kept[:min(la, lb), :min(ha, hb)]
    for layer, head in zip(*np.nonzero(both)):
        p = a.maps[layer, head].astype(np.float64)
        q = b.maps[layer, head].astype(np.float64)
        out[layer, head] = _js_rows(p, q).mean()
    return out


def layer_alignment(a: SentenceAttention, b: SentenceAttention) -> str | None:
    """None when the two models' layers line up by a record or have the same depth; else a
    sentence saying that the shallower one's layers are compared by position.

    A record is the shallower model's kept_layers (distilled students built from teacher
    layers, layer-dropped models) or dropped layers, read by engine/attention/loading.py."""
    if a.present_layers == b.present_layers and a.kept.shape == b.kept.shape:
        return None
    small = min((a, b), key=lambda s: s.present_layers)
    if small.mapped:
        return None
    return (f"{small.model_id} has {small.present_layers} layers and the other model "
            f"{max(a.present_layers, b.present_layers)}, and no mapping is recorded (no "
            f"kept_layers in its config): its layers are compared by position")


def layer_note(att: SentenceAttention) -> str:
    """Which original layers the model has, e.g. "layers 0, 2, 5 of 6 (recorded)"."""
    total = att.kept.shape[0]
    if att.present_layers == total:
        return f"all {total} layers"
    where = "recorded" if att.mapped else "by position: no mapping recorded"
    return (f"layers {', '.join(map(str, att.layer_index))} of {total} ({where})")


def _js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits of each row of p [T, T] against q [T, T] -> [T]."""
    m = (p + q) / 2

    def kl(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(x > 0, x * np.log2(x / m), 0.0)
        return terms.sum(-1)

    return np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0)


def head_summary(att: SentenceAttention) -> list[dict[str, Any]]:
    """What each kept head mostly attends to, with its attention entropy.

    For each head, the share of attention mass (averaged over query tokens) that goes to
    [CLS], to [SEP], to the previous token, the next token, and the token itself; the pattern
    is the largest share when it is at least DOMINANT_SHARE, else "broad". Shares can overlap
    (the token before the first word is [CLS]). Entropy: mean over query rows, in bits, and
    normalised by log2(tokens) (1 = uniform)."""
    n = len(att.tokens)
    cls = np.array([t == att.special[0] for t in att.tokens])
    sep = np.array([t == att.special[1] for t in att.tokens])
    rows = []
    for layer, head in zip(*np.nonzero(att.kept)):
        a = att.maps[layer, head].astype(np.float64)  # [T, T]
        shares = {
            "[CLS]": a[:, cls].sum(-1).mean(),
            "[SEP]": a[:, sep].sum(-1).mean(),
            "previous": np.diagonal(a, -1).sum() / n,
            "next": np.diagonal(a, 1).sum() / n,
            "self": np.diagonal(a).mean(),
        }
        top = max(shares, key=shares.get)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = float(-np.where(a > 0, a * np.log2(a), 0.0).sum(-1).mean())
        rows.append({"layer": int(layer), "head": int(head),
                     "pattern": top if shares[top] >= DOMINANT_SHARE else "broad",
                     "share": round(float(shares[top]), 3),
                     "entropy_bits": round(entropy, 3),
                     "entropy_norm": round(entropy / float(np.log2(n)), 3) if n > 1 else 0.0,
                     **{f"to_{k}": round(float(v), 3) for k, v in shares.items()}})
    return rows
