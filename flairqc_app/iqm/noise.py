"""Noise IQMs: tissue SNR (MRIQC), Dietrich SNR from the air, and a robust noise sigma measured in tissue."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

# std of the air of a magnitude image, in units of the noise sigma
RAYLEIGH_STD = math.sqrt((4 - math.pi) / 2)
MAD_TO_SIGMA = 1.4826
# The 3D 6-neighbour Laplacian: flat and linear signal give 0, white noise of sigma gives sigma * sqrt(42).
LAPLACIAN = np.zeros((3, 3, 3), np.float32)
LAPLACIAN[1, 1, :] = LAPLACIAN[1, :, 1] = LAPLACIAN[:, 1, 1] = 1.0
LAPLACIAN[1, 1, 1] = -6.0
LAPLACIAN_NORM = float(np.sqrt((LAPLACIAN**2).sum()))


def snr(values: np.ndarray) -> float:
    """Mean over the sample standard deviation (MRIQC's snr).

    >>> round(snr(np.array([9.0, 11.0, 9.0, 11.0])), 6)
    8.660254
    """
    if values.size < 2:
        raise ValueError("fewer than two voxels")
    spread = float(np.std(values, ddof=1))
    if spread == 0:
        raise ValueError("the voxels have no spread")
    return float(np.mean(values)) / spread


def snr_dietrich(signal_mean: float, air: np.ndarray) -> float:
    """The signal over the noise sigma that the air's standard deviation implies (Rayleigh-corrected)."""
    sigma = float(np.std(air)) / RAYLEIGH_STD
    if sigma <= 0:
        raise ValueError("the air has no spread")
    return signal_mean / sigma


def laplacian_sigma(image: np.ndarray, mask: np.ndarray) -> float:
    """Noise sigma from the MAD of Laplacian responses inside mask (eroded by one voxel, so the kernel stays
    in; WM, the most uniform tissue): what edges and lesions are left, the median ignores (Immerkaer 1996)."""
    inner = ndimage.binary_erosion(mask)
    if inner.sum() < 100:
        raise ValueError("mask too small")
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in np.nonzero(inner))
    response = ndimage.convolve(image[box].astype(np.float32), LAPLACIAN, mode="nearest")[inner[box]]
    mad = float(np.median(np.abs(response - np.median(response))))
    return MAD_TO_SIGMA * mad / LAPLACIAN_NORM
