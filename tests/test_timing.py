"""Timing: `measure` on scripted models and a fake clock, the paired interval, like-with-like
ratios, the trust flags, and the retime and seqlen jobs on a tiny BERT."""

from __future__ import annotations

import numpy as np
import pytest

from engine.submit import submit
from engine.toolkit import paired as P
from engine.toolkit import timing as T
from engine.toolkit import timing_trust as TT
from engine.worker import run_claimed
from storage import jobs as store


class Clock:
    """A fake clock in seconds: models advance it by their scripted durations."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A model whose n-th call takes script[n] seconds on `clock`; calls are logged."""

    def __init__(self, name: str, script: list[float], clock: Clock, log: list[str]):
        self.name, self.script, self.clock, self.log = name, list(script), clock, log

    def __call__(self, **inputs) -> None:
        self.log.append(self.name)
        self.clock.now += self.script.pop(0)


class Tok:
    """Tokenizer stand-in: fixed_batch only needs a mapping with .to(device)."""

    class Enc(dict):
        def to(self, device):
            return self

    def __call__(self, texts, **kw):
        return self.Enc(input_ids=texts)


def scripted(scripts: dict[str, list[float]]):
    clock, log = Clock(), []
    models = {n: T.Timed(Scripted(n, s, clock, log), "cpu") for n, s in scripts.items()}
    return models, clock, log


def test_measure_excludes_warmup_alternates_the_order_and_summarizes_right() -> None:
    warm_a, warm_b = [9.0, 8.0], [7.0, 6.0]  # slow warm-up calls must not count
    a = [0.010, 0.012, 0.011, 0.030, 0.009, 0.010, 0.013, 0.011]
    b = [0.020, 0.025, 0.021, 0.022, 0.060, 0.019, 0.020, 0.024]
    models, clock, log = scripted({"A": warm_a + a, "B": warm_b + b})
    lat = T.measure(models, Tok(), ["x"], [4], 16, warmup=2, runs=len(a), clock=clock)
    # rounds alternate: A B, B A, A B, ...
    rounds = [log[i:i + 2] for i in range(0, len(log), 2)]
    assert rounds == [["A", "B"] if i % 2 == 0 else ["B", "A"] for i in range(2 + len(a))]
    (ra,), (rb,) = lat["A"], lat["B"]
    assert ra["samples_ms"] == pytest.approx([x * 1000 for x in a])
    assert rb["samples_ms"] == pytest.approx([x * 1000 for x in b])
    ms = np.asarray(a) * 1000
    assert ra["p50_ms"] == pytest.approx(np.median(ms))
    assert ra["p95_ms"] == pytest.approx(np.percentile(ms, 95))
    assert ra["iqr_ms"] == pytest.approx(np.percentile(ms, 75) - np.percentile(ms, 25))
    assert ra["runs"] == len(a) and ra["batch_size"] == 4 and ra["seq_len"] == 16
    assert ra["throughput_per_s"] == pytest.approx(4 / np.median(ms) * 1000)
    assert models["A"].first_call_s[4] == pytest.approx(9.0), "first call recorded apart"
    rows = T.latency_rows({"A": T.Timed(None, "cpu", role="self"),
                           "B": T.Timed(None, "cpu", role="parent")}, lat)
    assert {r["role"] for r in rows} == {"self", "parent"}
    assert all(set(r) == {"role", *T.LATENCY_KEYS} for r in rows), "no samples stored"


def test_measure_goes_on_until_the_median_is_stable_within_its_cap() -> None:
    steady = [0.010] * 200
    models, clock, log = scripted({"A": steady, "B": steady})
    lat = T.measure(models, Tok(), ["x"], [1], 8, warmup=0, runs=30, max_runs=100, clock=clock)
    assert lat["A"][0]["runs"] == 40, "30 runs, one look 10 runs later: stable, stop"
    drifting = list(np.linspace(0.010, 0.050, 200))
    models, clock, log = scripted({"A": drifting, "B": steady})
    lat = T.measure(models, Tok(), ["x"], [1], 8, warmup=0, runs=30, max_runs=75, clock=clock)
    assert lat["A"][0]["runs"] == 75, "never stable: stops at the cap"


