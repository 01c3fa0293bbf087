"""The evaluation harness: predictions, accuracy and macro-F1 on a split.

Every model the lab produces goes through `predict` + `classification_metrics`, so accuracies
are comparable across methods.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def predict(model, tokenizer, texts: list[str], max_length: int, device: str = "cpu",
            batch_size: int = 64,
            progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class predictions and softmax probabilities for `texts`.

    Returns (pred [N] int, probs [N, num_labels] float32). Texts are batched by length (less
    padding, same results) and returned in the original order.
    """
    import torch

    order = np.argsort([len(t) for t in texts], kind="stable")
    probs: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(device)
            logits = model(**batch).logits.float()
            p = torch.softmax(logits, dim=-1).cpu().numpy()
            for j, i in enumerate(idx):
                probs[i] = p[j]
            if progress:
                progress(min(1.0, (start + batch_size) / len(texts)))
    out = np.stack(probs) if probs else np.zeros((0, 1), dtype=np.float32)
    return out.argmax(-1), out


def classification_metrics(labels: list[int] | np.ndarray, preds: np.ndarray,
                           num_labels: int) -> dict[str, float]:
    """Accuracy (0..1) and macro-F1 (mean over classes of per-class F1, 0 for absent ones)."""
    y = np.asarray(labels)
    p = np.asarray(preds)
    f1s = []
    for c in range(num_labels):
        tp = np.sum((p == c) & (y == c))
        fp = np.sum((p == c) & (y != c))
        fn = np.sum((p != c) & (y == c))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(np.mean(p == y)) if len(y) else 0.0,
            "macro_f1": float(np.mean(f1s))}
