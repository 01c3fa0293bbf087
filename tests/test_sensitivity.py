"""The sensitivity map and accuracy-aware int8 (quantize max_drop) on a tiny random BERT, and the
"Where it hurts" page.

On a tiny random BERT with 8 validation examples int8 rarely flips a prediction, so the
tight-budget tests replace the measured drop with one that grows with the number of int8
Linear layers left (`fake_drop`): the search over which parts stay float is then exercised
for real, on real quantized models, against a known answer.
"""

from __future__ import annotations

import pytest
import torch

from engine.methods.quantize import accuracy_aware as AA
from engine.reports.figures import sensitivity_grid
from engine.reports.sensitivity import latest_sensitivity
from engine.submit import submit
from engine.toolkit import sensitivity as S
from engine.toolkit.checkpoints import load_classifier, read_meta, resolve
from engine.toolkit.config import ConfigError, LabError
from engine.toolkit.data import load_dataset
from engine.worker import run_claimed
from storage import jobs as store
from tests.conftest import spy_texts
from tests.test_lowrank import run, same_predictions_after_reload
from tests.test_pages import app

LINEARS = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")
FAST_Q = ["max_length=32", "runtime=eager"]  # no compile step: seconds, not minutes


def sensitivity_job(model, tiny_csv, *sets: str, fresh: bool = False) -> dict:
    return run(submit("sensitivity", model=str(model), dataset=f"csv:{tiny_csv}",
                      sets=["max_length=32", "latency_batches=2", "batch_size=8", *sets],
                      fresh=fresh))


def test_map_has_one_score_per_layer_and_part_on_validation_only(
        tiny_model_dir, tiny_csv, monkeypatch) -> None:
    data = load_dataset(f"csv:{tiny_csv}")
    seen = spy_texts(monkeypatch, S, "logits_of")
    job = sensitivity_job(tiny_model_dir, tiny_csv)
    sens = job["metrics"]["sensitivity"]
    assert sens["split"] == "validation" and sens["examples"] == len(data.val_judge) == 8
    assert sens["parts"] == ["embeddings", *LINEARS] and sens["layers"] == 2
    keys = [(r["layer"], r["part"]) for r in sens["quant"]]
    assert keys == [(None, "embeddings")] + [(i, p) for i in range(2) for p in LINEARS]
    assert all(-1 <= r["acc_drop"] <= 1 and 0 < r["sqnr_db"] <= S.SQNR_CAP_DB
               for r in sens["quant"])
    assert [r["layer"] for r in sens["layer_drop"]] == [0, 1]
    assert len(sens["heads"]) == 2 and all(len(row) == 4 for row in sens["heads"])
    share = sens["latency_share"]
    assert [(r["layer"], r["part"]) for r in share] == keys
    assert all(r["ms"] >= 0 and 0 <= r["share"] <= 1 for r in share)
    assert 0 < sum(r["share"] for r in share) <= 1
    # every scored text is from the validation split's judging half: none is a test text or
    # one training picks checkpoints on; no test predictions kept
    assert seen and set(seen) <= set(data.val_judge.texts)
    assert not set(seen) & (set(data.test.texts) | set(data.val_select.texts))
    assert store.predictions(job["id"]) == []
    assert job["metrics"]["accuracy"] is None
    assert latest_sensitivity(str(tiny_model_dir))["job_id"] == job["id"]


def test_map_is_deterministic(tiny_model_dir, tiny_csv) -> None:
    first = sensitivity_job(tiny_model_dir, tiny_csv)["metrics"]["sensitivity"]
    second = sensitivity_job(tiny_model_dir, tiny_csv, fresh=True)["metrics"]["sensitivity"]
    for key in ("quant", "layer_drop", "heads", "base_accuracy"):
        assert first[key] == second[key], key
    assert latest_sensitivity(str(tiny_model_dir))["quant"] == second["quant"]


