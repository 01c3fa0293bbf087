"""Head importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): gradient,
magnitude and random scores per head, normalised per layer. Shared by the prune method (which
heads to remove) and the sensitivity map (each head's importance beside where int8 hurts).

Scores are returned on the ORIGINAL head grid ([layers][config.num_attention_heads]), None
where a head was already removed, so they line up with `config.pruned_heads`
(engine/toolkit/heads.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.toolkit.config import LabError
from engine.toolkit.heads import head_size, heads_per_layer, kept_heads
from engine.toolkit.layers import encoder_layers

Scores = list[list[float | None]]  # [layers][original heads]; None: head already removed


def _normalise_per_layer(raw: list[torch.Tensor]) -> list[torch.Tensor]:
    """Divide each layer's scores by their L2 norm (Michel et al. 2019, section 6)."""
    return [s / s.norm().clamp_min(1e-12) if s.numel() else s for s in raw]


def _to_original(model, per_layer: list[torch.Tensor]) -> Scores:
    """Scores by current position -> a [layers][original heads] grid, None where removed."""
    cfg = model.config
    out: Scores = []
    for layer, scores in enumerate(per_layer):
        row: list[float | None] = [None] * cfg.num_attention_heads
        for pos, h in enumerate(kept_heads(cfg, layer)):
            row[h] = round(float(scores[pos]), 6)
        out.append(row)
    return out


def scoring_sample(split, n: int, seed: int) -> tuple[list[str], list[int]]:
    """A seeded sample of `n` examples (texts, labels) from a dataset split (the training
    split: scoring never sees the test split)."""
    import numpy as np

    pick = np.random.RandomState(seed).permutation(len(split))[:min(n, len(split))]
    return [split.texts[i] for i in pick], [split.labels[i] for i in pick]


def head_importance(model, tokenizer, texts: list[str], labels: list[int], method: str,
                    max_length: int = 64, batch_size: int = 32, seed: int = 0,
                    device: str = "cpu",
                    progress: Callable[[float], None] | None = None) -> Scores:
    """Importance of every head, normalised per layer.

    gradient: Michel et al. 2019, eq. 2: for each example x, the absolute gradient of its own
    classification loss L(x) with respect to a per-head gate (all ones) on each head's
    output, |dL(x)/dgate_h|, then the mean over `texts`. Each example has its own gates, so
    one backward pass per batch gives every example's gradient, and the scores do not depend
    on `batch_size` (the absolute value of a batch-summed gradient would: signs cancel).
    magnitude: the L2 norm of the head's query, key,
    value rows and output columns. random: uniform, from `seed` (a baseline).
    """
    layers = encoder_layers(model)
    counts = heads_per_layer(model.config)
    if method == "random":
        g = torch.Generator().manual_seed(seed)
        raw = [torch.rand(n, generator=g) for n in counts]
    elif method == "magnitude":
        d = head_size(model.config)
        raw = []
        for layer, n in zip(layers, counts):
            sa, dense = layer.attention.self, layer.attention.output.dense
            sq = sum(getattr(sa, k).weight.detach().float().pow(2).sum(1) for k in
                     ("query", "key", "value")) + dense.weight.detach().float().pow(2).sum(0)
            raw.append(sq.view(n, d).sum(1).sqrt().cpu() if n else torch.zeros(0))
    elif method == "gradient":
        raw = _gradient_importance(model, layers, counts, tokenizer, texts, labels, max_length,
                                   batch_size, device, progress)
    else:
        raise LabError(f"unknown importance {method!r}; use gradient, magnitude or random")
    return _to_original(model, _normalise_per_layer(raw))


def _gradient_importance(model, layers, counts, tokenizer, texts, labels, max_length,
                         batch_size, device, progress) -> list[torch.Tensor]:
    def gate_head(output, gate: torch.Tensor):
        out = output[0]  # [B, T, n * d]
        b, t, _ = out.shape
        n = gate.shape[1]
        return ((out.view(b, t, n, -1) * gate.view(b, 1, n, 1).to(out.dtype)).view(b, t, -1),
                *output[1:])

    return gate_gradients(model, [layer.attention.self for layer in layers], counts, gate_head,
                          tokenizer, texts, labels, max_length, batch_size, device, progress)


def gate_gradients(model, modules: list[nn.Module], counts: list[int], apply_gate,
                   tokenizer, texts: list[str], labels: list[int], max_length: int = 64,
                   batch_size: int = 32, device: str = "cpu",
                   progress: Callable[[float], None] | None = None) -> list[torch.Tensor]:
    """Mean over `texts` of |dL(x)/dgate| for one gate (all ones) per example and unit on each
    module's output: `counts[i]` units on `modules[i]`, gated by `apply_gate(output, gate
    [B, n]) -> output`. Shared by head scoring (a unit is a head) and prune's feed-forward
    neuron scoring (a unit is an intermediate neuron: the gate's gradient is then the
    first-order Taylor term sum_t a_t dL/da_t of Molchanov et al. 2017). Returns [n] per
    module, on the CPU; eval mode (no dropout) and no weight gradients while it runs."""
    gates: list[torch.Tensor] = [torch.zeros(0) for _ in counts]  # [B, n] per module, per batch

    def gate_hook(i: int):
        def hook(module, args, output):
            return apply_gate(output, gates[i]) if counts[i] else None
        return hook

    handles = [m.register_forward_hook(gate_hook(i)) for i, m in enumerate(modules)]
    # Only the gates need gradients: skipping the weights' gradients halves the backward pass.
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    was_training = model.training
    model.eval()  # no dropout: the same examples give the same scores
    total = [torch.zeros(n, device=device) for n in counts]
    try:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            y = torch.tensor(labels[start:start + batch_size], device=device)
            for i, n in enumerate(counts):  # one gate per example and unit: [B, n]
                gates[i] = torch.ones(len(chunk), n, device=device, requires_grad=True)
            # the sum of per-example losses: example b's loss is the only one that reaches
            # its own gates, so gates[i].grad[b] = dL(x_b)/dgate
            loss = nn.functional.cross_entropy(model(**batch).logits.float(), y,
                                               reduction="sum")
            live = [g for g in gates if g.numel()]
            grads = iter(torch.autograd.grad(loss, live)) if live else iter(())
            for i, g in enumerate(gates):
                if g.numel():
                    total[i] += next(grads).abs().sum(0)
            if progress:
                progress(min(1.0, (start + batch_size) / len(texts)))
    finally:
        for h in handles:
            h.remove()
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
        model.train(was_training)
    return [(t / max(1, len(texts))).cpu() for t in total]
