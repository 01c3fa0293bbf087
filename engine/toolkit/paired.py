"""Paired speedups from the rows `engine.toolkit.timing.measure` returns: ratios only between
rows of the same batch size, sequence length, runtime, threads and device (`row_key`: like
with like), their 95 % intervals from the paired rounds (`paired_ci`), a model's own gain
from compiling, a job's timing figures (`speed_metrics`, what engine/runner/ stores) and the
sequence-length sweep's table. Pure numpy: nothing here times anything."""

from __future__ import annotations

from typing import Any

import numpy as np

CI_LEVEL = 0.95
BOOTSTRAP = 2000  # resamples of the paired rounds per interval
NOT_FASTER = 1.1  # a paired speedup below this is "not faster": the method's explain_slow is asked


def row_key(row: dict) -> tuple:
    """What must match for two rows to be compared: like with like."""
    return (row["batch_size"], row["seq_len"], row["runtime"], row.get("threads"),
            row.get("device"))


def speedups(own: list[dict], parent: list[dict]) -> dict[str, float]:
    """Paired speedup by batch size (as a string key): parent p50 / own p50, only between
    rows of the same batch size, length, runtime, threads and device. Both lists must come
    from one `measure` call (pass rows of one runtime and length)."""
    parent_by = {row_key(r): r for r in parent}
    return {str(r["batch_size"]): round(parent_by[row_key(r)]["p50_ms"] / r["p50_ms"], 3)
            for r in own if row_key(r) in parent_by}