def test_sqnr_layer_drop_and_order() -> None:
    ref = torch.ones(10)
    assert S.sqnr_db(ref, ref) == S.SQNR_CAP_DB
    assert S.sqnr_db(ref, ref + 0.1) == pytest.approx(20.0, abs=1e-3)  # 10 / (10 * 0.01)
    quant = [{"layer": 0, "part": "query", "acc_drop": 0.0, "sqnr_db": 40.0},
             {"layer": 1, "part": "key", "acc_drop": 0.02, "sqnr_db": 60.0},
             {"layer": None, "part": "embeddings", "acc_drop": 0.0, "sqnr_db": 30.0}]
    assert S.ranked(quant) == [(1, "key"), (None, "embeddings"), (0, "query")]


def test_a_dropped_layer_is_the_prune_surgery(tiny_model_dir) -> None:
    from engine.toolkit.checkpoints import ModelRef, load_tokenizer

    ref = ModelRef("tiny", str(tiny_model_dir), "local")
    model = load_classifier(ref).eval()
    scorer = S.Scorer(model, load_tokenizer(ref), ["a fine film", "dull"], [1, 0], 16, "cpu")
    rows = S.layer_drop_sensitivity(scorer)
    assert [r["layer"] for r in rows] == [0, 1]
    assert model.config.num_hidden_layers == 2, "the scored model itself is unchanged"


def test_the_map_can_be_cancelled(tiny_model_dir, tiny_csv) -> None:
    job_id = submit("sensitivity", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}")
    store.claim(None, job_id=job_id)
    store.request_cancel(job_id)
    assert run_claimed(job_id) == "cancelled"
    assert latest_sensitivity(str(tiny_model_dir)) is None


# ------------------------------------------------------------------------------ max_drop


def test_smallest_float_set_bisects_on_measured_drops() -> None:
    drops = {0: 0.05, 6: 0.005, 3: 0.03, 4: 0.004}  # k -> measured drop; only these probed
    k, drop, probes = AA.smallest_float_set(12, drops.__getitem__, 0.01)
    assert (k, drop) == (4, 0.004), "the answer is a measured point within the budget"
    assert [p["float_parts"] for p in probes] == [0, 6, 3, 4]
    k, drop, probes = AA.smallest_float_set(12, lambda k: 0.0, 0.01)
    assert (k, drop, len(probes)) == (0, 0.0, 1), "within budget with every part int8"


def int8_linears(model) -> int:
    return sum(isinstance(m, torch.nn.Linear) and hasattr(m.weight, "qdata")
               for m in model.modules())


def fake_drop(scorer, quantized) -> float:
    """0.1 point per int8 Linear layer (the pooler's included; the classifier stays float)."""
    return 0.001 * int8_linears(quantized)


# the seeded map's order, most sensitive first: layer 1's linears, then layer 0's, embeddings
ORDER = ([(1, p) for p in LINEARS[::-1]] + [(0, p) for p in LINEARS[::-1]]
         + [(None, "embeddings")])


def seed_map(model: str, dataset: str) -> int:
    quant = [{"layer": layer, "part": part, "acc_drop": round(0.001 * (13 - k), 6),
              "sqnr_db": 30.0 + k} for k, (layer, part) in enumerate(ORDER)]
    sens = {"split": "validation", "examples": 8, "base_accuracy": 0.5, "layers": 2,
            "parts": list(S.PARTS), "quant": quant,
            "layer_drop": [{"layer": 0, "acc_drop": 0.01}, {"layer": 1, "acc_drop": 0.03}],
            "heads": [[0.9, 0.1, 0.5, 0.3], [0.2, 0.7, 0.05, None]],
            "latency_share": [{"layer": layer, "part": part, "ms": 1.0, "share": 0.05}
                              for layer, part in ORDER],
            "dataset": dataset}
    cfg = {"type": "SensitivityConfig", "version": 1, "data": {}}
    job = store.enqueue("sensitivity", cfg, model, dataset)
    store.claim(1, job_id=job)
    store.save_results(job, {"model": model, "dataset": dataset, "sensitivity": sens}, [], [])
    store.finish(job)
    return job


