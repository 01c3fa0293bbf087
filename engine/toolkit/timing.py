"""Latency measurement: several models timed interleaved in one process, so ratios are paired.

For each batch size, every model gets `warmup` untimed runs, then the timed rounds alternate
the order of the models (A B, B A, A B, ...) so that drift in machine load hits them alike.
Round i of every model was timed at about the same moment: the rounds pair up, and a ratio's
95 % interval comes from resampling them (`paired_ci`).

Runtime is a dimension of every latency: a model runs eager or compiled (torch.compile), and a
ratio is taken only between rows of the same runtime, batch size, sequence length, threads and
device (`speedups`). Every evaluated model is timed under each runtime of `timing_runtimes`
(eager and compiled by default), its parent alongside under the same ones (`timed_models`,
`speed_metrics`, called by engine/runner/).

Whether a timing can be trusted (a wide spread, a parent departing from its earlier timings,
a busy machine) is engine/toolkit/timing_trust.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RUNTIMES = ("eager", "compiled")  # the runtimes a torch module can be timed under here
LATENCY_KEYS = ("batch_size", "seq_len", "p50_ms", "p95_ms", "iqr_ms", "runs",
                "throughput_per_s", "device", "runtime", "threads")  # = storage LATENCY_FIELDS
CHECK_EVERY = 10  # adaptive timing: rounds between two looks at the medians
CI_LEVEL = 0.95
BOOTSTRAP = 2000  # resamples of the paired rounds per interval


@dataclass
class Timed:
    """A model to time: the module, the device it runs on, its runtime label, and its role
    in the job (self: the job's model; parent: the model it is compared with)."""

    model: object
    device: str
    runtime: str = "eager"  # eager | compiled | onnxruntime
    role: str = "self"  # self | parent
    # seconds taken by the first (untimed) call per batch size: includes compiling
    first_call_s: dict[int, float] = field(default_factory=dict)


def compile_for_timing(model, device: str = "cpu"):
    """torch.compile for fixed-shape timing runs (compiles on the first call of each shape).

    dynamic=False: each batch size gets its own specialised graph (timed inputs are padded
    to a fixed length). freezing (inference only): weights become constants that inductor
    folds and may prepack for oneDNN. Parent and child get the same settings: like with like.
    Compiling the MiniLM teacher takes 10-30 s per batch size on 2 CPU threads.

    With torch 2.13 dynamo hands a module's parameters to the graph as inputs, and `freezing`
    alone leaves them inputs: torchao's int8 weights were then re-read, their row sums
    recomputed on every call and never prepacked. dynamo's `prepare_freezing` passes them as
    parameters so that freezing folds them (teacher, batch 1, int8: 4.7-5.1 ms without, 3.8-4.0
    ms with; fp32 unchanged). Set for CPU runs only: GPU timing was not measured with it.
    The flag is process-wide and read when a graph is compiled (on its first call)."""
    import torch

    torch._dynamo.config.prepare_freezing = device.startswith("cpu")
    return torch.compile(model, dynamic=False, options={"freezing": True})


def prepare(model, runtime: str, device: str):
    """The module to call for timing under `runtime`: itself (eager) or compiled."""
    if runtime == "eager":
        return model
    if runtime == "compiled":
        return compile_for_timing(model, device)
    raise ValueError(f"cannot time a torch module under runtime {runtime!r}")


def fixed_batch(tokenizer, texts: list[str], batch_size: int, seq_len: int, device: str) -> dict:
    """A [batch_size, seq_len] input from real texts, padded/truncated to exactly seq_len."""
    chosen = [texts[i % len(texts)] for i in range(batch_size)]
    return dict(tokenizer(chosen, padding="max_length", truncation=True, max_length=seq_len,
                          return_tensors="pt").to(device))


# ------------------------------------------------------------------------------ measuring


def measure(models: dict[str, Timed], tokenizer, texts: list[str], batch_sizes: list[int],
            seq_len: int, warmup: int = 3, runs: int = 30, max_runs: int | None = None,
            stable_within: float = 0.02,
            progress: Callable[[float, str], None] | None = None,
            clock: Callable[[], float] = time.perf_counter) -> dict[str, list[dict]]:
    """Time every model at every batch size, interleaved.

    Per batch size: `warmup` untimed rounds (at least 2 when a model is compiled: the first
    call compiles), then at least `runs` timed rounds; with `max_runs` above `runs`, rounds go
    on by CHECK_EVERY until every model's median moved by at most `stable_within` (a fraction)
    since the last look, or `max_runs` is reached. Each round times every model once, the
    order reversed every other round (A B, B A, ...). `clock` returns seconds (injectable so
    tests need not sleep).

    Returns {name: [row, ...]}, one row per batch size: the LATENCY_KEYS (p50/p95/iqr in ms,
    runs = timed rounds, throughput = examples per second at the median) plus `samples_ms`,
    the timed samples in round order (round i of every model is a pair; `latency_rows` drops
    them before storing).
    """
    import torch

    from engine.toolkit.device import synchronize

    results: dict[str, list[dict]] = {name: [] for name in models}
    if any(t.runtime == "compiled" for t in models.values()):
        warmup = max(warmup, 2)  # the first call compiles; the second settles caches
    cap = max(runs, max_runs or runs)
    total = len(batch_sizes) * (warmup + cap)
    done = 0
    names = list(models)
    with torch.inference_mode():
        for bs in batch_sizes:
            inputs = {n: fixed_batch(tokenizer, texts, bs, seq_len, t.device)
                      for n, t in models.items()}
            samples: dict[str, list[float]] = {n: [] for n in models}
            last: dict[str, float] | None = None
            i = 0
            while True:
                timed_rounds = i - warmup
                if timed_rounds >= cap:
                    break
                if timed_rounds >= runs and (timed_rounds - runs) % CHECK_EVERY == 0:
                    now = {n: float(np.median(s)) for n, s in samples.items()}
                    if last is not None and all(abs(now[n] - last[n]) <= stable_within * last[n]
                                                for n in now):
                        break
                    last = now
                order = names if i % 2 == 0 else names[::-1]
                for n in order:
                    t = models[n]
                    synchronize(t.device)
                    start = clock()
                    t.model(**inputs[n])
                    synchronize(t.device)
                    took = clock() - start
                    if i == 0:
                        t.first_call_s[bs] = took
                    if i >= warmup:
                        samples[n].append(took * 1000)
                i += 1
                done += 1
                if progress:
                    progress(min(done / total, 1.0), f"latency at batch {bs}")
            done = (batch_sizes.index(bs) + 1) * (warmup + cap)
            for n, t in models.items():
                results[n].append({"batch_size": bs, "seq_len": seq_len, **summarize(samples[n]),
                                   "throughput_per_s": bs / float(np.median(samples[n])) * 1000,
                                   "device": t.device, "runtime": t.runtime,
                                   "threads": torch.get_num_threads(),
                                   "samples_ms": samples[n]})
    return results


def summarize(samples_ms: list[float]) -> dict[str, float | int]:
    """p50, p95 and the inter-quartile range (p75 - p25) in ms (numpy's linear percentiles),
    and the number of samples."""
    arr = np.asarray(samples_ms, dtype=float)
    p25, p50, p75, p95 = np.percentile(arr, [25, 50, 75, 95])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "iqr_ms": float(p75 - p25),
            "runs": int(arr.size)}


