"""The stored sensitivity of a model: where int8 and dropping a layer hurt (issue 17).

A done `sensitivity` job stores metrics["sensitivity"] shaped as:

    {"split": "validation", "examples": int, "base_accuracy": float (0..1),
     "layers": int, "parts": ["embeddings", "query", "key", "value", "attn_out",
                              "ffn_in", "ffn_out"],
     "quant": [{"layer": int | None (None: embeddings), "part": str,
                "acc_drop": float (base - with only this part int8, 0..1),
                "sqnr_db": float (logits' signal-to-quantization-noise ratio, dB)}],
     "layer_drop": [{"layer": int, "acc_drop": float}],
     "heads": [[float, ...] per layer] (head importance, the prune scoring),
     "latency_share": [{"layer": int | None, "part": str, "ms": float, "share": float}]}

acc_drop is a fraction (0.01 = one point); positive means the model got worse.
"""

from __future__ import annotations

from typing import Any

from storage import jobs as store
from storage.models import DONE


def latest_sensitivity(model: str) -> dict[str, Any] | None:
    """The newest done sensitivity job's map for input model id `model` (as the job row
    names it: "default", "job:12", a path...), with "job_id" added; None when there is none."""
    for job in store.list_jobs(statuses=(DONE,), method="sensitivity",
                               refresh_first=False):
        if job.model == model and job.metrics is not None:
            found = (job.metrics.extra or {}).get("sensitivity")
            if found:
                return {**found, "job_id": job.id}
    return None
