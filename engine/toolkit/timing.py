"""Latency measurement: several models timed interleaved in one process, so ratios are paired.

For each batch size, every model gets `warmup` untimed runs, then the timed runs alternate
between models (A B, B A, A B, ...) so that drift in machine load hits them alike.

A model can run eager or compiled (torch.compile); a ratio is meaningful only between models
under the same runtime, so a compiled model is compared with its parent compiled too, and the
parent's own compile gain is reported apart (`timed_models` and `speed_metrics` below, called by
engine/runner/).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Timed:
    """A model to time: the module, the device it runs on, and its runtime label."""

    model: object
    device: str
    runtime: str = "eager"  # eager | compiled
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


def fixed_batch(tokenizer, texts: list[str], batch_size: int, seq_len: int, device: str) -> dict:
    """A [batch_size, seq_len] input from real texts, padded/truncated to exactly seq_len."""
    chosen = [texts[i % len(texts)] for i in range(batch_size)]
    return dict(tokenizer(chosen, padding="max_length", truncation=True, max_length=seq_len,
                          return_tensors="pt").to(device))


def measure(models: dict[str, Timed], tokenizer, texts: list[str], batch_sizes: list[int],
            seq_len: int, warmup: int = 3, runs: int = 20,
            progress: Callable[[float, str], None] | None = None) -> dict[str, list[dict]]:
    """Time every model at every batch size, interleaved.

    Returns {name: [{batch_size, seq_len, p50_ms, p95_ms, throughput_per_s, device, runtime,
    threads}, ...]}; throughput is examples per second at the median latency.
    """
    import torch

    from engine.toolkit.device import synchronize

    results: dict[str, list[dict]] = {name: [] for name in models}
    if any(t.runtime == "compiled" for t in models.values()):
        warmup = max(warmup, 2)  # the first call compiles; the second settles caches
    total = len(batch_sizes) * (warmup + runs)
    done = 0
    with torch.inference_mode():
        for bs in batch_sizes:
            inputs = {n: fixed_batch(tokenizer, texts, bs, seq_len, t.device)
                      for n, t in models.items()}
            samples: dict[str, list[float]] = {n: [] for n in models}
            names = list(models)
            for i in range(warmup + runs):
                order = names if i % 2 == 0 else names[::-1]
                for n in order:
                    t = models[n]
                    synchronize(t.device)
                    start = time.perf_counter()
                    t.model(**inputs[n])
                    synchronize(t.device)
                    if i == 0:
                        t.first_call_s[bs] = time.perf_counter() - start
                    if i >= warmup:
                        samples[n].append((time.perf_counter() - start) * 1000)
                done += 1
                if progress:
                    progress(done / total, f"latency at batch {bs}")
            for n, t in models.items():
                arr = np.asarray(samples[n])
                p50 = float(np.median(arr))
                results[n].append({
                    "batch_size": bs, "seq_len": seq_len, "p50_ms": p50,
                    "p95_ms": float(np.percentile(arr, 95)),
                    "throughput_per_s": bs / p50 * 1000, "device": t.device,
                    "runtime": t.runtime, "threads": torch.get_num_threads()})
    return results


def speedups(own: list[dict], parent: list[dict]) -> dict[str, float]:
    """Paired speedup by batch size (as a string key): parent p50 / own p50. Both lists must
    come from one `measure` call."""
    parent_by_bs = {r["batch_size"]: r for r in parent}
    return {str(r["batch_size"]): round(parent_by_bs[r["batch_size"]]["p50_ms"] / r["p50_ms"], 3)
            for r in own if r["batch_size"] in parent_by_bs}


# ------------------------------------------------------------------ pairing a job with its parent


def timed_models(model, model_device: str, runtime: str, parent_model, device: str) -> dict:
    """What to time, interleaved in one run: the model under its runtime, and the parent
    under the same runtime (a like-with-like ratio) plus eager (the compile gain on its own)."""
    compiled = runtime == "compiled"
    own = compile_for_timing(model, model_device) if compiled else model
    timed = {"self": Timed(own, model_device, runtime)}
    if parent_model is not None:
        timed["parent"] = Timed(parent_model, device)
        if compiled:
            timed["parent_compiled"] = Timed(compile_for_timing(parent_model, device), device,
                                             "compiled")
    return timed


def speed_metrics(lat: dict[str, list[dict]], runtime: str) -> dict[str, Any]:
    """Paired ratios by batch size. speedup_vs_parent is always against the parent under the
    same runtime; for a compiled model also against the parent eager, and the parent's own
    gain from compiling (so: quantizing gain x compile gain = gain vs eager)."""
    same = "parent_compiled" if runtime == "compiled" else "parent"
    # (the latency rows themselves are stored in the latencies table, not repeated here)
    out: dict[str, Any] = {"parent_runtime": runtime,
                           "speedup_vs_parent": speedups(lat["self"], lat[same])}
    if runtime == "compiled":
        out["speedup_vs_parent_eager"] = speedups(lat["self"], lat["parent"])
        out["compile_gain_parent"] = speedups(lat["parent_compiled"], lat["parent"])
        out["speed_summary"] = (
            "Timed compiled (torch.compile) against the parent compiled, interleaved in one "
            "run: " + ratios(out["speedup_vs_parent"]) + ". Against the parent in eager: "
            + ratios(out["speedup_vs_parent_eager"]) + "; compiling alone speeds the parent "
            "up " + ratios(out["compile_gain_parent"]) + ".")
    else:
        out["speed_summary"] = ("Timed eager against the parent eager, interleaved in one run: "
                                + ratios(out["speedup_vs_parent"]) + ".")
    return out


BUSY_SLACK = 0.5  # cores: load-average noise above the job's own threads


def busy_warning(device: str) -> str | None:
    """A warning when other processes competed for the CPU while timing (1-minute load
    average above the core count plus half a core of slack): every model slows down, and not
    alike (the one with more, shorter parallel steps waits more on descheduled threads), so
    ratios are noisy. The job's own threads count in the load average (a job alone on 2 cores
    with 2 threads reads about 2.1), hence the slack."""
    if not device.startswith("cpu") or not hasattr(os, "getloadavg"):
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cores + BUSY_SLACK:
        return None
    return (f"The machine was busy while timing (load average {load:.1f} on {cores} cores): "
            f"latencies are inflated and the ratios unreliable; re-run on a quiet machine.")


def ratios(by_bs: dict[str, float]) -> str:
    """Speedups by batch size in words: "2.60x at batch 1, 3.30x at batch 32"."""
    return ", ".join(f"{x:.2f}x at batch {bs}" for bs, x in by_bs.items())

NOT_FASTER = 1.1  # a paired speedup below this is "not faster": the method's explain_slow is asked
