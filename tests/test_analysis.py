"""engine.reports (runs, stats, compare, lineage, diagnosis, files, report) and storage.queries
on hand-made points, known tables and a recipe replayed on a tiny model (like with like, one
runtime per figure: test_analysis_runtimes.py)."""

from __future__ import annotations

import io
import math
import re
import zipfile
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import yaml

from engine.reports import diagnosis, files, lineage, report, stats
from engine.reports.runs import batch_sizes, job_from_selection, pareto_mask
from engine.reports.stats import bootstrap_ci, mcnemar
from storage import jobs as store
from storage import queries
from tests.conftest import ROOT
from tests.test_results_page import CPU, add_run, seed_runs

# --------------------------------------------------------------------------- Pareto


def test_pareto_on_hand_made_points() -> None:
    cost = [1, 2, 3, 2, 4, 1, 5, np.nan, 0.5]
    value = [0.5, 0.7, 0.7, 0.6, 0.9, 0.5, 0.85, 0.99, np.nan]
    assert pareto_mask(cost, value).tolist() == [
        True,   # cheapest (tied with its identical twin)
        True,   # better for a little more
        False,  # equal accuracy at a higher cost: dominated by (2, 0.7)
        False,  # same cost, lower accuracy
        True,   # most accurate
        True,   # an identical point: neither dominates the other
        False,  # slower and less accurate than (4, 0.9)
        False,  # missing cost: never on the frontier
        False,  # missing accuracy
    ]


def test_pareto_edge_cases() -> None:
    assert pareto_mask([], []).tolist() == []
    assert pareto_mask([3.0], [0.1]).tolist() == [True]
    # equal accuracy everywhere: only the cheapest run(s) remain
    assert pareto_mask([2, 1, 1, 3], [0.8, 0.8, 0.8, 0.8]).tolist() == [False, True, True, False]
    # equal cost everywhere: only the most accurate
    assert pareto_mask([1, 1, 1], [0.7, 0.9, 0.8]).tolist() == [False, True, False]


# --------------------------------------------------------------------------- statistics


def test_bootstrap_interval_matches_the_binomial_spread() -> None:
    correct = np.r_[np.ones(850), np.zeros(150)]
    low, high = bootstrap_ci(correct)
    se = math.sqrt(0.85 * 0.15 / 1000)  # normal approximation: 0.85 +- 1.96 se
    assert low == pytest.approx(0.85 - 1.96 * se, abs=0.005)
    assert high == pytest.approx(0.85 + 1.96 * se, abs=0.005)
    assert bootstrap_ci(correct) == (low, high), "a fixed seed: the same interval every time"
    assert bootstrap_ci(np.ones(40)) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_mcnemar_on_known_tables() -> None:
    # 10 examples only A gets right, 2 only B: exact p = 2 * P(X <= 2 | n=12) = 158/4096
    a = [True] * 10 + [False] * 2 + [True] * 30 + [False] * 8
    b = [False] * 10 + [True] * 2 + [True] * 30 + [False] * 8
    test = mcnemar(a, b)
    assert (test.only_a, test.only_b) == (10, 2)
    assert test.p_value == pytest.approx(158 / 4096)
    assert test.significant and "is larger than chance" in test.sentence("A", "B")
    balanced = mcnemar([True] * 5 + [False] * 5, [False] * 5 + [True] * 5)
    assert balanced.p_value == pytest.approx(1.0) and not balanced.significant
    assert "is not larger than chance" in balanced.sentence("A", "B")
    assert mcnemar([True, False], [True, False]).p_value == 1.0, "no disagreement, no evidence"


def test_cost_per_million() -> None:
    assert stats.cost_per_million(100.0, 3.6) == pytest.approx(10.0)
    assert stats.cost_per_million(None, 3.6) is None


def test_flips_lists_changed_predictions_most_confident_mistake_first() -> None:
    a = {"idx": [0, 1, 2, 3], "label": [1, 0, 1, 0], "pred": [1, 1, 0, 0],
         "confidence": [0.9, 0.6, 0.8, 0.7]}
    b = {"idx": [0, 1, 2, 3], "label": [1, 0, 1, 0], "pred": [0, 0, 1, 0],
         "confidence": [0.95, 0.7, 0.6, 0.9]}
    out = stats.flips(a, b, texts=["t0", "t1", "t2", "t3"], label_names=["neg", "pos"])
    assert out["idx"].tolist() == [0, 2, 1], "sorted by the wrong answer's confidence"
    assert out["right"].tolist() == ["A", "B", "B"]
    assert out.loc[0, ["text", "label", "pred_a", "pred_b"]].tolist() == ["t0", "pos", "pos",
                                                                          "neg"]


