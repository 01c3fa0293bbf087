"""Like with like in engine.reports: frames, comparisons, lineage and the frontier use rows and
ratios of one runtime (or say they do not); paired accuracy intervals; readable ticks."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from engine.reports import compare as comparing
from engine.reports import figures, files, lineage, report, stats
from engine.reports import runs as runs_mod
from engine.reports.stats import bootstrap_ci
from tests.test_results_page import CPU

# --------------------------------------------------------------------------- like with like


def lat(bs: int, p50: float, runtime: str, **extra) -> dict:
    return {"batch_size": bs, "seq_len": 64, "p50_ms": p50, "p95_ms": p50 * 1.1,
            "throughput_per_s": bs / p50 * 1000, "device": CPU, "runtime": runtime,
            "threads": 2, **extra}


def made(job: int, parent: int | None, latency: list[dict], method: str = "quantize",
         data: dict | None = None, model: str | None = None, **metrics) -> dict:
    """A run dict as runs_table returns it, with hand-made latency rows."""
    return {"id": job, "method": method, "config": {"data": data or {}},
            "model": model or (f"job:{parent}" if parent else "minilm-l6"),
            "output_model": None if method == "retime" else f"job:{job}", "parent_id": parent,
            "dataset": "rotten-tomatoes", "alias": None,
            "metrics": {"device": CPU, "accuracy": 0.85, "size_mb": 90.0, "latency": latency,
                        **metrics}}


def two_runtimes() -> list[dict]:
    """A teacher timed eager (100 ms) and compiled (80 ms); an int8 child timed compiled
    (40 ms) and eager (60 ms), paired against its parent compiled (2.1x, 1.9-2.3) and
    eager (1.6x); an unrelated distilled run timed compiled (50 ms) and eager (70 ms)."""
    teacher = made(1, None, [lat(32, 100.0, "eager"), lat(32, 80.0, "compiled")],
                   method="finetune")
    child = made(2, 1, [lat(32, 40.0, "compiled"), lat(32, 60.0, "eager")],
                 parent_runtime="compiled", speedup_vs_parent={"32": 2.1},
                 speedup_vs_parent_ci={"32": [1.9, 2.3]},
                 speedup_by_runtime={"compiled": {"32": 2.1}, "eager": {"32": 1.6}},
                 speedup_ci_by_runtime={"compiled": {"32": [1.9, 2.3]}})
    other = made(3, 9, [lat(32, 50.0, "compiled"), lat(32, 70.0, "eager")], method="distill")
    return [teacher, child, other]


def test_frame_uses_rows_and_ratios_of_one_runtime() -> None:
    teacher, child, other = two_runtimes()
    eager = runs_mod.runs_frame([teacher, child], 32, "eager").set_index("job")
    assert eager.loc[1, "p50_ms"] == 100.0 and eager.loc[2, "p50_ms"] == 60.0
    assert eager.loc[2, "speedup_vs_parent"] == 1.6, "the eager ratio, not the compiled one"
    compiled = runs_mod.runs_frame([teacher, child], 32, "compiled").set_index("job")
    assert compiled.loc[2, "p50_ms"] == 40.0 and compiled.loc[2, "speedup_vs_parent"] == 2.1
    assert compiled.loc[2, "speedup"] == "2.10x (1.90-2.30) paired, compiled"
    fastest = runs_mod.runs_frame([teacher, child], 32, runs_mod.FASTEST).set_index("job")
    assert list(fastest["runtime"]) == ["compiled", "compiled"]
    assert math.isnan(runs_mod.runs_frame([child], 32, "onnxruntime")["p50_ms"].iloc[0])
    older = made(4, 1, [lat(32, 50.0, "eager")], speedup_vs_parent={"32": 2.0})
    assert runs_mod.paired_speedup(older, 32, "eager") == (2.0, None), "an older run: eager"
    assert runs_mod.paired_speedup(older, 32, "compiled") == (None, None), "never mixed"


def test_compare_says_paired_unpaired_or_retime() -> None:
    teacher, child, other = two_runtimes()
    table, _ = comparing.compare([teacher, child, other], {}, 32, 1.0, "compiled")
    rows = table.set_index("job")
    assert rows.loc[2, "speedup_vs_first"] == 2.1 and rows.loc[2, "speedup_basis"] == "paired"
    assert rows.loc[2, "speedup"] == "2.10x (1.90-2.30) paired"
    assert rows.loc[3, "speedup_vs_first"] == pytest.approx(80.0 / 50.0), "compiled / compiled"
    assert rows.loc[3, "speedup_basis"] == "unpaired"
    eager, _ = comparing.compare([teacher, child, other], {}, 32, 1.0, "eager")
    assert eager.set_index("job").loc[3, "speedup_vs_first"] == pytest.approx(100.0 / 70.0)
    assert comparing.common_runtime([teacher, child, other], 32) == "compiled"
    # a different thread count is not like with like: no ratio at all
    odd = made(5, 9, [lat(32, 50.0, "compiled", threads=8)])
    t, _ = comparing.compare([teacher, odd], {}, 32, 1.0, "compiled")
    assert math.isnan(t["speedup_vs_first"].iloc[1]) and t["speedup_basis"].iloc[1] is None
    retime = made(6, 3, [lat(32, 50.0, "compiled")], method="retime", model="job:3",
                  data={"against": "job:1"}, parent_runtime="compiled",
                  speedup_vs_parent={"32": 1.7}, speedup_vs_parent_ci={"32": [1.6, 1.8]})
    t, _ = comparing.compare([teacher, other], {}, 32, 1.0, "compiled",
                             [teacher, child, other, retime])
    assert t["speedup_vs_first"].iloc[1] == 1.7 and t["speedup_basis"].iloc[1] == "retime"
    t, _ = comparing.compare([other, teacher], {}, 32, 1.0, "compiled",
                             [teacher, child, other, retime])
    assert t["speedup_vs_first"].iloc[1] == pytest.approx(1 / 1.7), "either order"
    text = report.headlines(table)
    assert "2.10x (1.90-2.30) paired as fast under compiled" in text[0]
    assert "unpaired (timed in different processes)" in text[1]


def test_lineage_never_multiplies_mixed_runtimes_and_prefers_a_retime() -> None:
    teacher = made(1, None, [lat(32, 100.0, "eager"), lat(32, 80.0, "compiled")],
                   method="finetune")
    small = made(2, 1, [lat(32, 50.0, "eager")], speedup_vs_parent={"32": 2.0},
                 method="distill")
    quant = made(3, 2, [lat(32, 20.0, "compiled")], parent_runtime="compiled",
                 speedup_vs_parent={"32": 1.5})
    sibling = made(4, 1, [lat(32, 90.0, "eager")], speedup_vs_parent={"32": 1.1})
    by_id = {r["id"]: r for r in (teacher, small, quant, sibling)}
    tree = lineage.family_tree(by_id, 3, 32, "eager").set_index("job")
    assert list(tree.index) == [1, 2, 3], "the selected chain, not the sibling branch"
    assert tree.loc[2, "how_measured"] == "paired (one step)"
    assert tree.loc[2, "speedup"] == "2.00x"
    assert tree.loc[3, "speedup_basis"] != "paired", "eager x compiled is not a product"
    assert math.isnan(tree.loc[3, "cumulative_speedup"]), "no eager row for job 3 either"
    both = made(3, 2, [lat(32, 20.0, "eager")], speedup_vs_parent={"32": 1.5})
    by_id[3] = both
    tree = lineage.family_tree(by_id, 3, 32, "eager").set_index("job")
    assert tree.loc[3, "cumulative_speedup"] == pytest.approx(3.0)
    assert tree.loc[3, "how_measured"] == "estimated (product of paired steps, same runtime)"
    by_id[7] = made(7, 3, [lat(32, 20.0, "eager")], method="retime", model="job:3",
                    data={"against": "job:1"}, speedup_vs_parent={"32": 2.6},
                    speedup_vs_parent_ci={"32": [2.4, 2.8]})
    tree = lineage.family_tree(by_id, 3, 32, "eager").set_index("job")
    assert tree.loc[3, "cumulative_speedup"] == 2.6 and tree.loc[3, "speedup_basis"] == "retime"
    assert tree.loc[3, "how_measured"] == "measured (retime job 7, paired)"
    assert tree.loc[3, "speedup"] == "2.60x (2.40-2.80)"
    assert list(tree.columns)[-1] == "config", "the wide text last"


def test_frontier_marks_runtimes_and_hides_unreliable_runs() -> None:
    teacher, child, other = two_runtimes()
    other["metrics"]["timing_unreliable"] = "spread 40% of the median"
    frame = runs_mod.runs_frame([teacher, child, other], 32, runs_mod.FASTEST)
    fig = figures.frontier_figure(frame, "p50_ms", "accuracy")
    plotted = {int(c[0]) for t in fig.data if t.customdata is not None for c in t.customdata}
    assert plotted == {1, 2}, "the unreliable run is off the chart by default"
    shown = figures.frontier_figure(frame, "p50_ms", "accuracy", show_unreliable=True)
    crosses = [t for t in shown.data if t.name == "unreliable timing: re-time"]
    assert len(crosses) == 1 and int(crosses[0].customdata[0][0]) == 3
    assert not any(t.name == "frontier" and 50.0 in list(t.x) for t in shown.data)
    teacher["metrics"]["latency"] = [lat(32, 100.0, "eager")]  # now eager vs compiled points
    mixed = figures.frontier_figure(runs_mod.runs_frame([teacher, child], 32, "fastest"),
                                    "p50_ms", "accuracy")
    symbols = {s for t in mixed.data if t.customdata is not None
               for s in np.atleast_1d(t.marker.symbol)}
    assert symbols == {"circle", "diamond"}, "each point marked with its runtime"
    assert {t.name for t in mixed.data} >= {"timed eager", "timed compiled"}
    child["metrics"]["latency"] = [lat(32, 40.0, "compiled")]  # an older int8 run
    assert runs_mod.default_runtime([teacher, child], 32) == runs_mod.FASTEST, \
        "no runtime common to both: each at its fastest, marked"


def test_results_open_on_the_runtime_the_starting_models_are_fastest_under() -> None:
    # every run timed both ways: one runtime for all, the starts' fastest (teacher 80 ms
    # compiled vs 100 eager, the unrelated start 50 vs 70), whatever the children do
    assert runs_mod.default_runtime(two_runtimes(), 32) == "compiled"
    teacher, child, other = two_runtimes()
    teacher["metrics"]["latency"] = [lat(32, 70.0, "eager"), lat(32, 90.0, "compiled")]
    other["metrics"]["latency"] = [lat(32, 45.0, "eager"), lat(32, 60.0, "compiled")]
    assert runs_mod.default_runtime([teacher, child, other], 32) == "eager", \
        "the child's own fastest runtime (compiled) does not pick the baseline's"
    assert runs_mod.default_runtime([teacher, child, other], 1) == "eager", "none timed"


def test_accuracy_difference_interval_is_paired() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(1000) < 0.85
    b = a.copy()
    flip = rng.choice(1000, 60, replace=False)  # b is wrong on 40 of them, right on 20 more
    b[flip[:40]] = False
    b[flip[40:]] = True
    diff, low, high = stats.difference_ci(a, b)
    d = b.astype(float) - a
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert diff == pytest.approx(d.mean())
    assert low == pytest.approx(diff - 1.96 * se, abs=0.004)
    assert high == pytest.approx(diff + 1.96 * se, abs=0.004)
    unpaired = bootstrap_ci(b)[1] - bootstrap_ci(b)[0]
    assert high - low < unpaired, "pairing removes the examples both get right or wrong"
    assert stats.difference_ci(a, a)[1:] == (0.0, 0.0)


def test_csv_names_the_runtime_of_every_latency() -> None:
    teacher, child, _ = two_runtimes()
    frame = pd.read_csv(io.StringIO(files.runs_csv([teacher, child], [32], "eager")))
    assert list(frame["runtime_batch32"]) == ["eager", "eager"]
    assert list(frame["p50_ms_batch32"]) == [100.0, 60.0]
    assert list(frame["speedup_vs_parent_compiled_batch32"].fillna(0)) == [0, 2.1]
    assert list(frame["p50_ms_compiled_batch32"]) == [80.0, 40.0]
    assert list(frame["model"]) == ["job:1", "job:2"]


def test_chart_ticks_are_readable() -> None:
    axis = figures.readable_axis([0.8021, 0.80215, 0.8022], 0.02, percent=True)
    assert axis["tickformat"] == ".1%" and axis["range"][1] - axis["range"][0] >= 0.02
    assert figures.readable_axis([0.4, 0.9], 0.05)["tickformat"] == ".1f"
    gains = figures.gains_figure(runs_mod.runs_frame(two_runtimes(), 32, "compiled").assign(
        accuracy_retained=[None, 0.999, None]))
    assert gains.layout.yaxis.tickformat != ".0%", "a 2-point range needs a decimal"
    curves = figures.curves_figure({"train_loss": [(1, 0.85588), (2, 0.8558)],
                                    "val_accuracy": [(1, 0.8021), (2, 0.8022)]})
    assert curves.layout.legend.y > 1, "the legend sits above the plot, not over an axis"
    assert curves.layout.yaxis2.tickformat == ".1%" and curves.layout.xaxis.tickformat == "d"
