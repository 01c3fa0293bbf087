"""Facts about a model read from stored jobs: the model it was made from, and the head
importance scores of a prune job that took or produced it. Cheap: no torch."""

from __future__ import annotations

import numpy as np


def _names(model_id: str) -> set[str]:
    """Every id the model `model_id` goes by (its row name and alias), for matching jobs."""
    from storage import jobs as store

    row = store.find_model(model_id)
    return {model_id} | ({row.name} | ({row.alias} if row.alias else set()) if row else set())


def parent_of(model_id: str) -> str | None:
    """The input model of the job that produced `model_id`, if a job did."""
    from storage import jobs as store

    row = store.find_model(model_id)
    if row is None or row.job_id is None:
        return None
    try:
        return store.get_job(row.job_id).model
    except store.JobNotFound:
        return None


def head_importance(model_ids: list[str]) -> tuple[int, str, np.ndarray] | None:
    """(job id, model scored, [layers, heads] importance) from the newest done prune job that
    took or produced one of `model_ids`, or None when there is none."""
    from storage import jobs as store

    names = set().union(*(_names(m) for m in model_ids if m)) if model_ids else set()
    for d in store.head_score_jobs():
        if {d["model"], d["output_model"]} & names:
            return d["id"], d["model"], np.asarray(d["metrics"]["head_importance"],
                                                   dtype=np.float64)
    return None


def own_head_importance(model_id: str, layer_index: list[int] | tuple[int, ...],
                        kept: np.ndarray) -> tuple[int, np.ndarray] | None:
    """(job id, [layers, heads] importance on the ORIGINAL grid) of the model `model_id`
    itself: the newest done prune job that scored it (its input model), placed by the
    model's own layer mapping (`layer_index`, `kept` [layers, heads] from its attention).
    None when no job scored this model. Scores of a parent are not this model's scores.

    Raises ValueError when the stored grid does not fit the model (rows != its layers)."""
    from storage import jobs as store

    names = _names(model_id)
    for d in store.head_score_jobs():
        if d["model"] not in names:
            continue
        rows = d["metrics"]["head_importance"]
        if len(rows) != len(layer_index):
            raise ValueError(f"prune job {d['id']} stored scores for {len(rows)} layers, but "
                             f"{model_id} has {len(layer_index)}")
        grid = np.full(kept.shape, np.nan)
        for layer, row in zip(layer_index, rows):
            heads = np.flatnonzero(kept[layer])
            values = np.array([np.nan if v is None else v for v in row], dtype=np.float64)
            if len(values) == kept.shape[1]:
                grid[layer] = np.where(kept[layer], values, np.nan)
            elif len(values) == len(heads):
                grid[layer, heads] = values
            else:
                raise ValueError(f"prune job {d['id']} stored {len(values)} scores for "
                                 f"layer {layer}, which has {len(heads)} heads")
        return d["id"], grid
    return None