def test_tight_budget_keeps_the_most_sensitive_parts_float_and_reloads(
        tiny_model_dir, tiny_csv, monkeypatch) -> None:
    dataset = f"csv:{tiny_csv}"
    mapped = seed_map(str(tiny_model_dir), dataset)
    monkeypatch.setattr(AA, "measure_drop", fake_drop)
    job = run(submit("quantize", model=str(tiny_model_dir), dataset=dataset,
                     sets=[*FAST_Q, "max_drop=0.0075"]))
    m = job["metrics"]
    # 13 int8 Linears (12 parts + pooler) lose 1.3 points; 0.75 allows 7: six parts stay float
    assert m["val_drop_all_int8"] == pytest.approx(0.013)
    assert [(p["layer"], p["part"]) for p in m["float_parts"]] == ORDER[:6]
    assert m["val_drop"] == pytest.approx(0.007) and m["val_drop"] <= m["max_drop"]
    assert m["sensitivity_job"] == mapped and m["float_size_cost_mb"] > 0
    assert "stayed float (layer 1 ffn_out" in m["accuracy_aware"]
    assert m["plain_int8_job"] is None and m["speedup_vs_parent"], "paired with its parent"
    change = read_meta(store.find_model(job["output_model"]).path)["changes"][-1]
    assert change["kind"] == "quantized" and len(change["float_modules"]) == 6
    reloaded = load_classifier(resolve(job["output_model"]))
    layer1 = reloaded.bert.encoder.layer[1]
    assert not hasattr(layer1.intermediate.dense.weight, "qdata"), "kept float"
    assert hasattr(reloaded.bert.encoder.layer[0].intermediate.dense.weight, "qdata")
    assert int8_linears(reloaded) == 7
    same_predictions_after_reload(job, tiny_csv)


def test_loose_budget_keeps_nothing_float_and_names_the_plain_run(
        tiny_model_dir, tiny_csv, monkeypatch) -> None:
    dataset = f"csv:{tiny_csv}"
    plain = run(submit("quantize", model=str(tiny_model_dir), dataset=dataset, sets=FAST_Q))
    assert "float_parts" not in plain["metrics"], "max_drop=0: off"
    monkeypatch.setattr(AA, "measure_drop", fake_drop)
    job = run(submit("quantize", model=str(tiny_model_dir), dataset=dataset,
                     sets=[*FAST_Q, "max_drop=0.5"]))
    m = job["metrics"]
    assert m["float_parts"] == [] and m["val_drop"] == pytest.approx(0.013)
    assert len(m["float_search"]) == 1 and m["float_size_cost_mb"] == 0
    # no stored map: the int8 half of it was measured in the job, on the validation split
    assert m["sensitivity_job"] is None and "measured in this job" in m["sensitivity_source"]
    assert m["plain_int8_job"] == plain["id"] and f"job {plain['id']}" in m["accuracy_aware"]
    assert int8_linears(load_classifier(resolve(job["output_model"]))) == 13


def test_a_budget_nothing_meets_is_refused(tiny_model_dir, tiny_csv, monkeypatch) -> None:
    monkeypatch.setattr(AA, "measure_drop", lambda scorer, q: 0.5)  # every k over budget
    job_id = submit("quantize", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                    sets=[*FAST_Q, "max_drop=0.01"])
    store.claim(None, job_id=job_id)
    assert run_claimed(job_id) == "failed"
    error = store.get_job(job_id).error
    assert "no int8 part fits max_drop=0.01" in error and "Traceback" not in error


@pytest.mark.parametrize("sets, words", [
    (["max_drop=1.5"], "max_drop=1.5 is not an accuracy budget"),
    (["max_drop=1"], "up to but not including 1"),
    (["max_drop=-0.1"], "max_drop=-0.1 is not an accuracy budget"),
    (["max_drop=0.01", "scheme=bf16"], "needs an int8 scheme"),
])
def test_bad_budgets_are_refused_at_submit(tiny_model_dir, tiny_csv, sets, words) -> None:
    with pytest.raises(ConfigError, match=words):
        submit("quantize", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}", sets=sets)
    assert store.list_jobs() == []


def test_bad_map_settings_are_refused_at_submit(tiny_model_dir, tiny_csv) -> None:
    for sets, words in [(["runtimes=fast"], "list eager and/or compiled"),
                        (["val_examples=-1"], "below its minimum 0")]:
        with pytest.raises(ConfigError, match=words):
            submit("sensitivity", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                   sets=sets)
    assert store.list_jobs() == []