def test_job_from_selection() -> None:
    event = {"selection": {"points": [{"x": 1, "y": 2, "customdata": [7, "job 7"]}]}}
    assert job_from_selection(event) == 7
    assert job_from_selection({"selection": {"points": []}}) is None
    assert job_from_selection(None) is None
    reference = {"selection": {"points": [{"customdata": ["a Xeon", "a paper"]}, {"x": 2},
                                          {"customdata": [9]}]}}
    assert job_from_selection(reference) == 9, "stars and lines are skipped"


# --------------------------------------------------------------------------- lineage, diagnostics


def runs_by_id() -> dict[int, dict]:
    return {r["id"]: r for r in queries.runs_table()}


def test_family_tree_multiplies_paired_speedups() -> None:
    teacher = add_run("finetune", {}, "minilm-l6", "rotten-tomatoes", None, accuracy=0.85,
                      size_mb=90.9, alias="default")
    small = add_run("distill", {"student_layers": 3}, "default", "rotten-tomatoes", teacher,
                    accuracy=0.83, size_mb=45.45, speedup={1: 2.0, 32: 2.0})
    quant = add_run("quantize", {"scheme": "int8-dynamic"}, f"job:{small}", "rotten-tomatoes",
                    small, accuracy=0.82, size_mb=11.3625, speedup={1: 1.5, 32: 1.5})
    check = add_run("evaluate", {}, f"job:{quant}", "rotten-tomatoes", quant, accuracy=0.82,
                    size_mb=11.3625)
    tree = lineage.family_tree(runs_by_id(), quant, 32).set_index("job")
    assert list(tree.index) == [teacher, small, quant, check]
    assert tree.loc[quant, "cumulative_speedup"] == pytest.approx(3.0)
    assert tree.loc[quant, "speedup_basis"] == "paired"
    assert tree.loc[quant, "size_ratio"] == pytest.approx(8.0)
    assert tree.loc[quant, "accuracy_vs_root"] == pytest.approx(-0.03)
    assert tree.loc[check, "speedup_basis"] == "unpaired", "no pairing: ratio of medians"
    assert tree.loc[quant, "selected"] and not tree.loc[small, "selected"]
    assert [r["id"] for r in lineage.lineage(runs_by_id(), check)] == [teacher, small, quant,
                                                                         check]


def run(method: str, data: dict, speedup: dict[str, float], device: str = CPU,
        **metrics) -> dict:
    return {"id": 2, "method": method, "config": {"data": data}, "model": "job:1",
            "output_model": "job:2", "parent_id": 1,
            "metrics": {"device": device, "speedup_vs_parent": speedup,
                        "size_ratio_vs_parent": 2.0, **metrics}}


def test_why_not_faster_names_the_causes() -> None:
    """The method's own note (stored by the runner from its hook) plus causes that hold for
    any method; the report never reads a method's or a scheme's name."""
    assert diagnosis.why_not_faster(run("quantize", {"scheme": "int8-dynamic"},
                                        {"1": 2.0, "32": 2.5})) == [], "faster: nothing to say"
    sparse = diagnosis.why_not_faster(run(
        "prune", {"kind": "unstructured"}, {"32": 1.0}, sparsity=0.5,
        why_not_faster="Unstructured sparsity on dense kernels: zeros cost the same."))
    assert any("Unstructured sparsity on dense kernels" in n for n in sparse)
    tiny = diagnosis.why_not_faster(run("quantize", {"scheme": "fp16"}, {"1": 1.0, "32": 1.05},
                                        device="cuda:NVIDIA H100 (sm90)", parent_latency=[
                                            {"batch_size": 1, "p50_ms": 2.0},
                                            {"batch_size": 32, "p50_ms": 3.5}]))
    assert any("parent takes only 2.0 ms" in n for n in tiny)
    overhead = diagnosis.why_not_faster(run("distill", {}, {"1": 1.02, "32": 1.8}))
    assert any("launch overhead dominates" in n for n in overhead)
    own = diagnosis.why_not_faster(run("quantize", {"scheme": "bf16"}, {"1": 1.0, "32": 1.5},
                                       why_not_faster="The method says why."))
    assert own[0] == "The method says why.", "the method's own note comes first"
    assert not any("bf16" in n for n in own) and "launch overhead" in own[1]
    busy = diagnosis.why_not_faster(run("distill", {}, {"32": 1.0}, timing_warning="load 7.5",
                                        timing_unreliable="spread 40% of the median"))
    assert any("busy" in n and "load 7.5" in n for n in busy)
    assert any("unreliable" in n and "re-time" in n for n in busy)
    assert "no known cause" in diagnosis.why_not_faster(run("distill", {}, {"32": 1.0}))[0]


