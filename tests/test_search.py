"""Budget-first search, the planner: ranking on a hand-made latency table, prediction from a
hand-made sensitivity map, accuracy-aware int8 steps, bad budgets. The loop and the command line
are in test_search_run.py, the report and page in test_search_page.py."""

from __future__ import annotations

import pytest

from engine.reports import search_plan as P
from engine.reports.search_plan.candidates import _int8
from engine.toolkit.config import LabError

# 4 layers x 4 heads: fixed 2 ms, a layer 10 ms of which 4 heads x 1 ms
TABLE = P.LatencyTable(fixed_ms=2.0, layer_ms=10.0, head_ms=1.0, layers=4, heads=4,
                       hidden=32, intermediate=64, batch=32, int8_speedup={"int8-dynamic": 2.0})


def sensitivity(layers: int = 4) -> dict:
    """A map in engine/reports/sensitivity.py's shape: layer 0 matters most, 3 least."""
    parts = ["embeddings", "query", "key", "value", "attn_out", "ffn_in", "ffn_out"]
    quant = [{"layer": None, "part": "embeddings", "acc_drop": 0.001, "sqnr_db": 40.0}]
    quant += [{"layer": i, "part": p, "acc_drop": 0.0005, "sqnr_db": 35.0}
              for i in range(layers) for p in parts[1:]]
    return {"split": "validation", "examples": 100, "base_accuracy": 0.8, "layers": layers,
            "parts": parts, "quant": quant,
            "layer_drop": [{"layer": i, "acc_drop": [0.08, 0.04, 0.02, 0.01][i]}
                           for i in range(layers)],
            "heads": [[4.0, 3.0, 2.0, 1.0] for _ in range(layers)], "latency_share": []}


def test_latency_prediction_from_the_table() -> None:
    assert P.predict_latency({}, TABLE) == pytest.approx(42.0)
    assert P.predict_latency({"kept_layers": [0, 3]}, TABLE) == pytest.approx(22.0)
    # half the heads: each layer loses 2 ms
    assert P.predict_latency({"heads_removed": 0.5}, TABLE) == pytest.approx(34.0)
    assert P.predict_latency({"int8": "int8-dynamic"}, TABLE) == pytest.approx(21.0)
    # int8-static was never measured here: its prior
    assert P.predict_latency({"int8": "int8-static"}, TABLE) == pytest.approx(
        42.0 / P.PRIOR_INT8_SPEEDUP["int8-static"])


def test_the_planner_ranks_by_predicted_speed_within_the_budget() -> None:
    cands = P.plan(4, 4, ("distill", "prune-layers", "prune-heads"), ("int8-dynamic",))
    P.predict(cands, TABLE, 10.0, None)
    labels = {c.label for c in cands}
    assert "distill to 1 layer → int8-dynamic" in labels and "int8-dynamic" in labels
    assert all(c.steps[-1].method == "quantize" for c in cands if "int8" in c.label)
    loose = P.rank(cands, P.Constraints(max_drop=0.5), 0.5)
    speeds = [c.predicted["speedup"] for c in loose]
    assert speeds == sorted(speeds, reverse=True)
    assert loose[0].label == "distill to 1 layer → int8-dynamic"
    # a tight budget keeps only what is predicted to lose little: int8 alone is first
    tight = P.rank(cands, P.Constraints(max_drop=0.003), 0.003)
    assert tight and tight[0].label == "int8-dynamic"
    assert all(c.predicted["drop"] <= P.SLACK * 0.003 for c in tight)
    # a latency ceiling drops what is predicted too slow
    capped = P.rank(cands, P.Constraints(max_drop=0.5, max_latency_ms=15), 0.5)
    assert capped and all(c.predicted["ms"] <= 16.5 for c in capped)


