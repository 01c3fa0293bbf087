"""What a search knows before it queues a candidate: the data, the start model's job (built
when missing), the latency tables measured here, the sensitivity map (or None), and the
candidate chains with their predictions and time estimates (engine/reports/search_plan.py)."""

from __future__ import annotations

from typing import Any

from engine.reports import search_plan as P
from engine.search.execution import SEQ_LEN, execute, start_job
from engine.toolkit.config import LabError
from storage import jobs as store
from storage import settings
from storage.models import DONE


class Prepared:
    """What a search knows before it queues anything: the data, the start model's job, the
    latency tables, the sensitivity (or None) and the candidates with their predictions."""

    def __init__(self, model: str, dataset: str, cons: P.Constraints, owner: str | None,
                 methods: tuple[str, ...], train_steps: int, card: dict[str, Any]):
        from engine.reports.sensitivity import latest_sensitivity
        from engine.search.latency import table_for
        from engine.submit import device_kind, model_fingerprint
        from engine.toolkit.data import load_dataset
        from engine.worker import job_device

        self.model, self.dataset, self.cons, self.owner = model, dataset, cons, owner
        self.data = load_dataset(dataset)
        self.start_job = start_job(model)
        if self.start_job is not None and store.get_job(self.start_job).status != DONE:
            job = execute(self.start_job)
            if job.status != DONE:
                raise LabError(f"the starting model {model} could not be made: job {job.id} "
                               f"{job.status} ({job.error or job.message})")
        self.card = card if card.get("layers") else self._card()
        kind, fp = device_kind(None), model_fingerprint(model)
        texts = self.data.test.texts[:256]
        self.table = table_for(model, fp, kind, cons.batch, SEQ_LEN, texts)
        self.table32 = self.table if cons.batch == 32 else table_for(model, fp, kind, 32,
                                                                      SEQ_LEN, texts)
        self.sensitivity = latest_sensitivity(model)
        device = job_device(probe=True) or "cpu"
        schemes = tuple(s for s in P.INT8_SCHEMES if "quantize" in methods
                        and _scheme_runs(s, device))
        layers, heads = self.table.layers, self.table.heads
        self.candidates = P.plan(layers, heads, tuple(m for m in methods if m != "quantize"),
                                 schemes, self.sensitivity, train_steps)
        self.size_mb = float(self.card.get("size_mb") or 1.0)
        P.predict(self.candidates, self.table, self.size_mb, self.sensitivity)
        for c in self.candidates:
            c.predicted["minutes"] = self.chain_seconds(c.steps) / 60
        reason = P.closest_to_ceiling(self.candidates, cons)
        if reason:
            raise LabError(reason)
        quickest = min(self.candidates, key=lambda c: c.predicted["minutes"])
        if quickest.predicted["minutes"] > cons.minutes:
            raise LabError(f"--minutes {cons.minutes:g} is too little for one candidate: the "
                           f"quickest, {quickest.label}, takes about "
                           f"{quickest.predicted['minutes']:.1f} minutes here; give at least "
                           f"--minutes {max(1, round(quickest.predicted['minutes'] + 0.5))}")

    def _card(self) -> dict[str, Any]:
        from engine.toolkit.checkpoints import checkpoint_card

        return checkpoint_card(self.model)

    def chain_seconds(self, steps: tuple[P.Step, ...], scale: float = 1.0) -> float:
        """About how long these steps take here (scaled by how far estimates were off)."""
        compiled = "compiled" in (settings.timing_runtimes() or ["eager", "compiled"])
        total = 0.0
        for s in steps:
            n = P.train_steps_of(s, len(self.data.train))
            total += P.step_seconds(s, self.table32, self.table32.full_ms, n,
                                    len(self.data.test), len(self.data.val_judge),
                                    compiled or s.method == "quantize")
        return total * scale


def _scheme_runs(scheme: str, device: str) -> bool:
    from engine.methods.registry import get_method

    spec = get_method("quantize")
    return spec.availability is None or not spec.availability(spec.config.from_values(
        {"scheme": scheme}), device)
