"""How every model is measured: the evaluation and timing settings (the `evaluate` method's
config, and the defaults every model-producing job is measured with). Shared by the runner
and the evaluate method, so it sits below both."""

from __future__ import annotations

from dataclasses import dataclass

from engine.toolkit.config import MethodConfig, param


@dataclass(frozen=True)
class EvaluateConfig(MethodConfig):
    """How a model is measured. Every model-producing job uses these defaults (with its own
    max_length), so that all runs are measured alike."""

    method = "evaluate"
    version = 2
    produces_model = False

    max_length: int = param(64, "Tokens per example (truncation), also the latency sequence "
                            "length.", min=8, max=512)
    batch_sizes: list[int] = param([1, 32], "Batch sizes at which latency is measured.",
                                   min=1, max=1024)
    runtimes: list[str] = param(["eager", "compiled"], "Runtimes the model (and its parent) "
                                "are timed under; a model made for another runtime is timed "
                                "under its own too. Ratios compare the same runtime only.",
                                choices=("eager", "compiled"), advanced=True)
    warmup: int = param(3, "Untimed runs before timing, per batch size.", min=0, max=100,
                        advanced=True)
    latency_runs: int = param(30, "Timed runs per batch size, at least (median, p95, IQR and "
                              "the speedup's 95 % interval are reported).", min=2, max=1000,
                              advanced=True)
    latency_max_runs: int = param(60, "Timed runs at most: past latency_runs, timing goes on "
                                  "by 10 runs until the medians move by under 2 %; at or "
                                  "below latency_runs: exactly latency_runs.", min=0, max=5000,
                                  advanced=True)
    eval_batch_size: int = param(64, "Batch size for the accuracy pass.", min=1, max=1024,
                                 advanced=True)
    test_limit: int = param(0, "Evaluate on the first N test examples only; 0: all.", min=0,
                            advanced=True)