def test_ffn_chains_are_planned_and_predicted_narrower() -> None:
    methods = ("distill", "prune-layers", "prune-heads", "prune-ffn")
    cands = P.plan(6, 4, methods, ("int8-dynamic",))
    by = {c.label: c for c in cands}
    deepest = by["distill to 3 layers → remove 50% of heads → remove 50% of FFN neurons → "
                 "int8-dynamic"]
    assert deepest.steps[2].config() == {"kind": "ffn", "amount": 0.5}
    assert "drop 2 layers → remove 50% of FFN neurons → int8-dynamic" in by
    # a student that keeps more than half the layers loses two thirds of its FFN neurons
    four = by["distill to 4 layers → remove 50% of heads → remove 67% of FFN neurons → "
              "int8-dynamic"]
    assert four.steps[2].config() == {"kind": "ffn", "amount": 0.667}
    assert four.effect["ffn_removed"] == 0.667 and four.effect["kept_layers"] == [0, 2, 3, 5]
    assert "remove 50% of FFN neurons" in by
    assert not any("FFN" in c.label for c in P.plan(6, 4, methods[:3], ("int8-dynamic",)))
    table = P.LatencyTable(fixed_ms=2.0, layer_ms=10.0, head_ms=1.0, layers=6, heads=4,
                           hidden=32, intermediate=64, batch=32)
    # a layer is 4 heads x 1 ms + 6 ms of FFN: half the neurons halve the FFN's 6 ms
    assert P.predict_latency({"ffn_removed": 0.5}, table) == pytest.approx(2 + 6 * 7)
    P.predict(cands, table, 10.0, None)
    assert deepest.predicted["speedup"] == max(c.predicted["speedup"] for c in cands)
    # the prior: 0.02 per unit removed, times 2, on the share of layers kept
    alone = by["remove 50% of FFN neurons"]
    assert alone.predicted["drop"] == pytest.approx(P.PRIOR_DROP["ffn"])
    # a measured prefix (distill, then heads) carries neither the neurons nor int8
    from engine.reports.search_plan.prediction import _prefix_effect

    assert "ffn_removed" not in _prefix_effect(deepest, 2)
    assert _prefix_effect(deepest, 2)["heads_removed"] == 0.5
    assert _prefix_effect(deepest, 3)["ffn_removed"] == 0.5


def test_prediction_from_a_sensitivity_map() -> None:
    sens = sensitivity()
    # distill keeps the layers whose dropping hurts most
    assert P.keep_layers(4, 2, sens) == [0, 1]
    cands = P.plan(4, 4, ("distill",), ("int8-dynamic",), sens)
    two = next(c for c in cands if c.label == "distill to 2 layers")
    assert two.steps[0].config()["student_layers"] == [0, 1]
    # dropping layers 2 and 3 (raw 0.02 + 0.01), distillation leaves 40 % of it
    assert P.predict_drop(two.effect, 4, sens) == pytest.approx(0.4 * 0.03)
    # int8 on what is kept: embeddings + 6 parts x 2 layers
    both = next(c for c in cands if c.label == "distill to 2 layers → int8-dynamic")
    assert P.predict_drop(both.effect, 4, sens) == pytest.approx(
        0.4 * 0.03 + 0.001 + 12 * 0.0005)
    # heads: the least important quarter of each layer (score 1 of 10)
    heads = P.predict_drop({"heads_removed": 0.25}, 4, sens)
    assert heads == pytest.approx(sum(0.5 * 0.5 * d * 0.1 for d in (0.08, 0.04, 0.02, 0.01)))
    # a measured prefix replaces its prediction
    P.predict([both], TABLE, 10.0, sens, measured={both.steps[:1]: 0.05})
    assert both.predicted["drop"] == pytest.approx(0.05 + 0.001 + 12 * 0.0005)
    # a map of another model (other depth) is ignored: the priors
    assert P.keep_layers(6, 2, sens) is None


