"""Benchmark: one model under every runtime the lab knows, paired in one process (issue 16).

    LAB_HOME=/work/bench-home LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_runtimes \
        [default] [job:ID ...] [--rounds 5] [--runs 10]

For each model (default: the teacher): PyTorch eager fp32, PyTorch compiled fp32, the lab's
compiled torchao int8 (int8-dynamic, int8 embeddings), ONNX Runtime fp32, ORT int8 dynamic and
ORT int8 static (256 calibration examples). Every variant is timed interleaved with every other
in `--rounds` rounds of `--runs` timed runs (CPU, LAB_THREADS threads, sequence length 64,
batch 1 and 32); each ratio against PyTorch eager is the median over rounds with its range.
Accuracy of each on the test split (2,000 examples). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

SEQ, BATCHES = 64, [1, 32]


def variants(model_id: str, tmp: Path) -> tuple[dict, object, list[str]]:
    """{name: Timed} for one model, its tokenizer, and the test texts."""
    from engine.methods.export import onnx_runtime as X
    from engine.methods.quantize import QuantizeConfig, quantize_model
    from engine.toolkit.checkpoints import load_classifier, load_tokenizer, resolve
    from engine.toolkit.data import load_dataset, sample_texts
    from engine.toolkit.timing import Timed, compile_for_timing

    ref = resolve(model_id)
    data = load_dataset("rotten-tomatoes")
    tok = load_tokenizer(ref)
    fp32 = load_classifier(ref, label_names=data.label_names)
    int8 = copy.deepcopy(fp32)
    quantize_model(int8, QuantizeConfig(scheme="int8-dynamic", embeddings=True))
    out = {"pt-eager-fp32": Timed(fp32, "cpu"),
           "pt-compiled-fp32": Timed(compile_for_timing(copy.deepcopy(fp32)), "cpu", "compiled"),
           "lab-int8-compiled": Timed(compile_for_timing(int8), "cpu", "compiled")}
    X.export_onnx(fp32, tok, tmp / "float.onnx", SEQ, 18)
    calib = X.feeds(tok, sample_texts(data.train.texts, 256, 0), SEQ)
    for name, scheme in (("ort-fp32", None), ("ort-int8-dynamic", "int8-dynamic"),
                         ("ort-int8-static", "int8-static")):
        folder = tmp / name
        folder.mkdir()
        if scheme is None:
            (folder / X.ONNX_FILE).write_bytes((tmp / "float.onnx").read_bytes())
        else:
            X.quantize_onnx(tmp / "float.onnx", folder / X.ONNX_FILE, scheme, calib, True)
        fp32.config.save_pretrained(folder)
        out[name] = Timed(X.OrtClassifier(folder), "cpu", "onnxruntime")
    return out, tok, data


def main() -> None:
    import torch

    from engine.toolkit import device as dev
    from engine.toolkit.evaluation import classification_metrics, predict
    from engine.toolkit.timing import measure

    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="*", default=["default"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args()
    dev.setup()
    for model_id in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.time()
            timed, tok, data = variants(model_id, Path(tmp))
            texts = data.test.texts[:256]
            ratios: dict[str, dict[int, list[float]]] = {n: {b: [] for b in BATCHES}
                                                        for n in timed}
            p50: dict[str, dict[int, list[float]]] = {n: {b: [] for b in BATCHES}
                                                     for n in timed}
            for _ in range(args.rounds):
                lat = measure(timed, tok, texts, BATCHES, SEQ, warmup=3, runs=args.runs)
                base = {r["batch_size"]: r["p50_ms"] for r in lat["pt-eager-fp32"]}
                for name, rows in lat.items():
                    for r in rows:
                        ratios[name][r["batch_size"]].append(base[r["batch_size"]] / r["p50_ms"])
                        p50[name][r["batch_size"]].append(r["p50_ms"])
            print(f"\n== {model_id}: CPU, {torch.get_num_threads()} threads, sequence {SEQ}, "
                  f"{args.rounds} rounds x {args.runs} runs, all interleaved in one process "
                  f"({time.time() - start:.0f} s)")
            print(f"{'runtime':22} {'accuracy':>9} " + " ".join(
                f"{'p50 ms @' + str(b):>11} {'vs eager @' + str(b) + ' (range)':>26}"
                for b in BATCHES))
            for name, t in timed.items():
                preds, _ = predict(t.model, tok, data.test.texts, SEQ, "cpu", batch_size=64)
                acc = classification_metrics(data.test.labels, preds, data.num_labels)
                cells = []
                for b in BATCHES:
                    xs = ratios[name][b]
                    cells.append(f"{statistics.median(p50[name][b]):>11.2f} "
                                 f"{statistics.median(xs):>10.2f}x ({min(xs):.2f}-{max(xs):.2f})"
                                 .ljust(38))
                print(f"{name:22} {acc['accuracy']:>9.4f} " + " ".join(cells))


if __name__ == "__main__":
    main()
