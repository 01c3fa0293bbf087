"""Latency measurement: several models timed interleaved in one process, so ratios are paired.

For each batch size, every model gets `warmup` untimed runs, then the timed rounds alternate
the order of the models (A B, B A, A B, ...) so that drift in machine load hits them alike.
Round i of every model was timed at about the same moment: the rounds pair up, and a ratio's
95 % interval comes from resampling them (`paired.paired_ci`).

Runtime is a dimension of every latency: a model runs eager or compiled (torch.compile). Every
evaluated model is timed under each runtime of `timing_runtimes` (eager and compiled by
default), its parent alongside under the same ones (`timed_models`, called by engine/runner/).
The ratios taken from these rows, only between rows of the same runtime, batch size, sequence
length, threads and device, and their intervals are engine/toolkit/paired.py.

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


def compile_for_timing(model, device: str = "cpu", matmul: bool = True):
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
    The flag is process-wide and read when a graph is compiled (on its first call).

    On the CPU the compiled graph is of `matmul_attention(model)` (see there why) unless
    `matmul` is False (tests/benchmarks/bench_compiled_attention.py compares the two)."""
    import torch

    cpu = device.startswith("cpu")
    torch._dynamo.config.prepare_freezing = cpu
    return torch.compile(matmul_attention(model) if cpu and matmul else model, dynamic=False,
                         options={"freezing": True})


def matmul_attention(model):
    """`model` to compile on the CPU: a copy whose attention is transformers' "eager" one
    (Q K^T, mask, softmax, V as plain ops, which inductor fuses around two bmm calls) when it
    runs SDPA and can switch; else `model` itself.

    Why: compiled, SDPA stays one opaque call to the CPU flash-attention kernel, slow at BERT's
    small heads (MiniLM: 12 heads of 32 dims). Teacher, length 64, 2 threads, interleaved
    (tests/benchmarks/bench_compiled_attention.py, 12-07): compiled with the matmul path fp32
    was 1.03x / 1.01x and int8-dynamic 1.07x / 1.10x as fast as compiled with SDPA at batch 1
    / 32; in eager mode SDPA is the faster (matmul path 0.94x at batch 32), so eager timing and
    every other use keep it. A copy, because the eager runtime times the same module object
    and the implementation is read from its config on every call. Parent and child get the
    same treatment: like with like."""
    import copy

    from engine.toolkit.checkpoints import set_attention

    twin = copy.deepcopy(model)
    return twin if set_attention(twin, "eager") else model


def fresh_compiler(graphs: int) -> None:
    """Forget every graph compiled earlier in this process and allow `graphs` compiles of one
    forward (one per compiled model and batch size) before dynamo gives up.

    Dynamo keeps compiled graphs per code object (every BERT's `forward` is one) and, past
    `recompile_limit` (8) of them, silently runs that code eager. A worker or a search runs
    many jobs in one process, each compiling its model and its parent at two batch sizes: from
    the third job on, "compiled" rows were eager timings (a 60-minute search here: int8
    "compiled" 0.73x the teacher at batch 1, 2.6x in a fresh process). Earlier graphs also
    keep their frozen weights alive. Called by `measure` before its first call: nothing
    wrapped for this measurement has compiled yet (torch.compile compiles on the first
    call)."""
    import torch

    torch._dynamo.reset()
    torch._dynamo.config.recompile_limit = max(8, graphs + 1)


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
        fresh_compiler(sum(t.runtime == "compiled" for t in models.values()) * len(batch_sizes))
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
