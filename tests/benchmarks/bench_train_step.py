"""Benchmark: what a CPU training step of the teacher costs with and without dropout, on SDPA
and on transformers' "eager" matmul attention (finetune's TrainSettings.dropout and
cpu_matmul_attention). The embedded encoder, mean pooled, bf16 autocast as the teacher's recipe,
batch 32 of Rotten Tomatoes' training split (padded per batch, as the loop does); the four
settings take turns on the same batches, a few steps each per round, so every round pairs them.
Prints each setting's median step and its ratio to the checkpoint's own (dropout 0.1, SDPA)
with a 95 % interval (paired bootstrap over rounds).

    LAB_THREADS=2 .venv/bin/python -m tests.benchmarks.bench_train_step [--rounds 8]

Not a test: nothing is asserted. The weights move a little between rounds (lr 1e-5): step time
does not depend on their values."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from engine.toolkit.checkpoints import load_classifier, load_tokenizer, resolve
from engine.toolkit.data import load_dataset
from engine.toolkit.paired import paired_ci
from engine.toolkit.pooling import use_mean_pooling
from engine.toolkit.training import epoch_batches
from storage import settings

# (dropout, attention implementation); the first is the checkpoint's own, the baseline
SETTINGS = [(0.1, "sdpa"), (0.0, "sdpa"), (0.1, "eager"), (0.0, "eager")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=8, help="rounds; each setting once per round")
    ap.add_argument("--steps", type=int, default=6, help="steps per setting per round")
    a = ap.parse_args()
    torch.set_num_threads(settings.threads())
    data = load_dataset("rotten-tomatoes")
    ref = resolve("minilm-l6")
    tok = load_tokenizer(ref)
    model = use_mean_pooling(load_classifier(ref, label_names=data.label_names,
                                             require_head=False))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    idx = epoch_batches(data.train.texts, 32, np.random.RandomState(0))[:a.rounds * a.steps]
    batches = [(dict(tok([data.train.texts[j] for j in b], padding=True, truncation=True,
                         max_length=64, return_tensors="pt")),
                torch.tensor([data.train.labels[j] for j in b])) for b in idx]
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]

    def use(p: float, attention: str) -> None:
        for m in dropouts:
            m.p = p
        model.set_attn_implementation(attention)

    def step(batch: dict, labels: torch.Tensor) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for s in SETTINGS:  # warm-up: one step of each
        use(*s)
        step(*batches[0])
    ms: dict[tuple, list[float]] = {s: [] for s in SETTINGS}
    for r in range(a.rounds):
        part = batches[r * a.steps:(r + 1) * a.steps]
        for s in SETTINGS:
            use(*s)
            t = time.perf_counter()
            for b in part:
                step(*b)
            ms[s].append((time.perf_counter() - t) * 1000 / len(part))
    base = ms[SETTINGS[0]]
    print(f"threads {torch.get_num_threads()}, {a.rounds} rounds x {a.steps} steps, batch 32, "
          f"{np.mean([b[0]['input_ids'].shape[1] for b in batches]):.1f} tokens per example "
          f"padded")
    for s in SETTINGS:
        lo, hi = paired_ci(ms[s], base)
        print(f"dropout {s[0]:.1f}, {s[1]:>5} attention: median {np.median(ms[s]):6.1f} ms/step, "
              f"{np.median(base) / np.median(ms[s]):.3f}x as fast as dropout 0.1 on SDPA "
              f"[{lo:.3f}-{hi:.3f}]")


if __name__ == "__main__":
    main()
