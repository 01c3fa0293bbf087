"""Hugging Face model cards for the folders the lab saves: README.md with YAML metadata
(base_model, datasets, metrics, model-index with the measured accuracy and macro-F1), a table
of the measured latency with hardware, threads, runtime and batch, the lineage and the recipe,
and how to load it. Pure text from a run dict shaped like `storage.jobs.job_as_dict`."""

from __future__ import annotations

from typing import Any

import yaml

CARD_FILE = "README.md"


def _metadata(run: dict[str, Any], chain: list[dict[str, Any]]) -> dict[str, Any]:
    m = run.get("metrics") or {}
    root = chain[0]["model"] if chain else run.get("model")
    metrics = [{"type": "accuracy", "value": m.get("accuracy")},
               {"type": "f1", "name": "macro-F1", "value": m.get("macro_f1")}]
    data: dict[str, Any] = {
        "base_model": root, "datasets": [run.get("dataset")],
        "library_name": "onnx" if _is_onnx(run) else "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["compression-lab", *[step["method"] for step in chain]],
        "model-index": [{
            "name": run.get("output_model") or f"job:{run.get('id')}",
            "results": [{"task": {"type": "text-classification"},
                         "dataset": {"name": run.get("dataset"), "type": run.get("dataset"),
                                     "split": "test"},
                         "metrics": [x for x in metrics if x["value"] is not None]}]}],
    }
    return data


def _is_onnx(run: dict[str, Any]) -> bool:
    return any(r.get("runtime") == "onnxruntime" for r in (run.get("metrics") or {})
               .get("latency", []))


def _latency_table(run: dict[str, Any]) -> str:
    m = run.get("metrics") or {}
    rows = m.get("latency") or []
    if not rows:
        return "No latency was measured for this model.\n"
    lines = ["| runtime | batch | tokens | p50 ms | p95 ms | examples/s | threads | device |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.get('runtime')} | {r.get('batch_size')} | {r.get('seq_len')} | "
                     f"{r.get('p50_ms', 0):.2f} | {r.get('p95_ms', 0):.2f} | "
                     f"{r.get('throughput_per_s', 0):.1f} | {r.get('threads')} | "
                     f"{r.get('device')} |")
    speed = m.get("speedup_vs_parent")
    if speed:
        lines.append("")
        lines.append(f"Paired speedup against its parent ({m.get('parent_runtime', 'eager')} "
                     f"against the parent under the same runtime, timed interleaved in one "
                     f"process): " + ", ".join(f"{x:.2f}x at batch {bs}"
                                               for bs, x in speed.items()) + ".")
    return "\n".join(lines) + "\n"


def _how_to_load(run: dict[str, Any]) -> str:
    if _is_onnx(run):
        return ("This folder holds an ONNX graph (model.onnx) and its tokenizer. Run it with "
                "ONNX Runtime:\n\n```bash\npip install onnxruntime transformers\n"
                "python run_onnx.py \"a wonderful, moving film\"\n```\n")
    return ("Plain fine-tuned and distilled models load with transformers:\n\n```python\n"
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
            "model = AutoModelForSequenceClassification.from_pretrained(\".\")\n"
            "tokenizer = AutoTokenizer.from_pretrained(\".\")\n```\n\n"
            "A model whose lab_meta.json records architecture changes (removed heads, dropped "
            "or factorised layers, int8 weights) loads with the lab's loader, which replays "
            "them:\n\n```python\nfrom engine.toolkit.checkpoints import load_classifier, "
            "resolve\nmodel = load_classifier(resolve(\"path/to/this/folder\"))\n```\n")


def model_card(run: dict[str, Any], chain: list[dict[str, Any]]) -> str:
    """README.md text for the model `run` produced. `chain` is its lineage, oldest first
    (each a job dict: method, config, model), ending with `run` itself."""
    m = run.get("metrics") or {}
    meta = yaml.safe_dump(_metadata(run, chain), sort_keys=False)
    acc = m.get("accuracy")
    delta = m.get("accuracy_delta_vs_parent")
    steps = "\n".join(f"{i + 1}. `{s['method']}` on `{s['model']}`: "
                      f"`{(s.get('config') or {}).get('data', {})}`"
                      for i, s in enumerate(chain))
    facts = ", ".join(f"{k} {m[k]}" for k in ("layers", "heads", "params", "size_mb")
                      if m.get(k) is not None)
    return (f"---\n{meta}---\n\n"
            f"# {run.get('output_model') or 'job:' + str(run.get('id'))}\n\n"
            f"Made by Compression Lab ({run.get('method')} job {run.get('id')}) from "
            f"`{run.get('model')}` on `{run.get('dataset')}`. {facts}.\n\n"
            f"## Accuracy\n\n"
            + (f"Test accuracy {acc:.4f}, macro-F1 {m.get('macro_f1', 0):.4f} on "
               f"{m.get('test_examples', '?')} held-out examples"
               + (f" ({delta * 100:+.2f} points against its parent)" if delta is not None
                  else "") + ".\n\n" if acc is not None else "Not evaluated.\n\n")
            + ("Random weights: the accuracy is not meaningful.\n\n"
               if m.get("accuracy_meaningful") is False else "")
            + f"## Measured latency\n\n{_latency_table(run)}\n"
            f"## Lineage and recipe\n\n{steps}\n\n"
            f"## How to load\n\n{_how_to_load(run)}")


def front_matter(text: str) -> dict[str, Any]:
    """The YAML metadata of a card (what the hub reads)."""
    assert text.startswith("---\n"), "a model card starts with YAML front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])
