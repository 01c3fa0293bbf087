"""The method registry: config type -> handler, filled by the modules in engine/methods/.

A method module defines one `MethodConfig` subclass and decorates its `apply` function with
`@register(ThatConfig)`. `methods()` imports every module of the package once, so adding a
method means adding one package, nothing else. Cheap to import (the modules import torch lazily).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.toolkit.config import ConfigError, MethodConfig


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config: type[MethodConfig]
    apply: Callable[..., Any]  # apply(cfg, ctx) -> Produced | None
    summary: str
    # Optional hooks a method package may define next to its config (module-level functions
    # of the same name; `register` picks them up):
    # why `cfg` cannot run on a worker described as `device` ("cpu (2 threads)", "cuda:...")
    availability: Callable[[MethodConfig, str], str | None] | None = None
    # the method's own reasons a model it made is not faster: explain_slow(cfg, device,
    # metrics) -> str | None; the runner stores it when the paired speedup is small
    explain_slow: Callable[[MethodConfig, str, dict[str, Any]], str | None] | None = None
    # checks that need the input model's facts but no model run: check_input(cfg, card,
    # dataset) raises ConfigError (card: engine.toolkit.checkpoints.checkpoint_card)
    check_input: Callable[[MethodConfig, dict[str, Any], Any], None] | None = None
    # what an executor must give the job (Ray): resources(cfg) -> {"num_gpus": 1} etc.
    resources: Callable[[MethodConfig], dict[str, float]] | None = None


HOOKS = ("availability", "explain_slow", "check_input", "resources")
# How a saved model is rebuilt is not a hook: a method that changes the architecture registers
# each kind of change it makes (engine.toolkit.architecture.register_change) when its package
# is imported, and records the change in the model's lab_meta.json; the one loader replays it.
_HANDLERS: dict[type[MethodConfig], MethodSpec] = {}


def register(config_cls: type[MethodConfig]) -> Callable:
    """Decorator: `@register(QuantizeConfig) def apply(cfg, ctx): ...`."""

    def deco(fn: Callable) -> Callable:
        assert config_cls.method, f"{config_cls.__name__} needs a `method` name"
        module = importlib.import_module(fn.__module__)
        _HANDLERS[config_cls] = MethodSpec(
            name=config_cls.method, config=config_cls, apply=fn,
            summary=(module.__doc__ or "").strip().splitlines()[0],
            **{hook: getattr(module, hook, None) for hook in HOOKS})
        return fn

    return deco


def methods() -> dict[str, MethodSpec]:
    """Every registered method by name, in a stable order."""
    import engine.methods as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name == "registry":
            continue
        importlib.import_module(f"{pkg.__name__}.{info.name}")
    return {spec.name: spec for spec in sorted(_HANDLERS.values(), key=lambda s: s.name)}


def get_method(name: str) -> MethodSpec:
    found = methods()
    if name not in found:
        raise ConfigError(f"unknown method {name!r}; use one of {', '.join(found)}")
    return found[name]


def config_from_json(method: str, blob: dict[str, Any]) -> MethodConfig:
    """The config stored on a job row, rebuilt (checks the version)."""
    spec = get_method(method)
    version = blob.get("version", spec.config.version)
    if version > spec.config.version:
        raise ConfigError(f"{method} config version {version} is newer than this lab "
                          f"({spec.config.version}); upgrade the lab")
    return spec.config.from_json(blob)