def test_paired_interval_contains_the_true_ratio_under_shared_load() -> None:
    """Scripted rounds: a load factor common to both models of a round (drift), plus their
    own noise; the true speedup is 3."""
    rng = np.random.default_rng(1)
    n = 40
    load = np.exp(rng.normal(0, 0.3, n))
    own = 10 * load * np.exp(rng.normal(0, 0.05, n))
    parent = 30 * load * np.exp(rng.normal(0, 0.05, n))
    lo, hi = P.paired_ci(list(own), list(parent))
    assert lo < 3 < hi
    assert lo <= np.median(parent) / np.median(own) <= hi
    assert hi - lo < 0.6, "pairing removes the shared load from the interval"
    assert P.paired_ci(list(own), list(parent)) == (lo, hi), "seeded"


def _row(bs, runtime, p50, samples=None, threads=2, seq=64):
    return {"batch_size": bs, "seq_len": seq, "runtime": runtime, "p50_ms": p50,
            "p95_ms": p50 * 1.1, "iqr_ms": p50 * 0.05, "runs": 30, "threads": threads,
            "device": "cpu", "throughput_per_s": bs / p50 * 1000,
            "samples_ms": samples or [p50] * 30}


def test_speed_metrics_takes_the_same_runtime_parent_row() -> None:
    roles = {"self": [_row(1, "eager", 10.0), _row(1, "compiled", 5.0),
                      _row(32, "eager", 100.0), _row(32, "compiled", 40.0)],
             "parent": [_row(1, "eager", 30.0), _row(1, "compiled", 20.0),
                        _row(32, "eager", 300.0), _row(32, "compiled", 200.0),
                        _row(1, "compiled", 1.0, threads=8)]}  # another thread count: ignored
    m = P.speed_metrics(roles, "compiled")
    assert m["parent_runtime"] == "compiled"
    assert m["speedup_vs_parent"] == {"1": 4.0, "32": 5.0}, "compiled against compiled"
    assert m["speedup_by_runtime"] == {"eager": {"1": 3.0, "32": 3.0},
                                       "compiled": {"1": 4.0, "32": 5.0}}
    assert m["speedup_vs_parent_ci"] == {"1": [4.0, 4.0], "32": [5.0, 5.0]}
    assert m["speedup_ci_by_runtime"]["eager"] == {"1": [3.0, 3.0], "32": [3.0, 3.0]}
    assert m["compile_gain_parent"] == {"1": 1.5, "32": 1.5}
    assert m["compile_gain"] == {"1": 2.0, "32": 2.5}
    assert m["speedup_pairing"] == "paired" and "compiled" in m["speed_summary"]
    eager = P.speed_metrics(roles, "eager")
    assert eager["speedup_vs_parent"] == {"1": 3.0, "32": 3.0}
    alone = P.speed_metrics({"self": roles["self"]}, "eager")
    assert "speedup_vs_parent" not in alone and alone["compile_gain"] == {"1": 2.0, "32": 2.5}


def test_spread_and_drift_flags() -> None:
    calm = [{**_row(1, "eager", 10.0), "role": "parent"}]
    assert TT.spread_problems(calm) == [] and TT.unreliable_reason([]) is None
    wide = [{**_row(32, "compiled", 25.0), "iqr_ms": 12.0, "role": "parent"}]
    tail = [{**_row(1, "compiled", 25.0), "p95_ms": 497.0, "role": "self"}]
    assert "spread was wide" in TT.spread_problems(wide)[0]
    assert "heavy tail" in TT.spread_problems(tail)[0]
    earlier = [_row(32, "compiled", p) for p in (30.4, 31.0, 29.8)]
    assert TT.drift_problems([_row(32, "compiled", 31.5)], earlier) == []
    late = TT.drift_problems([_row(32, "compiled", 462.6)], earlier)
    assert "462.6 ms" in late[0] and "3 earlier" in late[0]
    assert TT.drift_problems([_row(32, "eager", 462.6)], earlier) == [], "another runtime"
    assert TT.unreliable_reason(late).startswith("unreliable: re-time — ")