def test_a_tight_budget_makes_the_int8_step_accuracy_aware() -> None:
    from engine.methods.registry import get_method

    sens = sensitivity()
    cands = P.plan(4, 4, ("distill",), ("int8-dynamic",), sens)
    alone = next(c for c in cands if c.label == "int8-dynamic")
    chained = next(c for c in cands if c.label == "distill to 2 layers → int8-dynamic")
    # every part int8 loses 0.001 + 24 x 0.0005 = 0.013: within 80 % of a loose budget, plain
    P.fit_int8(cands, 0.05, 4, sens)
    assert "max_drop" not in alone.steps[-1].config() and alone.label == "int8-dynamic"
    # a budget of one point: int8 gets 80 % of it as quantize's max_drop, and says so
    P.fit_int8(cands, 0.01, 4, sens)
    step = alone.steps[-1]
    assert step.config() == {"scheme": "int8-dynamic", "max_drop": pytest.approx(0.008)}
    assert alone.label == "int8-dynamic, accuracy-aware (max_drop=0.008)"
    get_method("quantize").config.from_values(step.config())  # a valid quantize config
    P.predict([alone], TABLE, 10.0, sens)
    assert alone.predicted["drop"] == pytest.approx(0.008)
    # the 9 most sensitive of 25 parts stay float (0.013 - 0.001 - 8 x 0.0005 = 0.008): slower
    assert alone.effect["int8_float_share"] == pytest.approx(9 / 25)
    assert alone.predicted["ms"] == pytest.approx(42.0 * (9 / 25 + 16 / 25 / 2.0))
    # distill to 2 layers is predicted to lose 0.012 already: nothing left, plain int8 ...
    assert "max_drop" not in chained.steps[-1].config()
    # ... until the distill step is measured at 0.004: int8 gets 80 % of the 0.006 left
    P.fit_int8(cands, 0.01, 4, sens, measured={chained.steps[:1]: 0.004})
    assert chained.steps[-1].config()["max_drop"] == pytest.approx(0.0048)
    assert chained.steps[0].label == "distill to 2 layers"  # the prefix is unchanged
    # the accuracy-aware step costs its validation passes in the time estimate
    plain, aware = _int8("int8-dynamic"), chained.steps[-1]
    assert P.step_seconds(aware, TABLE, 42, 0, 100, 100, True) > P.step_seconds(
        plain, TABLE, 42, 0, 100, 100, True)


def test_the_search_replans_int8_from_its_budget() -> None:
    from types import SimpleNamespace

    from engine.search import Run

    sens = sensitivity()
    cands = P.plan(4, 4, (), ("int8-dynamic",), sens)
    prep = SimpleNamespace(candidates=cands, cons=P.Constraints(max_drop=0.01), table=TABLE,
                           size_mb=10.0, sensitivity=sens, chain_seconds=lambda steps: 60.0)
    run = Run(prep, {"id": 1}, None)
    run.allowed = 0.01
    run.refit()
    assert cands[0].steps[-1].config()["max_drop"] == pytest.approx(0.008)
    assert cands[0].predicted["drop"] == pytest.approx(0.008)


@pytest.mark.parametrize("kwargs, words", [
    ({"max_drop": 0}, "admits no candidate"),
    ({"max_drop": 1.5}, "below 1"),
    ({"max_drop": None, "min_retained": 1.5}, "between 0 and 1"),
    ({"max_drop": None, "min_retained": 0}, "between 0 and 1"),
    ({"max_drop": None}, "give an accuracy budget"),
    ({"batch": 8}, "batch 1 and 32"),
    ({"minutes": 0}, "some time"),
])
def test_bad_budgets_are_refused(kwargs, words) -> None:
    with pytest.raises(LabError, match=words):
        P.Constraints(**kwargs).check()


def test_a_drop_of_exactly_the_budget_is_within_it() -> None:
    """Accuracies are counts over n: 0.854 - 0.834 is 0.020000000000000018 in floats."""
    assert not P.Constraints.over_budget(0.854 - 0.834, 0.02)
    assert P.Constraints.over_budget(0.854 - 0.832, 0.02)
