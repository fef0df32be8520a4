"""Image measures: the foreground used to set noise levels, and the artefact strengths the tests check.

The foreground definition is shared by the noise artefact (SNR is foreground median / sigma) and by the
SNR estimate, so a requested SNR and a measured one mean the same thing.
"""

from __future__ import annotations

import numpy as np

from flairqc_app.synth.params import TISSUE_LABELS

FOREGROUND_FRACTION = 0.15  # of the robust maximum (99th percentile)


def foreground_mask(volume: np.ndarray) -> np.ndarray:
    """Voxels above FOREGROUND_FRACTION of the 99th percentile: the head, without air."""
    magnitude = np.abs(volume)
    robust_max = float(np.percentile(magnitude[::7], 99.0)) if magnitude.size > 7 else float(magnitude.max())
    return magnitude > FOREGROUND_FRACTION * robust_max


def reference_signal(volume: np.ndarray) -> float:
    """Median foreground magnitude: the signal of an SNR."""
    mask = foreground_mask(volume)
    return float(np.median(np.abs(volume)[mask])) if mask.any() else 0.0


def rician_sigma(air: np.ndarray) -> float:
    """Noise sigma from pure-noise magnitude voxels: E[M^2] = 2 sigma^2 for Rayleigh-distributed air."""
    return float(np.sqrt(np.mean(np.square(air.astype(np.float64))) / 2.0))


def snr(volume: np.ndarray, tissue: np.ndarray) -> float:
    """Brain median / sigma estimated in air at least a few voxels from the head (labels from the render)."""
    brain = np.isin(tissue, [TISSUE_LABELS[k] for k in ("csf", "gm", "wm", "lesion")])
    return float(np.median(volume[brain])) / max(rician_sigma(volume[air_mask(tissue)]), 1e-9)


def air_mask(tissue: np.ndarray, margin: int = 4) -> np.ndarray:
    """Air voxels, excluding a margin around the head along every axis (partial volume, blur)."""
    from scipy import ndimage

    return ~ndimage.binary_dilation(tissue > 0, iterations=margin)


def gm_wm_contrast(volume: np.ndarray, tissue: np.ndarray) -> float:
    """|GM - WM| / mean(GM, WM) of the tissue medians: 0 when grey and white matter look the same."""
    gm = float(np.median(volume[tissue == TISSUE_LABELS["gm"]]))
    wm = float(np.median(volume[tissue == TISSUE_LABELS["wm"]]))
    return abs(gm - wm) / max((gm + wm) / 2.0, 1e-9)


def ghost_ratio(volume: np.ndarray, tissue: np.ndarray) -> float:
    """Mean air magnitude over brain median: motion ghosts and ringing spread signal into the air."""
    brain = tissue == TISSUE_LABELS["wm"]
    return float(np.mean(volume[air_mask(tissue)])) / max(float(np.median(volume[brain])), 1e-9)
