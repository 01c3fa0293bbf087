"""Lesson 5, attention and sequence length: the sweep's time by length, split into attention
and feed-forward, and the takeaways."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from engine.reports.lessons.wording import _x, where


def sweep_rows(run: dict[str, Any] | None) -> pd.DataFrame:
    """The swept model's eager timings by length at the smallest batch: {seq_len, p50_ms,
    attention_ms, ffn_ms, other_ms (the split's full time less both), batch_size}."""
    cols = ["seq_len", "p50_ms", "attention_ms", "ffn_ms", "other_ms", "batch_size"]
    if run is None:
        return pd.DataFrame(columns=cols)
    m = run["metrics"]
    sweep = [e for e in m.get("seqlen_sweep") or [] if e["role"] == "self"
             and e["runtime"] == "eager"]
    if not sweep:
        return pd.DataFrame(columns=cols)
    bs = min(e["batch_size"] for e in sweep)
    split = {e["seq_len"]: e for e in m.get("attention_split") or []
             if e["role"] == "self" and e["batch_size"] == bs}
    rows = []
    for e in sorted((e for e in sweep if e["batch_size"] == bs), key=lambda e: e["seq_len"]):
        s = split.get(e["seq_len"])
        att, ffn = (s["attention_ms"], s["ffn_ms"]) if s else (math.nan, math.nan)
        other = max(s["full_ms"] - att - ffn, 0.0) if s else math.nan
        rows.append({"seq_len": e["seq_len"], "p50_ms": e["p50_ms"], "attention_ms": att,
                     "ffn_ms": ffn, "other_ms": other, "batch_size": bs})
    return pd.DataFrame(rows, columns=cols)


def seqlen_takeaways(rows: pd.DataFrame, origin: str | None) -> list[str]:
    if len(rows) < 2:
        return []
    first, last = rows.iloc[0], rows.iloc[-1]
    bs = int(first["batch_size"])
    out = [f"{where(origin)}, MiniLM-L6 (the base encoder) on BBC News texts took "
           f"{first['p50_ms']:.1f} ms at {int(first['seq_len'])} tokens and "
           f"{last['p50_ms']:.1f} ms at {int(last['seq_len'])} (batch {bs}): "
           f"{last['seq_len'] / first['seq_len']:.0f}x "
           f"the length, {last['p50_ms'] / first['p50_ms']:.1f}x the time."]
    per_token = rows["p50_ms"] / rows["seq_len"]
    low = int(per_token.idxmin())
    if low < len(rows) - 1:
        out.append(f"The time per token was lowest at {int(rows['seq_len'][low])} tokens "
                   f"({1000 * per_token[low]:.0f} µs); beyond that it grows with the length: "
                   f"there the quadratic term (every token against every other) takes over "
                   f"from the fixed costs.")
    else:
        out.append(f"Up to {int(last['seq_len'])} tokens the time per token kept falling: "
                   f"fixed costs still dominate, and the quadratic term has not taken over on "
                   f"this machine at batch {bs}.")
    split = rows.dropna(subset=["attention_ms"])
    if len(split) >= 2:
        a, b = split.iloc[0], split.iloc[-1]
        share = split["attention_ms"] / (split["attention_ms"] + split["ffn_ms"] +
                                         split["other_ms"])
        text = (f"Attention took {share.iloc[0]:.0%} of the time at {int(a['seq_len'])} "
                f"tokens and {share.iloc[-1]:.0%} at {int(b['seq_len'])}")
        over = split[split["attention_ms"] > split["ffn_ms"]]
        text += (f"; it overtook the feed-forward block at {int(over.iloc[0]['seq_len'])} "
                 f"tokens." if len(over) else "; the feed-forward block stayed the larger "
                 "part.")
        out.append(text)
        rate = (split["attention_ms"] / split["seq_len"]).min()
        linear = rate * b["seq_len"]
        if b["attention_ms"] > linear:
            total = b["attention_ms"] + b["ffn_ms"] + b["other_ms"]
            out.append(f"If attention grew only in proportion to the length (what sparse or "
                       f"linear attention aim for), its {b['attention_ms']:.0f} ms at "
                       f"{int(b['seq_len'])} tokens would be about {linear:.0f} ms and the "
                       f"model {_x(total / (total - b['attention_ms'] + linear))} faster there "
                       f"(an estimate from this sweep's best time per token, not a "
                       f"measurement).")
    return out