def latency_rows(timed: dict[str, Timed], lat: dict[str, list[dict]]) -> list[dict]:
    """The rows to store: {role, LATENCY_KEYS...} for every model timed (samples dropped)."""
    return [{"role": timed[name].role, **{k: row[k] for k in LATENCY_KEYS}}
            for name, rows in lat.items() for row in rows]


def by_role(timed: dict[str, Timed], lat: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The rows of `measure` grouped by role: {"self": [...], "parent": [...]} (every runtime,
    every length; rows keep their samples)."""
    out: dict[str, list[dict]] = {}
    for name, rows in lat.items():
        out.setdefault(timed[name].role, []).extend(rows)
    return out


# ------------------------------------------------------------------------------ ratios


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


# ------------------------------------------------------------------ pairing a job with its parent


def timed_models(model, model_device: str, runtimes: list[str], parent_model,
                 device: str) -> dict[str, Timed]:
    """What to time, interleaved in one run: the model under each of `runtimes` (the first is
    its primary one) and the parent under the same ones. Names are "ROLE:RUNTIME".

    A model whose primary runtime is not a torch one (onnxruntime: the object is already the
    session to call) is timed under that runtime only, as it is; the parent then only under
    the torch runtimes listed, so no ratio is taken for it here."""
    primary = runtimes[0]
    own_rts = runtimes if primary in RUNTIMES else [primary]
    timed: dict[str, Timed] = {}
    for rt in own_rts:
        own = prepare(model, rt, model_device) if rt in RUNTIMES else model
        timed[f"self:{rt}"] = Timed(own, model_device, rt, "self")
    if parent_model is not None:
        for rt in runtimes:
            if rt in RUNTIMES:
                timed[f"parent:{rt}"] = Timed(prepare(parent_model, rt, device), device, rt,
                                              "parent")
    return timed


def timing_runtimes(primary: str, configured: list[str]) -> list[str]:
    """The runtimes to time a model under: its primary runtime first, then the configured
    ones (EvaluateConfig.runtimes, narrowed by the LAB_TIMING_RUNTIMES setting)."""
    from storage import settings

    allowed = settings.timing_runtimes()
    rest = [rt for rt in configured if rt != primary and (allowed is None or rt in allowed)]
    return [primary, *rest]


def check_other_model(model_id: str, lengths: list[int], method: str) -> None:
    """Refuse `model_id` (the model a job is timed against) when it cannot load or is too
    short for `lengths`."""
    from engine.toolkit.checkpoints import checkpoint_card
    from engine.toolkit.config import ConfigError, LabError

    try:
        other = checkpoint_card(model_id.strip())
    except LabError as exc:
        raise ConfigError(f"{method}: against={model_id}: {exc}") from exc
    check_length(other, lengths, method)


def check_length(card: dict[str, Any], lengths: list[int], method: str) -> None:
    """Refuse a length above the model's position embeddings (read from its config.json)."""
    import json
    from pathlib import Path

    from engine.toolkit.config import ConfigError

    config = Path(str(card.get("path", ""))) / "config.json"
    if not config.is_file():
        return
    most = json.loads(config.read_text()).get("max_position_embeddings")
    if most and max(lengths) > most:
        raise ConfigError(f"{method}: {card.get('id')} takes at most {most} tokens; choose "
                          f"lengths up to {most}")


def ratios(by_bs: dict[str, float], cis: dict[str, list[float]] | None = None) -> str:
    """Speedups by batch size in words: "2.60x (2.41-2.77) at batch 1, 3.30x at batch 32"."""
    cis = cis or {}
    return ", ".join(f"{x:.2f}x" + (f" ({cis[bs][0]:.2f}-{cis[bs][1]:.2f})" if bs in cis else "")
                     + f" at batch {bs}" for bs, x in by_bs.items())


NOT_FASTER = 1.1  # a paired speedup below this is "not faster": the method's explain_slow is asked
