"""Method configs: frozen dataclasses whose fields carry help texts, bounds and choices.

The UI form, the CLI's `--set key=value` and the JSON stored on the job row are all generated
from these fields, so adding a method never means editing a form. Importing this is cheap (no
torch): pages use it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

from storage.errors import LabError  # defined in storage (the lowest layer), used everywhere

INT_LIMIT = 2**31 - 1  # seeds, steps and counts beyond this overflow numpy/torch at run time


class ConfigError(LabError, ValueError):
    pass


def param(default: Any, help: str, *, min: float | None = None, max: float | None = None,
          choices: tuple | None = None, advanced: bool = False,
          applies_when: dict[str, tuple] | None = None) -> Any:
    """A config field with its help text (shown in the form and `--help`) and its bounds.

    `applies_when` ({other field: (values...)}) says the field matters only when those fields
    hold one of those values (forms hide it otherwise), e.g. {"scheme": ("int8-static",)}."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "advanced": advanced,
            "applies_when": applies_when}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's config. Subclasses set `method` and bump `version` on changes."""

    method: ClassVar[str] = ""
    version: ClassVar[int] = 1
    produces_model: ClassVar[bool] = True

    # ---------------------------------------------------------------- serialisation
    def to_json(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "version": self.version,
                "data": dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, blob: dict[str, Any]) -> MethodConfig:
        """Rebuild from `to_json`; unknown keys are refused, missing keys take defaults."""
        data = blob.get("data", blob)
        return cls.from_values(data)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> MethodConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"{cls.method}: unknown setting {', '.join(unknown)}; the settings are "
                f"{', '.join(known)}")
        hints = typing.get_type_hints(cls)
        coerced = {k: _coerce(cls.method, k, v, hints[k]) for k, v in values.items()}
        cfg = cls(**coerced)
        cfg.validate()
        return cfg

    @classmethod
    def from_sets(cls, sets: list[str]) -> MethodConfig:
        """Parse CLI `key=value` strings (values read as YAML: 3, 0.5, true, [0, 2])."""
        values: dict[str, Any] = {}
        for item in sets:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--set expects key=value, got {item!r}")
            try:
                values[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError:
                values[key.strip()] = raw
        return cls.from_values(values)

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Check every field against its bounds and choices, then `check()`."""
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            items = value if isinstance(value, list) else [value]
            repeated = _repeated(items)
            if repeated:
                raise ConfigError(
                    f"{self.method}: {f.name}={value} lists {', '.join(map(str, repeated))} "
                    f"more than once; give each value once ({meta['help']})")
            for item in items:
                if isinstance(item, int) and not isinstance(item, bool) and \
                        abs(item) > INT_LIMIT:
                    raise ConfigError(
                        f"{self.method}: {f.name}={item} is too large; give a whole "
                        f"number{_range_text(meta) or f' below {INT_LIMIT + 1}'} "
                        f"({meta['help']})")
                if isinstance(item, float) and not math.isfinite(item):
                    raise ConfigError(
                        f"{self.method}: {f.name}={item} is not a finite number; give a "
                        f"number{_range_text(meta)} ({meta['help']})")
                if meta.get("choices") is not None and item not in meta["choices"]:
                    raise ConfigError(
                        f"{self.method}: {f.name}={item!r} is not one of "
                        f"{', '.join(map(str, meta['choices']))}")
                if isinstance(item, (int, float)) and not isinstance(item, bool):
                    lo, hi = meta.get("min"), meta.get("max")
                    if lo is not None and item < lo:
                        raise ConfigError(f"{self.method}: {f.name}={item} is below its "
                                          f"minimum {lo} ({meta['help']})")
                    if hi is not None and item > hi:
                        raise ConfigError(f"{self.method}: {f.name}={item} is above its "
                                          f"maximum {hi} ({meta['help']})")
        self.check()

    def check(self) -> None:
        """Cross-field checks; override and raise ConfigError."""

    # ---------------------------------------------------------------- description
    @classmethod
    def fields_info(cls) -> list[dict[str, Any]]:
        """One dict per field for forms and help: name, type, default, help, min, max, choices,
        advanced, applies_when."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out.append({"name": f.name, "type": _type_name(hints[f.name]), "default": default,
                        **{k: f.metadata.get(k) for k in ("help", "min", "max", "choices",
                                                           "advanced", "applies_when")}})
        return out


def _repeated(items: list[Any]) -> list[Any]:
    """Values that occur more than once in a list field, in first-seen order."""
    seen, twice = [], []
    for item in items:
        if item in seen and item not in twice:
            twice.append(item)
        seen.append(item)
    return twice


def _range_text(meta: Any) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" of at least {lo}"
    return f" of at most {hi}" if hi is not None else ""


# ------------------------------------------------------------------ checks against the model
# Used by the methods' check_input(cfg, card, dataset) hooks at submit: facts of the input
# model from engine.toolkit.checkpoints.checkpoint_card (no torch), a Dataset (data.py).


def card_config(card: dict[str, Any]) -> dict[str, Any]:
    """The input model's config.json as a dict ({} when unknown: a hub model, a preset)."""
    path = card.get("path")
    if not path or card.get("source") in ("hub", "preset"):
        return {}
    try:
        with open(f"{path}/config.json", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def check_head_fits(method: str, card: dict[str, Any], dataset: Any) -> None:
    """For methods that use the model's own classifier: refuse a model without one, or one
    whose label count differs from the dataset's. Unknown facts pass (the job checks)."""
    if not card or card.get("classifier") is None:
        return
    model = card.get("id", "the model")
    if not card["classifier"]:
        raise ConfigError(f"{method}: {model} has no classification head; fine-tune it on "
                          f"this dataset first (method finetune), then {method} that job's "
                          f"model")
    labels = card.get("labels") or []
    if labels and dataset is not None and len(labels) != dataset.num_labels:
        raise ConfigError(
            f"{method}: {model} predicts {len(labels)} labels ({', '.join(map(str, labels))}) "
            f"but {dataset.name} has {dataset.num_labels} ({', '.join(dataset.label_names)}); "
            f"fine-tune a model on this dataset first (method finetune), or pick the "
            f"dataset the model was trained on")


def _type_name(tp: Any) -> str:
    if tp in (int, float, bool, str):
        return tp.__name__
    origin = typing.get_origin(tp)
    if origin in (list,):
        return f"list[{_type_name(typing.get_args(tp)[0])}]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    return str(tp)


def _coerce(method: str, name: str, value: Any, tp: Any) -> Any:
    """Turn a parsed value into the field's type, or raise a ConfigError that names the field."""
    options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union,
                                                               types.UnionType) else (tp,)
    for option in options:
        try:
            return _coerce_one(value, option)
        except (TypeError, ValueError):
            continue
    raise ConfigError(f"{method}: {name}={value!r} should be {_type_name(tp)}")


def _coerce_one(value: Any, tp: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if value in (0, 1):
            return bool(value)
        raise ValueError
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    if tp is str:
        if isinstance(value, (list, dict)):
            raise ValueError
        return str(value)
    if typing.get_origin(tp) is list:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError
        (inner,) = typing.get_args(tp)
        return [_coerce_one(v, inner) for v in value]
    raise TypeError(tp)