def test_why_not_faster_reads_no_method_or_scheme_names() -> None:
    """The same metrics under any method name or config give the same notes: the method's
    knowledge arrives only through its stored note."""
    for method, data in [("quantize", {"scheme": "int8-weight-only"}),
                         ("prune", {"kind": "unstructured"}), ("lowrank", {"rank": 0.5})]:
        notes = diagnosis.why_not_faster(run(method, data, {"32": 0.95}))
        assert len(notes) == 1 and "no known cause" in notes[0]
    source = (ROOT / "engine" / "reports" / "diagnosis.py").read_text()
    for name in ("int8", "unstructured", "fp16", "prune", "quantize", "distill", "scheme"):
        assert f'"{name}' not in source, name
    assert diagnosis.NOT_FASTER == pytest.approx(1.1)


def test_a_small_gain_says_what_limits_it() -> None:
    """13.11: a 1.12x head-pruned model and a 1.3x student say what bounds their gain, from
    the two shapes; a large gain, or the parent's own shape, gets nothing."""
    parent = {"metrics": {"layers": 6, "heads": 72}}
    pruned = run("prune", {}, {"1": 1.05, "32": 1.12}, layers=6, heads=43, seq_len=64,
                 ffn_share_of_compute=0.62)
    pruned["metrics"]["size_ratio_vs_parent"] = 1.0  # nothing for why_not_faster to explain
    (note,) = diagnosis.what_limits_the_gain(pruned, parent)
    assert "40% of the heads are removed" in note and "62% of the arithmetic at 64" in note
    assert f"about {1 / (1 - (1 - 43 / 72) * 0.38):.2f}x" in note and "1.12x" in note
    student = run("distill", {}, {"1": 1.3, "32": 1.25}, layers=3, heads=36)
    student["metrics"]["size_ratio_vs_parent"] = 1.0
    (note,) = diagnosis.what_limits_the_gain(student, parent)
    assert "keeps 3 of its parent's 6 encoder layers" in note and "at most 2.00x" in note
    assert "heads are removed" not in note, "a dropped layer's heads are not removed heads"
    assert diagnosis.what_limits_the_gain(run("distill", {}, {"32": 1.9}, layers=3, heads=36),
                                          parent) == []
    assert diagnosis.what_limits_the_gain(student, None) == []
    assert diagnosis.what_limits_the_gain(run("prune", {}, {"32": 1.2}, layers=6, heads=72),
                                          parent) == [], "the same shape: nothing to say"


# --------------------------------------------------------------------------- storage, exports


def test_runs_table_matches_the_json_contract(tiny_csv) -> None:
    ids = seed_runs(6, dataset=f"csv:{tiny_csv}", n_examples=8)
    table = queries.runs_table()
    assert [r["id"] for r in table] == ids
    for row in table:
        full = store.job_as_dict(store.get_job(row["id"]))
        assert row["metrics"] == full["metrics"]
        assert {k: row[k] for k in ("method", "config", "model", "dataset", "parent_id",
                                    "output_model")} == {k: full[k] for k in row if k in (
            "method", "config", "model", "dataset", "parent_id", "output_model")}
    preds = queries.prediction_arrays([ids[0]])[ids[0]]
    stored = store.predictions(ids[0])
    assert preds["pred"] == [p.pred for p in stored] and preds["idx"] == list(range(8))
    assert queries.runs_version()[0] == 6


def test_csv_has_one_row_per_run() -> None:
    seed_runs(9)
    runs = queries.runs_table()
    frame = pd.read_csv(io.StringIO(files.runs_csv(runs, batch_sizes(runs))))
    assert len(frame) == 9 and frame["job"].is_unique
    assert {"p50_ms_batch1", "p50_ms_batch32", "speedup_vs_parent_batch32"} <= set(frame.columns)