def paired_ci(own_ms: list[float], parent_ms: list[float], level: float = CI_LEVEL,
              n_boot: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the speedup parent p50 / own p50 from paired rounds.

    Percentile bootstrap over rounds: draw round indices with replacement (the same indices
    for both models, so each draw keeps the pairs), take the ratio of the two medians of the
    draw, and return the (1-level)/2 and (1+level)/2 quantiles of `n_boot` such ratios. The
    point estimate it brackets is the ratio of medians (`speedups`). Seeded: reproducible."""
    own, par = np.asarray(own_ms, dtype=float), np.asarray(parent_ms, dtype=float)
    n = min(own.size, par.size)
    own, par = own[:n], par[:n]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    ratios_ = np.median(par[idx], axis=1) / np.median(own[idx], axis=1)
    lo, hi = np.quantile(ratios_, [(1 - level) / 2, (1 + level) / 2])
    return round(float(lo), 3), round(float(hi), 3)


def speedup_cis(own: list[dict], parent: list[dict]) -> dict[str, list[float]]:
    """`paired_ci` by batch size (string key) for rows matched as in `speedups`."""
    parent_by = {row_key(r): r for r in parent}
    return {str(r["batch_size"]): list(paired_ci(r["samples_ms"],
                                                 parent_by[row_key(r)]["samples_ms"]))
            for r in own if row_key(r) in parent_by and r.get("samples_ms")
            and parent_by[row_key(r)].get("samples_ms")}


def _of(rows: list[dict], runtime: str, seq_len: int | None) -> list[dict]:
    return [r for r in rows if r["runtime"] == runtime and (seq_len is None
                                                            or r["seq_len"] == seq_len)]


def compile_gain(rows: list[dict], seq_len: int | None = None) -> dict[str, float]:
    """A model's own gain from compiling: its eager p50 / its compiled p50, by batch size
    (both from one interleaved run)."""
    return speedups(_of(rows, "compiled", seq_len),
                    [{**r, "runtime": "compiled"} for r in _of(rows, "eager", seq_len)])


def speed_metrics(roles: dict[str, list[dict]], runtime: str,
                  seq_len: int | None = None, paired: bool = True) -> dict[str, Any]:
    """The job's timing figures from `by_role` rows (at `seq_len` when several were timed).

    speedup_vs_parent {bs: x}: against the parent under the model's own primary `runtime`
    (parent_runtime says which); speedup_vs_parent_ci {bs: [lo, hi]} its 95 % interval;
    speedup_by_runtime {runtime: {bs: x}} and speedup_ci_by_runtime {runtime: {bs: [lo, hi]}}
    for every runtime both were timed under; compile_gain_parent {bs: x} (parent eager /
    parent compiled) and compile_gain {bs: x} (the model's own) when both runtimes were timed.
    Without a parent only compile_gain (and the runtimes timed) are returned."""
    own, parent = roles.get("self", []), roles.get("parent", [])
    runtimes = [rt for rt in dict.fromkeys(r["runtime"] for r in own)]
    out: dict[str, Any] = {"runtimes_timed": runtimes}
    if "eager" in runtimes and "compiled" in runtimes:
        out["compile_gain"] = compile_gain(own, seq_len)
    if not parent:
        return out
    by_rt, ci_rt = {}, {}
    for rt in runtimes:
        ratio = speedups(_of(own, rt, seq_len), _of(parent, rt, seq_len))
        if ratio:
            by_rt[rt] = ratio
            ci_rt[rt] = speedup_cis(_of(own, rt, seq_len), _of(parent, rt, seq_len))
    cross = {}
    if not by_rt and runtimes:
        # another runtime than the parent's (onnxruntime): paired in this run, but a change of
        # runtime, so it is against each torch runtime of the parent and labelled so
        own_rt = runtimes[0]
        for prt in dict.fromkeys(r["runtime"] for r in parent):
            # relabelled on purpose (as compile_gain does): this ratio crosses runtimes
            other = [{**r, "runtime": own_rt} for r in _of(parent, prt, seq_len)]
            ratio = speedups(_of(own, own_rt, seq_len), other)
            if ratio:
                cross[prt] = ratio
                ci_rt[prt] = speedup_cis(_of(own, own_rt, seq_len), other)
        if cross:
            out["speedup_vs_parent_runtimes"] = cross
            out["speedup_note"] = (f"{own_rt} against the parent under PyTorch "
                                   f"({', '.join(cross)}): paired in one run, but a change of "
                                   f"runtime, not like with like")
            prt = "eager" if "eager" in cross else next(iter(cross))
            out.update(parent_runtime=prt, speedup_vs_parent=cross[prt],
                       speedup_vs_parent_ci=ci_rt.get(prt, {}), speedup_by_runtime={},
                       speedup_ci_by_runtime={}, speedup_pairing="paired, other runtime",
                       speed_summary=out["speedup_note"] + ": " + "; ".join(
                           f"against {k}: {ratios(v, ci_rt.get(k))}" for k, v in cross.items())
                       + ".")
            return out
    primary = runtime if runtime in by_rt else next(iter(by_rt), runtime)
    out.update(parent_runtime=primary, speedup_vs_parent=by_rt.get(primary, {}),
               speedup_vs_parent_ci=ci_rt.get(primary, {}), speedup_by_runtime=by_rt,
               speedup_ci_by_runtime=ci_rt,
               speedup_pairing="paired" if paired else "unpaired")
    parent_rts = {r["runtime"] for r in parent}
    if {"eager", "compiled"} <= parent_rts:
        out["compile_gain_parent"] = compile_gain(parent, seq_len)
    words = [f"{rt} against the parent {rt}: {ratios(by_rt[rt], ci_rt.get(rt))}"
             for rt in by_rt]
    out["speed_summary"] = ("Timed interleaved with the parent in one run, like with like; "
                            + "; ".join(words) + f" (headline: {primary})."
                            + (" Compiling alone speeds the parent up "
                               + ratios(out["compile_gain_parent"]) + "."
                               if out.get("compile_gain_parent") else ""))
    return out


def sweep_table(roles: dict[str, list[dict]], split: list[dict] | None = None) -> list[dict]:
    """metrics["seqlen_sweep"]: one entry per role, runtime, length and batch size timed:
    {role, seq_len, batch_size, runtime, p50_ms, iqr_ms, runs, attention_ms, ffn_ms,
    attention_share, speedup_vs_parent, speedup_vs_parent_ci}. The attention/feed-forward
    split comes from `split` (entries with role, seq_len, batch_size, runtime and those three
    fields, as the seqlen method measures them), None where it was not measured; the speedup
    (parent p50 / own p50, paired, same runtime and length) only on self entries of a paired
    run."""
    split_by = {(e["role"], e["seq_len"], e["batch_size"], e["runtime"]): e for e in split or []}
    parent_by = {row_key(r): r for r in roles.get("parent", [])}
    out = []
    for role, rows in roles.items():
        for r in rows:
            e = split_by.get((role, r["seq_len"], r["batch_size"], r["runtime"]), {})
            entry = {"role": role, "seq_len": r["seq_len"], "batch_size": r["batch_size"],
                     "runtime": r["runtime"], "p50_ms": round(r["p50_ms"], 3),
                     "iqr_ms": round(r["iqr_ms"], 3), "runs": r["runs"],
                     "attention_ms": e.get("attention_ms"), "ffn_ms": e.get("ffn_ms"),
                     "attention_share": e.get("attention_share")}
            par = parent_by.get(row_key(r)) if role == "self" else None
            if par is not None:
                entry["speedup_vs_parent"] = round(par["p50_ms"] / r["p50_ms"], 3)
                if r.get("samples_ms") and par.get("samples_ms"):
                    entry["speedup_vs_parent_ci"] = list(paired_ci(r["samples_ms"],
                                                                   par["samples_ms"]))
            out.append(entry)
    return out


def ratios(by_bs: dict[str, float], cis: dict[str, list[float]] | None = None) -> str:
    """Speedups by batch size in words: "2.60x (2.41-2.77) at batch 1, 3.30x at batch 32"."""
    cis = cis or {}
    return ", ".join(f"{x:.2f}x" + (f" ({cis[bs][0]:.2f}-{cis[bs][1]:.2f})" if bs in cis else "")
                     + f" at batch {bs}" for bs, x in by_bs.items())
