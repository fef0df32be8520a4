"""Bias and lesion IQMs: statistics of the N4 field that preprocessing estimated, and the WMH fraction."""

from __future__ import annotations

import numpy as np


def inu_stats(field: np.ndarray) -> tuple[float, float]:
    """Median of the bias field and its 5-95 percentile range over the median.

    >>> inu_stats(np.linspace(0.5, 1.5, 101))
    (1.0, 0.9)
    """
    low, median, high = np.percentile(field, [5, 50, 95])
    if median <= 0:
        raise ValueError("bias field is not positive")
    return float(median), round(float((high - low) / median), 12)


def wmh_fraction(lesion: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> float:
    parenchyma = int(lesion.sum() + gm.sum() + wm.sum())
    if parenchyma == 0:
        raise ValueError("no parenchyma")
    return float(lesion.sum()) / parenchyma
