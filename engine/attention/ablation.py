"""What-if head ablation: re-score a sample of the test split with chosen heads switched off
(no retraining), and show what that does to one sentence's prediction."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine.attention.loading import Loaded, encoder_layers, load, model_lock
from engine.toolkit.config import LabError


@dataclass(frozen=True)
class Ablation:
    """Accuracy on a sample of the test split with some heads switched off, and what that
    does to one sentence's prediction."""

    model_id: str
    dataset: str
    examples: int
    heads_off: int  # heads switched off by the user (that the model still had)
    baseline_accuracy: float  # 0..1, no head switched off
    accuracy: float  # 0..1, with the heads off
    flipped: int  # sample examples whose prediction changed
    sentence_before: tuple[str, float] | None  # (label, confidence)
    sentence_after: tuple[str, float] | None
    seconds: float  # wall time of the ablated re-score (model already loaded)
    delta_ci: tuple[float, float] = (0.0, 0.0)  # 95 % paired-bootstrap interval, accuracy 0..1
    p_value: float = 1.0  # exact McNemar test on the examples that flipped right/wrong
    gained: int = 0  # examples wrong with every head and right with the heads off
    lost: int = 0  # examples right with every head and wrong with the heads off

    @property
    def delta(self) -> float:
        """Accuracy with the heads off minus with every head (0..1 units)."""
        return self.accuracy - self.baseline_accuracy

    @property
    def within_chance(self) -> bool:
        """True when the interval includes 0: the sample cannot tell the change from noise."""
        return self.delta_ci[0] <= 0.0 <= self.delta_ci[1]


BOOTSTRAP_RESAMPLES = 2000


def paired_interval(before_right: np.ndarray, after_right: np.ndarray,
                    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float]:
    """Paired bootstrap interval of the accuracy change (after - before, 0..1 units): the
    same resampled examples are scored both ways, so only the flips vary."""
    diff = after_right.astype(np.float64) - before_right.astype(np.float64)
    if not diff.any():
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: of the gained + lost examples that changed
    rightness, how surprising this split is if either direction were equally likely."""
    from math import comb

    n, k = gained + lost, min(gained, lost)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


def ablate(model_id: str, heads_off: list[tuple[int, int]], examples: int = 200,
           dataset_id: str | None = None, sentence: str | None = None,
           max_tokens: int | None = None) -> Ablation:
    """Re-score the first `examples` test examples with the heads `heads_off` (original
    (layer, head) pairs) switched off, without retraining: their outputs are zeroed before the
    projection that mixes heads, as a head mask of 0 would. The model is the cached one; the
    sentence is read with the same token limit as the views (`max_tokens`)."""
    from engine.toolkit.data import load_dataset
    from engine.toolkit.evaluation import classification_metrics, predict

    loaded = load(model_id)
    dataset_id = dataset_id or loaded.dataset or "rotten-tomatoes"
    data = load_dataset(dataset_id)
    if data.num_labels != len(loaded.label_names):
        raise LabError(f"{model_id} predicts {len(loaded.label_names)} labels but {dataset_id} "
                       f"has {data.num_labels}; score it on the dataset it was trained on")
    examples = max(1, min(int(examples), len(data.test)))
    texts, labels = data.test.texts[:examples], data.test.labels[:examples]
    off = [(int(layer), int(h)) for layer, h in heads_off
           if 0 <= layer < loaded.layers and 0 <= h < loaded.heads and loaded.kept[layer, h]]
    limit = min(int(max_tokens or loaded.max_tokens), loaded.max_tokens)
    has_sentence = bool(sentence and sentence.strip())
    with model_lock:
        key = (dataset_id, examples)
        if key not in loaded.baselines:
            loaded.baselines[key] = predict(loaded.model, loaded.tokenizer, texts,
                                            loaded.eval_length, loaded.device)[0]
        base_preds = loaded.baselines[key]
        before = _one(loaded, sentence, limit) if has_sentence else None
        with _heads_switched_off(loaded, off):
            start = time.perf_counter()
            preds, _ = predict(loaded.model, loaded.tokenizer, texts, loaded.eval_length,
                               loaded.device)
            seconds = time.perf_counter() - start
            after = _one(loaded, sentence, limit) if has_sentence else None
    metrics = classification_metrics(labels, preds, data.num_labels)
    base = classification_metrics(labels, base_preds, data.num_labels)
    truth = np.asarray(labels)
    right_before, right_after = base_preds == truth, np.asarray(preds) == truth
    gained = int(np.sum(~right_before & right_after))
    lost = int(np.sum(right_before & ~right_after))
    return Ablation(model_id=model_id, dataset=dataset_id, examples=examples,
                    heads_off=len(off), baseline_accuracy=base["accuracy"],
                    accuracy=metrics["accuracy"], flipped=int(np.sum(preds != base_preds)),
                    sentence_before=before, sentence_after=after, seconds=seconds,
                    delta_ci=paired_interval(right_before, right_after),
                    p_value=mcnemar_exact(gained, lost), gained=gained, lost=lost)


def _one(loaded: Loaded, text: str, max_tokens: int) -> tuple[str, float]:
    from engine.toolkit.evaluation import predict

    pred, probs = predict(loaded.model, loaded.tokenizer, [text], max_tokens, loaded.device)
    label = int(pred[0])
    return loaded.label_names[label], float(probs[0, label])


class _heads_switched_off:
    """Context manager: forward pre-hooks that zero the chosen heads' slices of the input of
    each layer's head-mixing projection (original (layer, head) pairs)."""

    def __init__(self, loaded: Loaded, off: list[tuple[int, int]]):
        self.loaded, self.off, self.handles = loaded, off, []

    def __enter__(self) -> _heads_switched_off:
        import torch

        blocks = encoder_layers(self.loaded.model)
        d = self.loaded.head_dim
        for position, (layer, heads) in enumerate(zip(self.loaded.layer_index,
                                                      self.loaded.kept_heads)):
            slots = [heads.index(h) for (lay, h) in self.off if lay == layer and h in heads]
            if not slots:
                continue
            proj = _out_projection(blocks[position])
            mask = torch.ones(len(heads) * d, device=self.loaded.device)
            for slot in slots:
                mask[slot * d:(slot + 1) * d] = 0.0
            self.handles.append(proj.register_forward_pre_hook(
                lambda _mod, args, mask=mask: (args[0] * mask.to(args[0].dtype), *args[1:])))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()


def _out_projection(block):
    """The linear layer that mixes the heads' outputs (its input is [.., heads * head_dim])."""
    att = block.attention
    proj = getattr(getattr(att, "output", None), "dense", None) or getattr(att, "out_lin", None)
    if proj is None:
        raise LabError("this model's attention blocks have no output projection the lab "
                       "knows (BERT's attention.output.dense); heads cannot be switched off")
    return proj
