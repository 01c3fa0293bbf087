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

Variants: shipped (the job's defaults: mean pooling, bf16 autocast as precision=auto picks it
on a CPU with native bf16, 2 epochs, no dropout, matmul attention while training on a CPU,
the last step kept), before (finetune version 3: 1.5 epochs, dropout 0.1, SDPA, the best
step kept), before_two_epochs, frozen (word
embeddings frozen), cls (BERT's pooler), fp32. Printed at each pass: the selection half's
accuracy (what the loop keeps a step by), the judging half's (what recipes are chosen by) and
the test split's (reported, never chosen by). --every N sets the validation cadence (100, as
the job); --steps N caps the steps (a smoke run). One variant at a time, on a quiet machine.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from engine.methods.finetune import FinetuneConfig
from engine.toolkit.checkpoints import load_classifier, load_tokenizer, resolve
from engine.toolkit.data import load_dataset
from engine.toolkit.evaluation import classification_metrics, predict
from engine.toolkit.pooling import use_mean_pooling
from engine.toolkit.training import TrainSettings, train_classifier
from storage import settings

# the job's defaults, bf16 as precision=auto picks it on a CPU with native bf16
SHIPPED = FinetuneConfig().train_settings(bf16=True)
# the recipe before (finetune version 3): 1.5 epochs, the checkpoint's dropout (0.1), SDPA,
# the best step on the selection half kept
BEFORE = TrainSettings(epochs=1.5, bf16=True, cpu_matmul_attention=False)
# name: (settings, mean pooling)
VARIANTS: dict[str, tuple[TrainSettings, bool]] = {
    "shipped": (SHIPPED, True),
    "before": (BEFORE, True),
    "before_two_epochs": (replace(BEFORE, epochs=2.0), True),
    "frozen": (replace(SHIPPED, freeze_embeddings=True), True),
    "cls": (SHIPPED, False),
    "fp32": (replace(SHIPPED, bf16=False), True),
}


class _Probe:
    """A job context for train_classifier that scores the test split at each validation."""

    def __init__(self, model, tokenizer, data, max_length: int):
        self.model, self.tokenizer, self.data, self.max_length = model, tokenizer, data, max_length
        self.start, self.excluded = time.time(), 0.0
        # step, seconds, selection-half accuracy, judging-half accuracy, test accuracy
        self.passes: list[tuple[int, float, float, float, float]] = []

    def progress(self, *args, **kwargs) -> None:
        pass

    def curve(self, step: float, **values: float) -> None:
        if "val_accuracy" not in values:
            return
        t = time.time()
        test, judge = (self._accuracy(split) for split in (self.data.test, self.data.val_judge))
        self.model.train()
        self.excluded += time.time() - t
        seconds = time.time() - self.start - self.excluded
        self.passes.append((int(step), seconds, values["val_accuracy"], judge, test))
        print(f"  step {int(step):>4}  {seconds:5.0f} s  val {values['val_accuracy']:.3f}  "
              f"judge {judge:.3f}  test {test:.4f}", flush=True)

    def _accuracy(self, split) -> float:
        preds, _ = predict(self.model, self.tokenizer, split.texts, self.max_length,
                           batch_size=128)
        return classification_metrics(split.labels, preds, self.data.num_labels)["accuracy"]


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
    kept = next(p for p in probe.passes if p[0] == info["kept_step"])
    last = probe.passes[-1]
    print(f"RESULT {name} seed {seed}: kept step {kept[0]} judge {kept[3]:.3f} test "
          f"{kept[4]:.4f}; last step {last[0]} judge {last[3]:.3f} test {last[4]:.4f}; "
          f"training {last[1]:.0f} s without the judge and test passes", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="shipped", help=f"from {', '.join(VARIANTS)}")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--every", type=int, default=100,
                    help="steps between validation passes (the job's eval_every)")
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
