"""Saving step: where a job's files go, the produced model saved with its lab metadata and
loaded back (what is measured is what was saved), library versions for the record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from engine.toolkit.contract import JobContext, Produced
from storage.artifacts import job_dir  # noqa: F401 (where a job's files go: one function)


def versions() -> dict[str, str]:
    import torch
    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        import torchao

        out["torchao"] = torchao.__version__
    except ImportError:
        pass
    return out


def save_and_reload(ctx: JobContext, cfg, ecfg, produced: Produced,
                     partial: Path) -> tuple[Any, str]:
    """Save the produced model into `partial` (with lab_meta.json), then load it back:
    what is measured is what was saved, so a model that does not reload fails the job here.
    Returns (reloaded model on its device, that device)."""
    from engine.toolkit import checkpoints as M

    job = ctx.job
    ctx.progress(0.8, "saving the model", force=True)
    shutil.rmtree(partial, ignore_errors=True)
    meta = {"method": job.method, "job_id": job.id, "input_model": job.model,
            "dataset": job.dataset, "max_length": ecfg.max_length,
            "label_names": ctx.dataset.label_names, "config": cfg.to_json(), **produced.meta}
    if produced.save is not None:
        partial.mkdir(parents=True)
        produced.save(partial)
        (partial / M.META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    else:
        M.save_model(produced.model, produced.tokenizer, partial, meta)
    del produced.model
    ref = M.ModelRef(f"job:{job.id}", str(partial), "job", job.id)
    model_device = produced.device or ctx.device
    return M.load_classifier(ref).to(model_device), model_device


def write_card(folder: Path, job, metrics: dict[str, Any], latencies: list[dict]) -> None:
    """README.md (a Hugging Face model card) in the model's folder: the measured figures,
    latency with hardware, threads, runtime and batch, the lineage and the recipe."""
    from engine.reports.model_card import CARD_FILE, model_card
    from storage import jobs as store

    run = {"id": job.id, "method": job.method, "config": job.config, "model": job.model,
           "dataset": job.dataset, "output_model": f"job:{job.id}",
           "metrics": {**metrics, "latency": [r for r in latencies if r.get("role") == "self"]}}
    chain, parent_id = [run], job.parent_id
    while parent_id is not None:  # oldest first, ending with this run
        parent = store.load_job(parent_id)
        chain.insert(0, {"method": parent.method, "config": parent.config,
                         "model": parent.model})
        parent_id = parent.parent_id
    (folder / CARD_FILE).write_text(model_card(run, chain))