def test_a_model_without_a_head_is_refused_at_submit(tiny_csv) -> None:
    with pytest.raises(LabError, match="sensitivity: minilm-l6 has no classification head"):
        submit("sensitivity", model="minilm-l6", dataset=f"csv:{tiny_csv}")
    assert store.list_jobs() == []


# ------------------------------------------------------------------------------ the page


def test_grid_puts_each_score_in_its_cell() -> None:
    sens = {"parts": list(S.PARTS), "layers": 2,
            "quant": [{"layer": None, "part": "embeddings", "acc_drop": 0.01, "sqnr_db": 30.0},
                      {"layer": 1, "part": "value", "acc_drop": 0.002, "sqnr_db": 45.0}],
            "latency_share": [{"layer": 0, "part": "ffn_in", "ms": 2.0, "share": 0.25}]}
    rows, parts, z = sensitivity_grid(sens, "acc_drop")
    assert rows == ["embeddings", "layer 0", "layer 1"] and parts == list(S.PARTS)
    assert z[0][0] == 1.0 and z[2][parts.index("value")] == 0.2 and z[1][1] is None
    assert sensitivity_grid(sens, "sqnr_db")[2][2][parts.index("value")] == 45.0
    assert sensitivity_grid(sens, "share")[2][1][parts.index("ffn_in")] == 25.0


def test_page_says_how_to_get_a_map() -> None:
    at = app("pages/hurts.py")
    assert any("No sensitivity map yet" in i.value for i in at.info)
    at.button(key="hurts_submit").click().run()  # map the default teacher (queued first)
    assert any("Queued a sensitivity map" in s.value for s in at.success), \
        [e.value for e in at.error]
    assert store.list_jobs(limit=1)[0].method == "sensitivity"


def test_compress_page_draws_the_new_fields() -> None:
    at = app("pages/compress.py")
    at.segmented_control(key="method").set_value("sensitivity").run()
    assert not at.exception and at.number_input(key="cfg_sensitivity_val_examples").value == 500
    at.segmented_control(key="method").set_value("quantize").run()
    assert not at.exception and at.number_input(key="cfg_quantize_max_drop").value == 0.0


def test_page_shows_the_map_and_queues_the_jobs(tiny_model_dir, tiny_csv) -> None:
    dataset = f"csv:{tiny_csv}"
    seed_map(str(tiny_model_dir), dataset)
    at = app("pages/hurts.py")
    assert at.get("plotly_chart"), "the heatmap is drawn"
    assert at.selectbox(key="hurts_layer").value == 1, "the layer whose drop costs most"
    for measure in ("sqnr_db", "share"):
        at.segmented_control(key="hurts_measure").set_value(measure).run()
        assert not at.exception and at.get("plotly_chart")
    assert at.get("page_link"), "a link to the Attention page"
    assert at.session_state["attention_models"] == [str(tiny_model_dir)]

    at.button(key="hurts_drop_layer").click().run()
    at.button(key="hurts_prune_heads").click().run()
    at.number_input(key="hurts_budget").set_value(0.25).run()
    at.button(key="hurts_quantize").click().run()
    assert len([s for s in at.success if "Queued" in s.value]) == 1  # the last run's message
    assert not at.error, [e.value for e in at.error]
    quantize, heads, layers = store.list_jobs(limit=3)
    assert (layers.method, layers.config["data"]["kind"], layers.config["data"]["layers"]) == \
        ("prune", "layers", [1])
    # layer 1's live heads by importance: 2 (0.05), 0 (0.2), 1 (0.7): the weakest half is one
    assert (heads.config["data"]["kind"], heads.config["data"]["heads"]) == ("heads", "1:2")
    assert quantize.method == "quantize" and quantize.config["data"]["max_drop"] == 0.0025
    assert {j.owner for j in (quantize, heads, layers)} == {"tester"}
    assert {j.model for j in (quantize, heads, layers)} == {str(tiny_model_dir)}
