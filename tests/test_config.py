"""Method configs: CLI parsing, bounds, JSON round trip, form description."""

from __future__ import annotations

import pytest

from engine.methods.registry import config_from_json, get_method, methods
from engine.toolkit.config import ConfigError


def test_core_methods_are_registered() -> None:
    assert {"evaluate", "finetune"} <= set(methods())


def test_from_sets_parses_types() -> None:
    cfg = get_method("finetune").config.from_sets(["epochs=1.5", "max_steps=10", "lr=3e-5",
                                                   "batch_size=8"])
    assert (cfg.epochs, cfg.max_steps, cfg.lr, cfg.batch_size) == (1.5, 10, 3e-5, 8)
    ev = get_method("evaluate").config.from_sets(["batch_sizes=[1, 8]"])
    assert ev.batch_sizes == [1, 8]
    assert get_method("evaluate").config.from_sets(["batch_sizes=1,4"]).batch_sizes == [1, 4]


@pytest.mark.parametrize("item, words", [
    ("max_steps=-1", "below its minimum"),
    ("batch_size=0", "below its minimum"),
    ("lr=abc", "should be float"),
    ("nonsense=1", "unknown setting"),
    ("epochs", "key=value"),
    ("max_steps=1.5", "should be int"),
])
def test_bad_values_say_what_is_wrong(item: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        get_method("finetune").config.from_sets([item])


def test_json_roundtrip_keeps_version() -> None:
    cfg = get_method("finetune").config.from_sets(["max_steps=5"])
    blob = cfg.to_json()
    assert blob["type"] == "FinetuneConfig" and blob["version"] == type(cfg).version == 4
    assert config_from_json("finetune", blob) == cfg


def test_every_field_has_help_and_default() -> None:
    for spec in methods().values():
        for info in spec.config.fields_info():
            assert info["help"], f"{spec.name}.{info['name']} needs a help text"
        spec.config().validate()  # the defaults are valid


def test_unknown_method() -> None:
    with pytest.raises(ConfigError, match="unknown method"):
        get_method("shrink")


@pytest.mark.parametrize("values, words", [
    ({"lr": float("nan")}, "lr=nan is not a finite number; give a number from 1e-07 to 0.01"),
    ({"epochs": float("inf")}, "epochs=inf is not a finite number"),
    ({"warmup_ratio": float("-inf")}, "warmup_ratio=-inf is not a finite number"),
    ({"seed": 2**40}, "seed=1099511627776 is too large"),
])
def test_numbers_must_be_finite_and_fit(values: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        get_method("finetune").config.from_values(values)


def test_list_values_once_each() -> None:
    with pytest.raises(ConfigError, match=r"batch_sizes=\[1, 8, 1\] lists 1 more than once"):
        get_method("evaluate").config.from_values({"batch_sizes": [1, 8, 1]})
    assert get_method("evaluate").config.from_values({"batch_sizes": [8, 1]}).batch_sizes == [8, 1]


def test_head_fits_the_dataset() -> None:
    from types import SimpleNamespace

    from engine.toolkit.config import check_head_fits

    data = SimpleNamespace(name="three.csv", num_labels=3, label_names=["a", "b", "c"])
    check_head_fits("evaluate", {}, data)  # facts unknown: the job checks
    check_head_fits("evaluate", {"classifier": True, "labels": ["x", "y", "z"]}, data)
    with pytest.raises(ConfigError, match="predicts 2 labels"):
        check_head_fits("evaluate", {"id": "m", "classifier": True, "labels": ["x", "y"]}, data)
    with pytest.raises(ConfigError, match="no classification head"):
        check_head_fits("evaluate", {"id": "m", "classifier": False}, data)