class RemoteRefs(HTMLParser):
    """Collects every URL an HTML document would load or link to (script bodies are data to
    the parser, so strings inside the inlined plotly.js are not counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.remote: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for name, value in attrs:
            if name in ("src", "href", "data", "action", "poster") and value and \
                    re.match(r"^\s*(https?:)?//", value):
                self.remote.append(f"<{tag} {name}={value}>")
            if name == "style" and value and "url(" in value:
                self.remote.append(value)


def test_html_report_is_self_contained(tiny_csv) -> None:
    ids = seed_runs(4, dataset=f"csv:{tiny_csv}", n_examples=16)
    runs = runs_by_id()
    chosen = [runs[ids[0]], runs[ids[1]], runs[ids[2]]]
    doc = report.html_report(chosen, queries.prediction_arrays(ids[:3]), 32, 2.0)
    parser = RemoteRefs()
    parser.feed(doc)
    assert parser.remote == []
    assert "<script src" not in doc and "url(http" not in doc and "@import" not in doc
    outside_scripts = re.sub(r"<script.*?</script>", "", doc, flags=re.S)
    assert "http" not in outside_scripts
    assert doc.count("plotly.js v") >= 1 and doc.count('class="plotly-graph-div"') == 3
    assert "McNemar" in doc and "per million" in doc


def test_model_archive_loads_with_from_pretrained(tiny_model_dir, tmp_path) -> None:
    from transformers import AutoModelForSequenceClassification

    data = files.model_archive(tiny_model_dir, "job:3")
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path)
    folder = tmp_path / "job-3"
    assert "from_pretrained" in (folder / "README_LAB.txt").read_text()
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert model.config.num_hidden_layers == 2


def test_recipe_round_trips_on_a_tiny_model(tiny_model_dir, tiny_csv, tmp_path) -> None:
    """Stored chain -> recipe YAML -> `python -m engine run` on a tiny model -> same configs.
    The stored chain is written as the runner would (real configs, made-up figures), so that
    only the replay pays for training."""
    from engine.cli import main
    from engine.submit import build_config

    dataset = f"csv:{tiny_csv}"
    steps = [("finetune", ["max_steps=2", "batch_size=8", "eval_every=2", "max_length=16"]),
             ("evaluate", ["max_length=16", "batch_sizes=[2]", "latency_runs=2"])]
    old, parent = [], None
    for method, sets in steps:
        job = store.enqueue(method, build_config(method, sets).to_json(),
                            f"job:{parent}" if parent else str(tiny_model_dir), dataset,
                            parent_id=parent)
        store.save_results(job, {"model": f"job:{job}", "dataset": dataset}, [], [])
        store.finish(job, output_model=f"job:{job}" if method == "finetune" else None)
        old.append(store.get_job(job))
        parent = job
    path = tmp_path / "recipe.yaml"
    path.write_text(files.recipe_yaml(runs_by_id(), old[-1].id))
    recipe = yaml.safe_load(path.read_text())
    assert recipe["model"] == str(tiny_model_dir) and len(recipe["steps"]) == 2

    assert main(["run", str(path), "--wait", "--json"]) == 0
    replayed = sorted((j for j in store.list_jobs() if j.id > old[-1].id), key=lambda j: j.id)
    assert [(j.method, j.config) for j in replayed] == [(j.method, j.config) for j in old], \
        "the same chain of configs"
    assert all(j.status == "done" for j in replayed)
    assert replayed[1].parent_id == replayed[0].id, "chained like the original"


def test_recipe_starts_from_the_default_teacher() -> None:
    teacher = add_run("finetune", {"max_steps": 5}, "minilm-l6", "rotten-tomatoes", None,
                      accuracy=0.85, size_mb=90.9, alias="default")
    child = add_run("quantize", {"scheme": "int8-dynamic"}, "default", "rotten-tomatoes",
                    teacher, accuracy=0.84, size_mb=30.0, speedup={32: 2.0})
    assert files.recipe(runs_by_id(), child) == {
        "model": "default", "dataset": "rotten-tomatoes",
        "steps": [{"method": "quantize", "config": {"scheme": "int8-dynamic"}}]}
    assert files.recipe(runs_by_id(), teacher)["model"] == "minilm-l6"
