"""The job contract: what a method receives from the runner and what it hands back.

`JobContext` gives a method its inputs (dataset, input model, tokenizer), its device, progress
reporting (which raises `JobCancelled` when the user asked to stop), live curves, and notes;
a model-producing method returns a `Produced`. Methods import this module, never the runner.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

from engine.toolkit.checkpoints import ModelRef
from engine.toolkit.data import Dataset, load_dataset
from storage import jobs as store
from storage.models import Job


class JobCancelled(Exception):
    """Raised inside a job at a progress step after the user asked to cancel it."""


@dataclass
class Produced:
    """What a model-producing method hands back to the runner."""

    model: Any  # torch.nn.Module
    tokenizer: Any
    meta: dict[str, Any] = field(default_factory=dict)  # saved in lab_meta.json ("changes": ...)
    notes: dict[str, Any] = field(default_factory=dict)  # extra metrics (sparsity, scores...)
    save: Any = None  # save(out_dir) when the default save_pretrained does not fit
    device: str | None = None  # where the model runs (e.g. "cpu" for CPU-only int8 kernels)
    runtime: str = "eager"


class JobContext:
    """Everything a method needs from the job: inputs, device, progress, curves, cancel."""

    def __init__(self, job: Job, device: str):
        self.job = job
        self.job_id = job.id
        self.device = device
        self._last_write = 0.0
        self._curve_buffer: dict[str, tuple[float, float]] = {}
        self._span = (0.0, 1.0)
        self._stage: str | None = None
        # Extra metrics a method reports even when it returns no model (e.g. head scores).
        self.notes: dict[str, Any] = {}

    # -- inputs ---------------------------------------------------------------------------
    @functools.cached_property
    def dataset(self) -> Dataset:
        return load_dataset(self.job.dataset)

    @functools.cached_property
    def input_ref(self) -> ModelRef:
        from engine.toolkit.checkpoints import resolve

        return resolve(self.job.model)

    @functools.cached_property
    def tokenizer(self):
        from engine.toolkit.checkpoints import load_tokenizer

        return load_tokenizer(self.input_ref)

    def load_input(self, require_head: bool = True, eager_attention: bool = False):
        """A fresh copy of the input model on the job's device, labels from the dataset."""
        from engine.toolkit.checkpoints import load_classifier

        model = load_classifier(self.input_ref, label_names=self.dataset.label_names,
                                require_head=require_head, eager_attention=eager_attention)
        return model.to(self.device)

    # -- reporting ------------------------------------------------------------------------
    def progress(self, fraction: float, message: str | None = None, force: bool = False) -> None:
        """Report progress (0..1 of the current span); raise JobCancelled if asked to stop.

        Writes are throttled to a few per second; the cancel flag is read with each write."""
        now = time.monotonic()
        if not force and now - self._last_write < 0.5 and fraction < 1.0:
            return
        self._last_write = now
        lo, hi = self._span
        cancel = store.report_progress(
            self.job_id, lo + (hi - lo) * fraction, message, stage=self._stage,
            stage_progress=fraction if self._stage else None, attempt=self.job.attempts)
        if self._curve_buffer:
            store.add_curve_points(self.job_id, self._curve_buffer, attempt=self.job.attempts)
            self._curve_buffer = {}
        if cancel:
            raise JobCancelled(f"job {self.job_id} cancelled")

    def curve(self, step: float, **values: float) -> None:
        """Add points to live curves (train_loss, val_accuracy...) shown on the Jobs page."""
        for name, value in values.items():
            if name in self._curve_buffer:  # keep every point: flush the older one now
                store.add_curve_points(self.job_id, self._curve_buffer,
                                       attempt=self.job.attempts)
                self._curve_buffer = {}
            self._curve_buffer[name] = (step, value)

    def span(self, lo: float, hi: float, stage: str | None = None) -> JobContext:
        """Map later progress(0..1) calls onto [lo, hi] of the whole job. `stage` names what
        runs in that span (training, evaluating, timing...): the Jobs page gives the ETA of
        the current stage from its own clock, since stages run at very different speeds."""
        self._span = (lo, hi)
        self._stage = stage
        return self
