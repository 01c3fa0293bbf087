"""The search's checks that need no model run: bad input is refused (LabError) before anything
is queued or recorded. No torch here."""

from __future__ import annotations

from typing import Any

from engine.reports import search_plan as P
from engine.toolkit.config import LabError

METHODS = ("distill", "prune-layers", "prune-heads", "prune-ffn", "lowrank", "quantize")


def check_request(model: str, dataset: str, cons: P.Constraints, owner: str | None,
                  methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """Every check that needs no model run; LabError before anything is queued. Returns the
    model's card (engine.submit.input_card)."""
    from engine.submit import check_model_id, check_owner, input_card
    from engine.toolkit.data import DatasetError, load_dataset

    cons.check()
    check_owner(owner)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise LabError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; use some "
                       f"of {', '.join(METHODS)}")
    check_model_id(model)
    try:
        load_dataset(dataset)
    except DatasetError as exc:
        raise LabError(str(exc)) from exc
    card = input_card(model)
    if card and card.get("classifier") is False:
        raise LabError(f"{model} has no classification head, so there is no accuracy to keep: "
                       f"fine-tune it first (`python -m engine submit finetune --model "
                       f"{model}`), then search its job:ID, or search `default`")
    if card.get("path") and _is_quantized(card["path"]):
        raise LabError(f"{model} is already quantized, and a quantized model is not compressed "
                       f"further: search the float model it was made from")
    if card.get("source") == "preset":
        raise LabError(f"{model} has random weights: its accuracy means nothing, so an "
                       f"accuracy budget cannot be kept; search a trained model")
    return card


def _is_quantized(path: str) -> bool:
    from engine.toolkit.architecture import changes_of, has_kind
    from engine.toolkit.checkpoints import read_meta

    meta = read_meta(path)
    return bool(meta) and has_kind(changes_of(meta), "quantized")
