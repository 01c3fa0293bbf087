"""Recipes: a chain of method configs in YAML that `python -m engine run` replays.

    model: default            # the first step's input (any model id)
    dataset: rotten-tomatoes
    steps:
      - method: distill
        config: {student_layers: 3}
      - method: quantize      # takes the previous step's output model
        config: {scheme: int8-dynamic}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.reports.files import recipe_for  # noqa: F401 (the recipe a chain replays)
from engine.toolkit.config import ConfigError, LabError


def load_recipe(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise LabError(f"{path}: no such recipe file")
    try:
        recipe = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise LabError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(recipe, dict) or not isinstance(recipe.get("steps"), list) \
            or not recipe["steps"]:
        raise LabError(f"{path}: a recipe is a mapping with a non-empty `steps` list, each "
                       f"step a mapping with `method` and optional `config`")
    for i, step in enumerate(recipe["steps"]):
        if not isinstance(step, dict) or "method" not in step:
            raise LabError(f"{path}: step {i + 1} needs a `method`")
        if not isinstance(step.get("config", {}) or {}, dict):
            raise LabError(f"{path}: step {i + 1}: `config` must be a mapping")
    return recipe


def submit_recipe(path: str | Path) -> list[int]:
    """Validate every step first (nothing is queued if one is bad), then queue the chain."""
    from engine.methods.registry import get_method
    from engine.submit import build_config, submit
    from engine.worker import job_device

    recipe = load_recipe(path)
    steps = recipe["steps"]
    configs = [build_config(step["method"], values=step.get("config") or {}) for step in steps]
    specs = [get_method(step["method"]) for step in steps]
    device = job_device(probe=any(spec.availability is not None for spec in specs))
    for i, (spec, cfg) in enumerate(zip(specs, configs)):
        reason = spec.availability(cfg, device) if spec.availability and device else None
        if reason:
            raise ConfigError(f"{path}: step {i + 1} ({spec.name}): {reason}")
    ids: list[int] = []
    for step in steps:
        ids.append(submit(step["method"], model=recipe.get("model", "default"),
                          dataset=recipe.get("dataset", "rotten-tomatoes"),
                          from_job=ids[-1] if ids else None, values=step.get("config") or {},
                          device=device))
    return ids
