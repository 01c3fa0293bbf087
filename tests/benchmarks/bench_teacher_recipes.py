"""Benchmark: the teacher's recipe against variants, test accuracy along the way.

Each variant fine-tunes the embedded encoder (minilm-l6) on Rotten Tomatoes with the lab's own
training loop (engine.toolkit.training.train_classifier) and, at every validation pass, also
scores the test split; the time of those test passes is left out of the training time printed.
Printed per variant and seed: the test accuracy at each pass, at the step the loop keeps (best
on the selection half) and at the last step. This is how the recipe's comments in
engine/methods/finetune were measured (a scratch form of this script); bench_teacher measures
the shipped recipe as a job.

    LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_teacher_recipes \\
        --variants shipped,frozen --seeds 0,1

Variants: shipped (mean pooling, bf16 autocast as the job's precision=auto picks it on a
CPU with native bf16, 1.5 epochs), two_epochs, frozen (two epochs, word
embeddings frozen), cls (BERT's pooler), fp32. --every N sets the validation cadence (50);
--steps N caps the steps (a smoke run). One variant at a time: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from engine.toolkit.checkpoints import load_classifier, load_tokenizer, resolve
from engine.toolkit.data import load_dataset
from engine.toolkit.evaluation import classification_metrics, predict
from engine.toolkit.pooling import use_mean_pooling
from engine.toolkit.training import TrainSettings, train_classifier
from storage import settings

SHIPPED = TrainSettings(epochs=1.5, bf16=True)
# name: (settings, mean pooling)
VARIANTS: dict[str, tuple[TrainSettings, bool]] = {
    "shipped": (SHIPPED, True),
    "two_epochs": (replace(SHIPPED, epochs=2.0), True),
    "frozen": (replace(SHIPPED, epochs=2.0, freeze_embeddings=True), True),
    "cls": (SHIPPED, False),
    "fp32": (replace(SHIPPED, bf16=False), True),
}


class _Probe:
    """A job context for train_classifier that scores the test split at each validation."""

    def __init__(self, model, tokenizer, data, max_length: int):
        self.model, self.tokenizer, self.data, self.max_length = model, tokenizer, data, max_length
        self.start, self.excluded = time.time(), 0.0
        self.passes: list[tuple[int, float, float, float]] = []  # step, s, val, test

    def progress(self, *args, **kwargs) -> None:
        pass

    def curve(self, step: float, **values: float) -> None:
        if "val_accuracy" not in values:
            return
        t = time.time()
        preds, _ = predict(self.model, self.tokenizer, self.data.test.texts, self.max_length,
                           batch_size=128)
        test = classification_metrics(self.data.test.labels, preds,
                                      self.data.num_labels)["accuracy"]
        self.model.train()
        self.excluded += time.time() - t
        seconds = time.time() - self.start - self.excluded
        self.passes.append((int(step), seconds, values["val_accuracy"], test))
        print(f"  step {int(step):>4}  {seconds:5.0f} s  val {values['val_accuracy']:.3f}  "
              f"test {test:.4f}", flush=True)


def run(name: str, seed: int, every: int, steps: int) -> None:
    s, mean = VARIANTS[name]
    s = replace(s, seed=seed, eval_every=every, max_steps=steps)
    data = load_dataset("rotten-tomatoes")
    ref = resolve("minilm-l6")
    tokenizer = load_tokenizer(ref)
    model = load_classifier(ref, label_names=data.label_names, require_head=False)
    if mean:
        use_mean_pooling(model)
    print(f"{name} seed {seed}: {s}", flush=True)
    probe = _Probe(model, tokenizer, data, s.max_length)
    info = train_classifier(model, tokenizer, data, s, probe)
    kept = next(p for p in probe.passes if p[0] == info["best_step"])
    print(f"RESULT {name} seed {seed}: kept step {kept[0]} test {kept[3]:.4f}; last step "
          f"{probe.passes[-1][0]} test {probe.passes[-1][3]:.4f}; training "
          f"{probe.passes[-1][1]:.0f} s without the test passes", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="shipped", help=f"from {', '.join(VARIANTS)}")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--every", type=int, default=50, help="steps between validation passes")
    ap.add_argument("--steps", type=int, default=0, help="cap on the steps (0: the recipe's)")
    a = ap.parse_args()
    torch.set_num_threads(settings.threads())
    for name in a.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        for seed in a.seeds.split(","):
            run(name, int(seed), a.every, a.steps)


if __name__ == "__main__":
    main()
