"""Model cards: the YAML front matter parses and carries the stored figures; the latency table
names runtime, batch, threads and device; ONNX folders say how to run them."""

from __future__ import annotations

from engine.reports.model_card import front_matter, model_card

RUN = {"id": 7, "method": "quantize", "model": "default", "dataset": "rotten-tomatoes",
       "output_model": "job:7",
       "config": {"type": "QuantizeConfig", "version": 1, "data": {"scheme": "int8-dynamic"}},
       "metrics": {"accuracy": 0.8305, "macro_f1": 0.8291, "test_examples": 2000,
                   "accuracy_delta_vs_parent": -0.003, "layers": 6, "heads": 72,
                   "params": 22713602, "size_mb": 23.1, "parent_runtime": "compiled",
                   "speedup_vs_parent": {"1": 2.96, "32": 3.58},
                   "latency": [{"batch_size": 1, "seq_len": 64, "p50_ms": 4.4, "p95_ms": 4.9,
                                "throughput_per_s": 227.0, "threads": 2, "device": "cpu",
                                "runtime": "compiled"}]}}
CHAIN = [{"method": "finetune", "model": "minilm-l6", "config": {"data": {"epochs": 3}}},
         RUN]


def test_card_metadata_parses_and_equals_the_stored_metrics() -> None:
    card = model_card(RUN, CHAIN)
    meta = front_matter(card)
    assert meta["base_model"] == "minilm-l6" and meta["datasets"] == ["rotten-tomatoes"]
    metrics = {x["type"]: x["value"] for x in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"accuracy": 0.8305, "f1": 0.8291}
    assert "| compiled | 1 | 64 | 4.40 | 4.90 | 227.0 | 2 | cpu |" in card
    assert "2.96x at batch 1" in card and "finetune" in card and "load_classifier" in card


def test_onnx_cards_say_how_to_run_the_graph() -> None:
    run = {**RUN, "metrics": {**RUN["metrics"], "latency": [
        {**RUN["metrics"]["latency"][0], "runtime": "onnxruntime"}]}}
    card = model_card(run, [run])
    assert front_matter(card)["library_name"] == "onnx" and "run_onnx.py" in card
