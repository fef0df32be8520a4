"""Contrast IQMs between grey and white matter (FLAIR: GM brighter than WM), after MRIQC."""

from __future__ import annotations

import numpy as np

WM2MAX_PERCENTILE = 99.95


def cnr(gm: np.ndarray, wm: np.ndarray) -> float:
    """|mean GM - mean WM| / sqrt(var GM + var WM).

    >>> round(cnr(np.array([9.0, 11.0]), np.array([4.0, 6.0])), 3)
    3.536
    """
    spread = float(np.sqrt(np.var(gm) + np.var(wm)))
    if spread <= 0:
        raise ValueError("no spread in GM and WM")
    return abs(float(np.mean(gm)) - float(np.mean(wm))) / spread


def cjv(gm: np.ndarray, wm: np.ndarray) -> float:
    """(std WM + std GM) / |mean WM - mean GM| (Ganzetti 2016).

    >>> cjv(np.array([9.0, 11.0]), np.array([4.0, 6.0]))
    0.4
    """
    gap = abs(float(np.mean(wm)) - float(np.mean(gm)))
    if gap <= 0:
        raise ValueError("GM and WM have the same mean")
    return (float(np.std(wm)) + float(np.std(gm))) / gap


def wm2max(wm: np.ndarray, head: np.ndarray) -> float:
    """Median WM over the 99.95th percentile of the head."""
    top = float(np.percentile(head, WM2MAX_PERCENTILE))
    if top <= 0:
        raise ValueError("empty head")
    return float(np.median(wm)) / top
