"""The Results page under AppTest with 0, 1 and many runs: frontier, run details, lineage,
diagnostics, comparison and flipped examples. `seed_runs` is shared with the benchmark."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from storage import jobs as store
from tests.conftest import ROOT

CPU = "cpu (2 threads)"
LATENCY_MS = {1: 12.0, 32: 250.0}  # the teacher's median latency by batch size


def add_run(method: str, data: dict[str, Any], model: str, dataset: str, parent: int | None,
            *, accuracy: float, size_mb: float, speedup: dict[int, float] | None = None,
            device: str = CPU, meaningful: bool = True, labels: list[int] | None = None,
            preds: list[int] | None = None, extra: dict[str, Any] | None = None,
            alias: str | None = None, path: str = "/nonexistent") -> int:
    """A done job with metrics and latencies (and its parent's, paired) as the runner stores
    them, registered as model job:ID unless it is an evaluate job."""
    job = store.enqueue(method, {"type": f"{method.title()}Config", "version": 1, "data": data},
                        model, dataset, parent_id=parent, alias=alias)
    speedup = speedup or {}
    metrics = {"model": f"job:{job}", "dataset": dataset, "accuracy": accuracy,
               "macro_f1": accuracy - 0.01, "size_mb": size_mb, "params": int(size_mb * 250_000),
               "layers": 6, "heads": 72, "device": device, "seq_len": 64,
               "accuracy_meaningful": meaningful, **(extra or {})}
    rows = []
    for bs, base in LATENCY_MS.items():
        own = base / speedup.get(bs, 1.0)
        rows.append({"role": "self", "batch_size": bs, "seq_len": 64, "p50_ms": own,
                     "p95_ms": own * 1.1, "throughput_per_s": bs / own * 1000, "device": device})
        if speedup:
            rows.append({**rows[-1], "role": "parent", "p50_ms": base, "p95_ms": base * 1.1,
                         "throughput_per_s": bs / base * 1000})
    if speedup:
        metrics.update(speedup_vs_parent={str(k): v for k, v in speedup.items()},
                       size_ratio_vs_parent=90.9 / size_mb, parent_accuracy=0.85,
                       accuracy_delta_vs_parent=accuracy - 0.85, accuracy_retained=accuracy / 0.85)
    confidence = np.random.default_rng(job).uniform(0.5, 1.0, len(preds or []))
    store.save_results(job, metrics, rows, [(i, y, p, float(c)) for i, (y, p, c) in
                                            enumerate(zip(labels or [], preds or [], confidence))])
    output = None if method == "evaluate" else f"job:{job}"
    store.finish(job, output_model=output)
    if output:
        store.register_model(output, path, "job", job_id=job, alias=alias, method=method)
    return job


def seed_runs(n: int, dataset: str = "rotten-tomatoes", n_examples: int = 0,
              seed: int = 0) -> list[int]:
    """`n` done runs: a teacher, then quantize / prune / distill / evaluate jobs chained on it
    and on each other, one random-weight preset run and a few on a GPU."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_examples).tolist()

    def guesses(accuracy: float) -> tuple[float, list[int]]:
        """Predictions right about `accuracy` of the time, and their actual accuracy."""
        preds = [y if rng.random() < accuracy else 1 - y for y in labels]
        return (float(np.mean(np.equal(preds, labels))) if labels else accuracy), preds

    accuracy, preds = guesses(0.85)
    ids = [add_run("finetune", {"max_steps": 5}, "minilm-l6", dataset, None, accuracy=accuracy,
                   size_mb=90.9, alias="default", labels=labels, preds=preds)]
    recipes = [("quantize", {"scheme": "int8-dynamic"}, 2.4, 3.6),
               ("prune", {"kind": "unstructured", "amount": 0.5}, 1.0, 1.0),
               ("distill", {"student_layers": 3}, 1.9, 2.0),
               ("quantize", {"scheme": "int8-weight-only"}, 0.95, 3.6)]
    for i in range(1, n):
        if i == n - 1 and n > 3:
            ids.append(add_run("evaluate", {}, "preset:bert-base", dataset, None, accuracy=0.5,
                               size_mb=438.0, meaningful=False))
            continue
        method, data, gain, smaller = recipes[(i - 1) % len(recipes)]
        # the runner stores the method's own "why not faster" (its explain_slow hook)
        note = {"why_not_faster": "Unstructured sparsity on dense kernels: the zeros are "
                "kept in dense matrices."} if data.get("kind") == "unstructured" else {}
        parent = ids[int(rng.integers(0, len(ids)))] if i > 4 else ids[0]
        if store.get_job(parent).method == "evaluate":
            parent = ids[0]
        accuracy, preds = guesses(0.85 - rng.uniform(0, 0.06))
        gpu = i % 10 == 7
        ids.append(add_run(method, data, f"job:{parent}", dataset, parent, accuracy=accuracy,
                           size_mb=90.9 / smaller * rng.uniform(0.9, 1.1),
                           speedup={1: gain * rng.uniform(0.9, 1.1), 32: gain * 1.1},
                           device="cuda:NVIDIA H100 (sm90)" if gpu else CPU, labels=labels,
                           preds=preds, extra=note))
    return ids


def results(**state: Any) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "results.py"), default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def table_with(at: AppTest, column: str):
    """The first dataframe on the page that has `column` (AppTest keeps no dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_no_runs_says_what_to_do() -> None:
    at = results()
    assert any("No finished runs" in i.value for i in at.info)


def test_one_run() -> None:
    seed_runs(1)
    at = results()
    assert len(at.dataframe[0].value) == 1
    assert at.get("plotly_chart")


def test_a_score_only_run_is_not_a_point(tiny_csv) -> None:
    """A prune score_only job stores scores and no model, accuracy or latency: the page skips
    it instead of plotting an empty run."""
    seed_runs(1)
    job = store.enqueue("prune", {"data": {"score_only": True}}, "job:1", "rotten-tomatoes",
                        parent_id=1)
    store.save_results(job, {"model": "job:1", "dataset": "rotten-tomatoes", "layers": 6,
                             "heads": 72, "head_importance": [[0.1] * 12] * 6}, [], [])
    store.finish(job, None)
    at = results()
    assert job not in set(table_with(at, "job")["job"])
    assert at.get("plotly_chart")


def test_many_runs_filters_and_run_details(tiny_csv) -> None:
    ids = seed_runs(12, dataset=f"csv:{tiny_csv}", n_examples=16)
    at = results()
    table = at.dataframe[0].value
    assert len(table) == 12 and set(table["job"]) == set(ids)
    assert any("random-weight" in c.value for c in at.caption)

    at.multiselect(key="results_methods").set_value(["quantize"]).run()
    assert set(at.dataframe[0].value["method"]) == {"quantize"}
    at.multiselect(key="results_methods").set_value(["quantize", "prune", "distill", "finetune",
                                                      "evaluate"]).run()

    pruned = ids[2]  # unstructured prune, 1.0x: smaller but not faster
    at.selectbox(key="results_run").set_value(pruned).run()
    assert not at.exception
    assert any("Unstructured sparsity" in i.value for i in at.info)
    lineage = table_with(at, "cumulative_speedup")
    assert list(lineage["job"])[0] == ids[0], "the tree starts at the teacher"
    assert lineage.loc[lineage["job"] == pruned, "selected"].item()
    assert at.get("download_button"), "recipe (and CSV) downloads are offered"


def test_compare_two_runs_with_mcnemar_and_flips(tiny_csv) -> None:
    ids = seed_runs(6, dataset=f"csv:{tiny_csv}", n_examples=16)
    at = results(results_compare=[ids[0], ids[1]])
    compared = table_with(at, "ci_low")
    assert len(compared) == 2 and compared["ci_low"].iloc[0] <= compared["accuracy"].iloc[0]
    assert any("than chance" in md.value for md in at.markdown)
    flips = table_with(at, "confidence_b")
    assert (flips["pred_a"] != flips["pred_b"]).all()
    if (ROOT / "pages" / "attention.py").exists():  # hand an example over to the Attention page
        at.selectbox(key="results_flip_pick").set_value(1).run()
        at.button(key="results_open_attention").click().run()
        assert at.session_state["attention_sentence"] == flips["text"].iloc[1]
        assert at.session_state["attention_models"] == [f"job:{ids[0]}", f"job:{ids[1]}"]


@pytest.mark.parametrize("x", ["p95_ms", "size_mb", "params"])
def test_other_axes_and_references(x: str) -> None:
    seed_runs(5)
    at = results(results_x=x, results_y="macro_f1", results_references=True)
    assert not at.exception
    assert len(table_with(at, "hardware")) == 4


def test_runtime_choice_and_unreliable_runs(tiny_csv) -> None:
    ids = seed_runs(6, dataset=f"csv:{tiny_csv}", n_examples=16)
    flagged = add_run("quantize", {"scheme": "int8-dynamic"}, f"job:{ids[0]}",
                      f"csv:{tiny_csv}", ids[0], accuracy=0.84, size_mb=30.0,
                      speedup={1: 2.0, 32: 2.0}, extra={"timing_unreliable": "p95 20x p50"})
    at = results()
    assert at.selectbox(key="results_runtime").value == "eager", "every run was timed eager"
    assert set(table_with(at, "runtime")["runtime"].dropna()) == {"eager"}
    assert any("1 with unreliable timing hidden" in c.value for c in at.caption)
    at.toggle(key="results_unreliable").set_value(True).run()
    assert any("shown as crosses" in c.value for c in at.caption)
    at.selectbox(key="results_run").set_value(flagged).run()
    assert any("Unreliable timing" in w.value for w in at.warning)
    at.selectbox(key="results_runtime").set_value("fastest").run()
    assert not at.exception


def test_lineage_shows_the_selected_chain() -> None:
    ids = seed_runs(4)  # a teacher and three children of it
    at = results(results_run=ids[1])
    lineage = table_with(at, "how_measured")
    assert list(lineage["job"]) == [ids[0], ids[1]], "siblings are left out"
    assert lineage["how_measured"].iloc[1] == "paired (one step)"


def test_compare_flips_for_every_pair_and_the_difference_interval(tiny_csv) -> None:
    ids = seed_runs(6, dataset=f"csv:{tiny_csv}", n_examples=16)
    at = results(results_compare=[ids[0], ids[1], ids[3]])
    compared = table_with(at, "delta_ci_low_pts")
    later = compared.iloc[1:]
    assert (later["delta_ci_low_pts"] <= later["accuracy_delta_pts"] + 1e-9).all()
    assert (later["accuracy_delta_pts"] <= later["delta_ci_high_pts"] + 1e-9).all()
    assert compared["speedup"].iloc[1].endswith("paired"), "a child against its parent"
    pairs = at.selectbox(key="results_flip_pair").options
    assert len(pairs) == 3, "every pair of the three runs"
    at.selectbox(key="results_flip_pair").set_value((ids[1], ids[3])).run()
    assert not at.exception
    assert any(f"job {ids[1]} and job {ids[3]} predict" in md.value for md in at.markdown)


def test_a_small_gain_says_what_limits_it() -> None:
    """13.11 on the page: a 1.12x head-pruned model opened from Results says what bounds it."""
    teacher = add_run("finetune", {}, "minilm-l6", "rotten-tomatoes", None, accuracy=0.85,
                      size_mb=90.9, alias="default")
    pruned = add_run("prune", {"kind": "heads", "amount": 0.4}, f"job:{teacher}",
                     "rotten-tomatoes", teacher, accuracy=0.84, size_mb=80.0,
                     speedup={1: 1.08, 32: 1.12},
                     extra={"heads": 43, "ffn_share_of_compute": 0.62})
    at = results(results_run=pruned)
    notes = [i.value for i in at.info if "What limits the gain" in i.value]
    assert len(notes) == 1 and "40% of the heads are removed" in notes[0], \
        [i.value for i in at.info]
    assert "1.12x at best" in notes[0]