def test_timed_models_pairs_every_runtime(monkeypatch) -> None:
    monkeypatch.setattr(T, "compile_for_timing", lambda model, device="cpu": ("compiled", model))
    timed = T.timed_models("own", "cpu", ["compiled", "eager"], "par", "cpu")
    assert {n: (t.role, t.runtime) for n, t in timed.items()} == {
        "self:compiled": ("self", "compiled"), "self:eager": ("self", "eager"),
        "parent:compiled": ("parent", "compiled"), "parent:eager": ("parent", "eager")}
    assert timed["parent:compiled"].model == ("compiled", "par")
    assert set(T.timed_models("own", "cpu", ["eager"], None, "cpu")) == {"self:eager"}
    monkeypatch.setenv("LAB_TIMING_RUNTIMES", "eager")
    assert T.timing_runtimes("compiled", ["eager", "compiled"]) == ["compiled", "eager"]
    assert T.timing_runtimes("eager", ["eager", "compiled"]) == ["eager"]
    monkeypatch.setenv("LAB_TIMING_RUNTIMES", "eager,compiled")
    assert T.timing_runtimes("eager", ["eager", "compiled"]) == ["eager", "compiled"]


def test_compiled_cpu_timing_runs_matmul_attention_on_a_copy(tiny_model_dir) -> None:
    """On the CPU the compiled graph is of a copy with transformers' eager (matmul) attention,
    faster there than SDPA's opaque kernel; the module itself, also timed eager and evaluated,
    keeps SDPA. Same logits on a padded batch, also with heads pruned unevenly."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from engine.methods.prune.surgery import remove_heads
    from tests.conftest import NEGATIVE, POSITIVE

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        tiny_model_dir, attn_implementation="sdpa").eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    batch = dict(tok(POSITIVE[:3] + NEGATIVE[:3], padding=True, return_tensors="pt"))
    assert batch["attention_mask"].min() == 0, "the batch must have padding"
    for label in ("as loaded", "heads pruned"):
        compiled = T.compile_for_timing(model, "cpu")
        twin = compiled._orig_mod
        assert twin is not model and twin.config._attn_implementation == "eager", label
        assert model.config._attn_implementation == "sdpa", label
        with torch.inference_mode():
            ref, out = model(**batch).logits, compiled(**batch).logits
        assert torch.allclose(out, ref, atol=1e-4), label
        if label == "as loaded":
            remove_heads(model, {0: [0], 1: [0, 1]})
    assert T.matmul_attention(twin) is twin, "already eager: nothing to copy"


# ------------------------------------------------------------------------ jobs on a tiny BERT

QUICK = ["max_length=16", "batch_sizes=[1, 4]", "warmup=1", "latency_runs=5",
         "latency_max_runs=0"]


def run(job_id: int) -> dict:
    assert store.claim(None, job_id=job_id) is not None
    run_claimed(job_id)
    return store.job_as_dict(store.get_job(job_id))


def test_evaluate_times_eager_and_compiled_and_flags_a_departing_timing(
        tiny_model_dir, tiny_csv, monkeypatch) -> None:
    monkeypatch.setattr(T, "compile_for_timing", lambda model, device="cpu": model)
    monkeypatch.setenv("LAB_TIMING_RUNTIMES", "eager,compiled")
    sets = QUICK + ["test_limit=4"]
    first = run(submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                       sets=sets))
    assert first["status"] == "done", first["error"]
    m = first["metrics"]
    assert sorted((r["runtime"], r["batch_size"]) for r in m["latency"]) == [
        ("compiled", 1), ("compiled", 4), ("eager", 1), ("eager", 4)]
    assert all(r["runs"] == 5 and r["iqr_ms"] is not None for r in m["latency"])
    assert m["compile_gain"].keys() == {"1", "4"} and m["runtimes_timed"] == ["eager",
                                                                             "compiled"]
    assert "speedup_vs_parent" not in m
    assert "earlier" not in m.get("timing_unreliable", ""), "no earlier timing to depart from"
    # the model's stored timing, as if it had run 50x faster before: this run departs from it
    rows = [{**r, "role": "self", "p50_ms": r["p50_ms"] / 50, "iqr_ms": 0.0}
            for r in m["latency"]]
    store.save_results(first["id"], {"model": first["model"], "dataset": first["dataset"]},
                       rows, [])
    again = run(submit("evaluate", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                       sets=sets, fresh=True))  # identical work: run it again, not reused
    assert again["status"] == "done", again["error"]
    flag = again["metrics"]["timing_unreliable"]
    assert flag.startswith("unreliable: re-time — ") and "earlier timing" in flag


def test_retime_pairs_two_stored_models(tiny_model_dir, tiny_csv) -> None:
    ft = run(submit("finetune", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                    sets=["max_steps=2", "batch_size=8", "eval_every=2", "max_length=16"]))
    assert ft["status"] == "done", ft["error"]
    job = run(submit("retime", model=ft["output_model"], dataset=f"csv:{tiny_csv}",
                     sets=QUICK + [f"against={tiny_model_dir}"]))
    assert job["status"] == "done", job["error"]
    assert job["output_model"] is None
    m = job["metrics"]
    assert m["paired_with"] == str(tiny_model_dir) and m["speedup_pairing"] == "paired"
    assert m["accuracy"] is None
    assert {(r["batch_size"], r["runtime"]) for r in m["latency"]} == {(1, "eager"),
                                                                       (4, "eager")}
    assert len(m["parent_latency"]) == 2
    for bs in ("1", "4"):
        own = next(r for r in m["latency"] if str(r["batch_size"]) == bs)
        par = next(r for r in m["parent_latency"] if str(r["batch_size"]) == bs)
        assert m["speedup_vs_parent"][bs] == pytest.approx(par["p50_ms"] / own["p50_ms"],
                                                           abs=1e-3)
        lo, hi = m["speedup_vs_parent_ci"][bs]
        assert lo <= m["speedup_vs_parent"][bs] <= hi
    assert m["speedup_by_runtime"] == {"eager": m["speedup_vs_parent"]}


def test_retime_needs_a_model_to_time_against(tiny_model_dir, tiny_csv) -> None:
    from engine.toolkit.config import LabError

    with pytest.raises(LabError, match="against"):
        submit("retime", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
               sets=["against="])
    with pytest.raises(LabError, match="against"):  # the default, the teacher, is not built
        submit("retime", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
               sets=["against=job:99"])


def test_seqlen_sweep_rows_and_attention_split(tiny_model_dir, tiny_csv) -> None:
    job = run(submit("seqlen", model=str(tiny_model_dir), dataset=f"csv:{tiny_csv}",
                     sets=["lengths=16,32", "batch_sizes=[1, 2]", "warmup=1",
                           "latency_runs=4", "latency_max_runs=0",
                           f"against={tiny_model_dir}"]))
    assert job["status"] == "done", job["error"]
    m = job["metrics"]
    assert sorted({(r["seq_len"], r["batch_size"]) for r in m["latency"]}) == [
        (16, 1), (16, 2), (32, 1), (32, 2)]
    sweep = m["seqlen_sweep"]
    assert len(sweep) == 2 * 2 * 2, "role x length x batch size (eager only)"
    for e in sweep:
        assert e["p50_ms"] > 0 and e["iqr_ms"] >= 0 and e["runtime"] == "eager"
        assert e["attention_ms"] >= 0 and e["ffn_ms"] >= 0 and 0 <= e["attention_share"] <= 1
        assert ("speedup_vs_parent" in e) == (e["role"] == "self")
    assert len(m["attention_split"]) == 8
    assert m["speedup_vs_parent"].keys() == {"1", "2"}, "headline at the longest length"


def test_seqlen_times_a_base_encoder_without_a_head(tmp_path, tiny_model_dir, tiny_csv) -> None:
    """A base encoder (no classification head, like minilm-l6) is swept too: only latency."""
    from transformers import AutoTokenizer, BertModel

    from engine.toolkit.checkpoints import load_classifier, resolve

    base = tmp_path / "tiny-base"
    classifier = load_classifier(resolve(str(tiny_model_dir)))
    BertModel(classifier.config).save_pretrained(base, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(base)
    job = run(submit("seqlen", model=str(base), dataset=f"csv:{tiny_csv}",
                     sets=["lengths=16,32", "batch_sizes=[1]", "warmup=1", "latency_runs=3",
                           "latency_max_runs=0"]))
    assert job["status"] == "done", job["error"]
    assert job["metrics"]["accuracy"] is None
    assert {e["seq_len"] for e in job["metrics"]["seqlen_sweep"]} == {16, 32}
    assert len(job["metrics"]["attention_split"]) == 2


def test_without_blocks_changes_the_output_only_inside_the_call(tiny_model_dir) -> None:
    import torch

    from engine.methods.seqlen import Without, bert_layers
    from engine.toolkit.checkpoints import load_classifier, resolve

    model = load_classifier(resolve(str(tiny_model_dir)))
    assert len(bert_layers(model)) == 2
    ids = {"input_ids": torch.tensor([[101, 2023, 2003, 102]]),
           "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.inference_mode():
        full = model(**ids).logits
        for drop in ("attention", "ffn"):
            assert not torch.allclose(Without(model, drop)(**ids).logits, full)
        assert torch.equal(model(**ids).logits, full), "restored after the call"


def test_a_stored_model_is_headlined_under_the_runtime_it_was_made_for(tmp_path) -> None:
    """A re-timed int8 model (quantize records `compiled`) is headlined compiled, as its own
    job was; anything else, or no record, is eager."""
    import json

    from engine.runner.evaluating import stored_runtime

    assert stored_runtime(str(tmp_path)) == "eager"  # no lab_meta.json
    (tmp_path / "lab_meta.json").write_text(json.dumps({"loader": "quantize",
                                                         "runtime": "compiled"}))
    assert stored_runtime(str(tmp_path)) == "compiled"
    assert stored_runtime(str(tmp_path), ["eager"]) == "eager"  # runtimes=eager wins
    (tmp_path / "lab_meta.json").write_text(json.dumps({"runtime": "onnxruntime"}))
    assert stored_runtime(str(tmp_path)) == "eager"
    assert stored_runtime("preset:bert-base") == stored_runtime("") == "eager"



def test_each_measurement_starts_from_a_fresh_compiler(monkeypatch) -> None:
    """A worker (or a search) measures many jobs in one process, each compiling its model and
    its parent at two batch sizes. Dynamo keeps every graph of BERT's one `forward` and past
    its recompile limit (8) ran "compiled" models eager, silently (a 60-minute search: int8
    "compiled" at 0.73x the teacher at batch 1 from its third job on; 2.6x in a fresh
    process). `measure` now forgets earlier graphs and allows one per model and batch size."""
    import torch

    resets: list[int] = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 8)  # restored afterwards
    runs = {n: [0.01] * 40 for n in ("a", "b", "c")}
    models, clock, _ = scripted(runs)
    for t in models.values():
        t.runtime = "compiled"
    T.measure(models, Tok(), ["x"], [1, 8, 32], 16, warmup=2, runs=4, clock=clock)
    assert resets == [1], "once, before anything of this measurement compiled"
    assert torch._dynamo.config.recompile_limit >= 3 * 3, "3 models x 3 batch sizes"
    eager, clock, _ = scripted({"a": [0.01] * 20})
    T.measure(eager, Tok(), ["x"], [1], 16, warmup=2, runs=4, clock=clock)
    assert resets == [1], "nothing compiled: nothing to forget"
