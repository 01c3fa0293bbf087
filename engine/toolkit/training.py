"""The training loop shared by fine-tuning, distillation and pruning recovery.

AdamW with linear warm-up and decay, dynamic padding, validation every `eval_every` steps,
the best weights by validation accuracy kept (in memory) and restored at the end (or the last
ones: TrainSettings.keep), optional early stopping, progress and cancel checks at every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.toolkit.data import Dataset, Split
from engine.toolkit.evaluation import classification_metrics, predict


@dataclass(frozen=True)
class TrainSettings:
    lr: float = 1e-4
    epochs: float = 3.0
    max_steps: int = 0  # 0: run `epochs` epochs
    batch_size: int = 32
    max_length: int = 64
    seed: int = 0
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    eval_every: int = 100  # steps between validation passes
    patience: int = 0  # stop after this many validations without improvement; 0: never
    # the weights returned: "best", the step with the best selection-half accuracy; "last",
    # the final step (validation still runs for the curves; a cancelled run keeps the best)
    keep: str = "best"
    val_limit: int = 1000  # selection examples used (the first N of Dataset.val_select)
    group_by_length: bool = True  # batches of similar length: less padding, same data
    # the word-embedding matrix (about half of a MiniLM's weights) stays as pretrained: no
    # gradient for it and no AdamW update, a faster step on a CPU
    freeze_embeddings: bool = False
    bf16: bool = False  # forward and backward under bf16 autocast (weights and AdamW in fp32)
    # on a CPU, train with transformers' "eager" attention (Q K^T, softmax, V as plain ops)
    # instead of SDPA, whose CPU flash kernel is slow forward and backward at MiniLM's 32-dim
    # heads; the model goes back to its own attention after. Same maths.
    cpu_matmul_attention: bool = True
    # every nn.Dropout of the model (hidden, attention probabilities, head) set to this while
    # training, restored after; None: the model's own. On a CPU, drawing the masks
    # (aten::bernoulli_) is about 16 % of a MiniLM training step (torch.profiler, batch 32, a
    # one-off profile; bench_train_step measures the step with and without)
    dropout: float | None = None


    def selection(self, data: Dataset) -> Split:
        """The validation examples checkpoints are picked on: the first `val_limit` of the
        selection half (the lab judges on the other half; Dataset.val_select / val_judge)."""
        return Split(data.val_select.texts[:self.val_limit],
                     data.val_select.labels[:self.val_limit])

    def total_steps(self, n_train: int) -> int:
        per_epoch = max(1, n_train // self.batch_size)
        return self.max_steps if self.max_steps > 0 else max(1, round(self.epochs * per_epoch))


# loss_fn(model, batch: dict of tensors [B, T], labels [B], example indices [B]) -> scalar loss
LossFn = Callable[[Any, dict, Any, Any], Any]


def epoch_batches(texts: list[str], batch_size: int, rng: np.random.RandomState,
                  group_by_length: bool = True, group: int = 50) -> list[np.ndarray]:
    """One epoch of index batches. With `group_by_length`, shuffle, then sort each window of
    `group` batches by text length and shuffle the batches: each batch pads to a similar
    length (about 1.4x faster on short snippets) while the order stays random."""
    perm = rng.permutation(len(texts))
    if group_by_length:
        window = batch_size * group
        chunks = [sorted(perm[i:i + window], key=lambda j: len(texts[j]))
                  for i in range(0, len(perm), window)]
        perm = np.concatenate([np.asarray(c, dtype=int) for c in chunks])
    n_full = max(1, len(perm) // batch_size)
    batches = [perm[i * batch_size:(i + 1) * batch_size] for i in range(n_full)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def train_classifier(model, tokenizer, data: Dataset, s: TrainSettings, ctx,
                     device: str = "cpu", loss_fn: LossFn | None = None,
                     span: tuple[float, float] = (0.0, 0.85),
                     trainable: Callable[[str], bool] | None = None,
                     extra_params: list | None = None) -> dict[str, Any]:
    """Train `model` in place on data.train; keep the best weights by validation accuracy
    (or the last ones: `s.keep`).

    `ctx` is the job context (progress, curves, cancel). `extra_params` are trained alongside
    the model but are not part of it (e.g. distillation's hidden-state projection). Returns
    {best_val_accuracy, best_step, kept_step, kept_val_accuracy, steps, train_seconds}. On
    cancel, the best weights so far are restored before JobCancelled propagates, so the caller
    can keep them.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    from engine.toolkit.checkpoints import set_attention
    from engine.toolkit.contract import JobCancelled

    torch.manual_seed(s.seed)
    rng = np.random.RandomState(s.seed)
    model.to(device).train()
    dropouts = [(m, m.p) for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    if s.dropout is not None:
        for m, _ in dropouts:
            m.p = s.dropout
    attention = set_attention(model, "eager") \
        if s.cpu_matmul_attention and torch.device(device).type == "cpu" else None
    if s.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    params = [p for n, p in model.named_parameters()
              if p.requires_grad and (trainable is None or trainable(n))]
    params += list(extra_params or [])
    # No weight decay on biases and LayerNorm weights, as in BERT's recipe.
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=s.lr,
                            fused=True)  # one kernel per step, not a loop over tensors
    train: Split = data.train
    steps = s.total_steps(len(train))
    sched = get_linear_schedule_with_warmup(opt, int(s.warmup_ratio * steps), steps)
    val = s.selection(data)

    lo, hi = span
    best = {"acc": -1.0, "step": 0, "state": None}
    last = {"acc": -1.0, "step": 0}
    evals_without_gain = 0
    start = time.time()

    def validate(step: int) -> bool:
        preds, _ = predict(model, tokenizer, val.texts, s.max_length, device, batch_size=128)
        acc = classification_metrics(val.labels, preds, data.num_labels)["accuracy"]
        model.train()
        ctx.curve(step, val_accuracy=acc)
        last.update(acc=acc, step=step)
        previous = best["acc"]
        # a tie goes to the later step: with the learning rate decaying, it is the more trained
        if acc >= previous:
            best.update(acc=acc, step=step,
                        state={k: v.detach().to("cpu", copy=True)
                               for k, v in model.state_dict().items()})
        return acc > previous  # a gain (for patience): a tie is none

    def restore() -> None:
        if best["state"] is not None:
            model.load_state_dict(best["state"])

    step, losses = 0, []
    try:
        while step < steps:
            for idx in epoch_batches(train.texts, s.batch_size, rng, s.group_by_length):
                batch = dict(tokenizer([train.texts[j] for j in idx], padding=True,
                                       truncation=True, max_length=s.max_length,
                                       return_tensors="pt").to(device))
                labels = torch.tensor([train.labels[j] for j in idx], device=device)
                with torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                                    enabled=s.bf16):
                    if loss_fn is None:
                        loss = model(**batch, labels=labels).loss
                    else:
                        loss = loss_fn(model, batch, labels, idx)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                losses.append(float(loss.detach()))
                if step % 10 == 0 or step == steps:
                    ctx.curve(step, train_loss=float(np.mean(losses[-10:])))
                elapsed = time.time() - start
                ctx.progress(lo + (hi - lo) * step / steps,
                             f"step {step}/{steps}, loss {np.mean(losses[-10:]):.3f}, "
                             f"best val {max(best['acc'], 0):.3f} ({elapsed:.0f} s)")
                if step % s.eval_every == 0 or step == steps:
                    if validate(step):
                        evals_without_gain = 0
                    else:
                        evals_without_gain += 1
                    if s.patience and evals_without_gain >= s.patience:
                        steps = step  # early stop
                if step >= steps:
                    break
    except JobCancelled:
        restore()
        raise
    finally:
        for m, p in dropouts:  # the model goes back with its own dropout and attention
            m.p = p
        if attention:
            set_attention(model, attention)
    if last["step"] != step:
        validate(step)
    kept = last if s.keep == "last" else best
    if kept is best:
        restore()
    model.eval()
    if s.freeze_embeddings:  # the caller gets the model back as it came, trainable
        model.get_input_embeddings().weight.requires_grad_(True)
    return {"best_val_accuracy": best["acc"], "best_step": best["step"],
            "kept_step": kept["step"], "kept_val_accuracy": kept["acc"], "steps": step,
            "train_seconds": round(time.time() - start, 1)}
