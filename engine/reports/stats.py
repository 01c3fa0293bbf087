"""Statistics on per-example predictions: bootstrap intervals (of an accuracy, and of the
DIFFERENCE of two accuracies on the same examples), McNemar's exact test, flipped examples and
the cost per million inferences. scipy is imported where a statistic needs it; no torch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def bootstrap_ci(correct: Sequence[int | bool], level: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy (the mean of per-example correctness).
    The percentile method stays defined when every example is right (BCa does not)."""
    from scipy.stats import bootstrap

    data = np.asarray(correct, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    res = bootstrap((data,), np.mean, n_resamples=n_resamples, confidence_level=level,
                    method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def difference_ci(correct_a: Sequence[int | bool], correct_b: Sequence[int | bool],
                  level: float = 0.95, n_resamples: int = 2000,
                  seed: int = 0) -> tuple[float, float, float]:
    """Accuracy of B minus accuracy of A on the same examples, with a paired percentile
    bootstrap interval (examples are redrawn together, so both runs see the same redraw):
    (difference, low, high), as fractions (x100 for points)."""
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    assert a.shape == b.shape, "a paired interval needs the same examples for both runs"
    if a.size == 0:
        return math.nan, math.nan, math.nan
    low, high = bootstrap_ci(b - a, level, n_resamples, seed)
    return float(np.mean(b - a)), low, high


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test on paired predictions: only the examples where exactly one run is
    right carry information; under "no difference" each such example is a fair coin."""

    only_a: int  # examples A got right and B got wrong
    only_b: int
    p_value: float
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def sentence(self, a: str, b: str) -> str:
        n = self.only_a + self.only_b
        verdict = "is larger than chance" if self.significant else "is not larger than chance"
        return (f"The difference between {a} and {b} {verdict} (McNemar exact test, p = "
                f"{self.p_value:.3g}): of {n} examples where they disagree on being right, "
                f"{a} wins {self.only_a} and {b} wins {self.only_b}.")


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool],
            alpha: float = 0.05) -> McNemar:
    """Two-sided exact McNemar test (a binomial test on the discordant pairs)."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    assert a.shape == b.shape, "McNemar needs the same examples for both runs"
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(binomtest(min(only_a, only_b), n, 0.5).pvalue)
    return McNemar(only_a, only_b, p, alpha)


def paired(preds_a: dict[str, list], preds_b: dict[str, list]) -> pd.DataFrame:
    """Two runs' predictions joined on the example index (inner join), one row per example."""
    cols = ["idx", "label", "pred", "confidence"]
    a = pd.DataFrame({c: preds_a[c] for c in cols})
    b = pd.DataFrame({c: preds_b[c] for c in cols})
    return a.merge(b, on="idx", suffixes=("_a", "_b"))


def flips(preds_a: dict[str, list], preds_b: dict[str, list],
          texts: Sequence[str] | None = None,
          label_names: Sequence[str] | None = None) -> pd.DataFrame:
    """The examples whose prediction changed between run A and run B, with both confidences
    and the true label; the most confident wrong answers first."""
    both = paired(preds_a, preds_b)
    changed = both[both["pred_a"] != both["pred_b"]].copy()
    changed["right"] = np.where(changed["pred_a"] == changed["label_a"], "A",
                                np.where(changed["pred_b"] == changed["label_a"], "B", "neither"))
    changed["wrong_confidence"] = np.where(changed["right"] == "A", changed["confidence_b"],
                                           changed["confidence_a"])

    def name(i: int) -> str:
        return label_names[i] if label_names is not None and 0 <= i < len(label_names) else str(i)

    out = pd.DataFrame({
        "idx": changed["idx"],
        "text": [texts[i] if texts is not None and i < len(texts) else "" for i in changed["idx"]],
        "label": [name(i) for i in changed["label_a"]],
        "pred_a": [name(i) for i in changed["pred_a"]], "confidence_a": changed["confidence_a"],
        "pred_b": [name(i) for i in changed["pred_b"]], "confidence_b": changed["confidence_b"],
        "right": changed["right"], "wrong_confidence": changed["wrong_confidence"],
    })
    return out.sort_values("wrong_confidence", ascending=False, kind="stable").reset_index(
        drop=True)


def cost_per_million(throughput_per_s: float | None, price_per_hour: float) -> float | None:
    """Dollars per million inferences for a machine kept busy at the measured throughput."""
    if not throughput_per_s or throughput_per_s <= 0:
        return None
    return price_per_hour / (throughput_per_s * 3600.0) * 1e6
