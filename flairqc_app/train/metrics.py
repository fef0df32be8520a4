"""The paper's statistics: balanced accuracy, 95% bootstrap CI (1000 resamples), McNemar's test, confusion
matrix, and the decision threshold chosen on validation data. numpy/scipy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in y (= (sensitivity + specificity) / 2 for two classes)."""
    y, pred = np.asarray(y), np.asarray(pred)
    classes = np.unique(y)
    if classes.size == 0:
        return float("nan")
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def bootstrap_ci(
    y: np.ndarray, pred: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of the balanced accuracy over images resampled with replacement."""
    y, pred = np.asarray(y), np.asarray(pred)
    rng = np.random.default_rng(seed)
    values = [
        balanced_accuracy(y[idx], pred[idx]) for idx in rng.integers(0, len(y), size=(resamples, len(y)))
    ]
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class McNemar:
    n: int
    a_only: int  # images A classifies correctly and B does not
    b_only: int
    p_value: float  # exact two-sided binomial test on the discordant pairs


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> McNemar:
    """McNemar's exact test of two classifiers on the same images (paper 3.2)."""
    y = np.asarray(y)
    correct_a, correct_b = np.asarray(pred_a) == y, np.asarray(pred_b) == y
    a_only, b_only = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else float(stats.binomtest(a_only, discordant, 0.5).pvalue)
    return McNemar(len(y), a_only, b_only, p)


def confusion_matrix(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (np.asarray(y, dtype=int), np.asarray(pred, dtype=int)), 1)
    return counts


def best_threshold(y: np.ndarray, p_positive: np.ndarray) -> tuple[float, float]:
    """Threshold on the positive probability maximising the validation balanced accuracy, and that BA.

    Candidates are midpoints between sorted distinct probabilities (plus 0.5); ties go to the candidate
    closest to 0.5, so a validation set that cannot tell thresholds apart keeps the argmax rule.
    """
    y, p = np.asarray(y), np.asarray(p_positive, dtype=np.float64)
    distinct = np.unique(p)
    candidates = np.unique(np.concatenate([[0.5], (distinct[:-1] + distinct[1:]) / 2.0]))
    scores = np.array([balanced_accuracy(y, (p >= t).astype(int)) for t in candidates])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    choice = candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]]
    return float(choice), float(scores.max())
