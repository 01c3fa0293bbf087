"""Property-based: generated values for every config field of every registered method are
either refused at submit with a message that names the field, or accepted (a queued row).
Never any other exception. No model runs: submit against the tiny model with no worker."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.methods.registry import config_from_json, methods
from engine.toolkit.config import LabError

# Values that make the defaults fit the tiny model (2 layers x 4 heads, 2 labels), so that a
# refusal is about the generated value, not about the base config.
MODEL = "<the tiny model>"  # replaced by its folder in each test
BASE: dict[str, dict[str, Any]] = {"distill": {"student_layers": 2},
                                   # timed against the tiny model, at lengths it accepts
                                   "retime": {"against": MODEL},
                                   "seqlen": {"lengths": [16, 32]}}


def base_for(method: str, model: str, skip: str | None = None) -> dict[str, Any]:
    return {k: model if v == MODEL else v for k, v in BASE.get(method, {}).items() if k != skip}
FIELDS = [(name, f) for name, spec in methods().items() for f in spec.config.fields_info()]

SETTINGS = settings(max_examples=12, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

anything = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(-3, 60), max_size=5),
    st.lists(st.one_of(st.text(max_size=3), st.floats(), st.booleans()), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def near(info: dict[str, Any]) -> st.SearchStrategy:
    """Values close to what the field takes: its choices, its bounds and just past them,
    LAYER:HEAD-like text, small lists of layer indices."""
    edges = [v for b in (info.get("min"), info.get("max")) if b is not None
             for v in (b, b - 1, b + 1, b * 0.5, -b)]
    options = [st.sampled_from([math.nan, math.inf, -math.inf, 2**40, ""])]
    options += [st.sampled_from(edges)] if edges else []
    if info.get("choices"):
        options.append(st.sampled_from(list(info["choices"])))
    pairs = st.tuples(st.integers(0, 13), st.integers(0, 25)).map(lambda p: f"{p[0]}:{p[1]}")
    options += [st.lists(pairs, max_size=4).map(",".join),
                st.lists(st.integers(0, 8), max_size=4), st.integers(0, 8)]
    return st.one_of(*options)


def value_for(info: dict[str, Any]) -> st.SearchStrategy:
    return st.one_of(anything, near(info))


def as_cli(value: Any) -> str:
    """How a user would type the value after --set key=."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}[str(value)]
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def attempt(method: str, model: str, dataset: str, values: dict[str, Any] | None = None,
            sets: list[str] | None = None) -> None:
    """Submit; an accepted job is a queued row, a refusal must name a field it was given."""
    from engine.submit import submit
    from storage import jobs as store

    given_fields = set(values or {}) | {s.partition("=")[0].strip() for s in sets or []}
    try:
        job_id = submit(method, model=model, dataset=dataset, values=values, sets=sets)
    except LabError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        assert any(name in message for name in given_fields), \
            f"{method}: the refusal does not name the field {sorted(given_fields)}: {message}"
        return
    job = store.get_job(job_id)
    assert job.status == "queued"
    # What the worker will do first: rebuild the stored config. It must be strict JSON (no NaN,
    # PostgreSQL refuses it) and come back equal (NaN would not) and valid.
    json.dumps(job.config, allow_nan=False)
    rebuilt = config_from_json(method, job.config)
    assert rebuilt.to_json() == job.config


@pytest.mark.parametrize("method, info", FIELDS, ids=[f"{m}.{f['name']}" for m, f in FIELDS])
def test_every_field_is_refused_clearly_or_accepted(method, info, tiny_model_dir, tiny_csv):
    model, dataset = str(tiny_model_dir), f"csv:{tiny_csv}"
    name = info["name"]

    @SETTINGS
    @given(value=value_for(info), cli=st.booleans())
    def run(value: Any, cli: bool) -> None:
        base = base_for(method, model, skip=name)
        if cli:
            sets = [f"{k}={as_cli(v)}" for k, v in base.items()] + [f"{name}={as_cli(value)}"]
            attempt(method, model, dataset, sets=sets)
        else:
            attempt(method, model, dataset, values={**base, name: value})

    run()


@pytest.mark.parametrize("method", sorted(methods()))
def test_fields_together(method, tiny_model_dir, tiny_csv):
    """Several generated fields at once (cross-field checks): same property."""
    model, dataset = str(tiny_model_dir), f"csv:{tiny_csv}"
    infos = {f["name"]: f for f in methods()[method].config.fields_info()}

    @settings(SETTINGS, max_examples=25)
    @given(data=st.data())
    def run(data) -> None:
        names = data.draw(st.lists(st.sampled_from(sorted(infos)), min_size=2, max_size=4,
                                   unique=True))
        values = base_for(method, model)
        values.update({n: data.draw(near(infos[n])) for n in names})
        attempt(method, model, dataset, values=values)

    run()
