"""Artefact IQMs: entropy focus criterion, foreground-background energy ratio, QI1, ghost-to-signal ratio,
smoothness (FWHM), after MRIQC and AFNI."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

QI1_DISTANCE_MM = 10.0
QI1_ROBUST_SIGMAS = 4.0  # pure Rayleigh air exceeds it in 0.03 % of voxels, which the opening removes


def efc(image: np.ndarray) -> float:
    """Entropy of intensities normalised by the image energy, over its maximum (a uniform image): 1 for a
    uniform image, near 0 when the energy sits in few voxels (MRIQC's efc, no frame mask).

    >>> round(efc(np.ones((4, 4, 4))), 6), round(efc(np.pad(np.ones((2, 2, 2)), 3)), 3)
    (1.0, 0.042)
    """
    n = image.size

    def slabs():  # the non-zero magnitudes in float64, one slab at a time (no copy of the whole volume)
        return (np.abs(slab[slab != 0]).astype(np.float64) for slab in image)

    # ufunc sums, not np.dot: BLAS wakes its threads for each of the hundreds of slabs (seconds under load)
    energy = math.sqrt(sum(float(np.square(x).sum()) for x in slabs()))
    if energy <= 0:
        raise ValueError("empty image")
    entropy = sum(float((x / energy * np.log(x / energy)).sum()) for x in slabs() if x.size)
    e_max = n * (1 / math.sqrt(n)) * math.log(1 / math.sqrt(n))
    return entropy / e_max


def fber(head: np.ndarray, air: np.ndarray) -> float:
    """Median energy of the head over the median energy of the air (MRIQC's fber)."""
    background = float(np.median(air.astype(np.float64) ** 2))
    if background <= 0:
        raise ValueError("background energy is zero")
    return float(np.median(head.astype(np.float64) ** 2)) / background


def qi1(raw: np.ndarray, air: np.ndarray, zooms: tuple[float, ...]) -> float:
    """Share of air voxels, further than QI1_DISTANCE_MM from the head, that stand out from the air noise
    (median + 4 robust sigmas) after a 3D opening: artefactual signal in the background (Mortamet 2009)."""
    from flairqc_app.iqm.masks import erode, radius_in_voxels

    far = erode(air, radius_in_voxels(QI1_DISTANCE_MM, zooms))
    values = raw[far]
    if values.size == 0:
        raise ValueError("no air far from the head")
    median = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - median)))
    if spread <= 0:
        raise ValueError("the air has no spread")
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(far))
    bright = far[box] & (raw[box] > median + QI1_ROBUST_SIGMAS * spread)
    return float(ndimage.binary_opening(bright).sum()) / values.size


def ghost_to_signal(raw: np.ndarray, head: np.ndarray, air: np.ndarray, phase_axis: int) -> float:
    """(mean ghost - mean other air) / mean head; the ghost region is the head shifted by half the field of
    view along the phase-encoding axis, inside the air (MRIQC's gsr)."""
    ghost = np.roll(head, raw.shape[phase_axis] // 2, axis=phase_axis) & air
    rest = air & ~ghost
    if not ghost.any() or not rest.any():
        raise ValueError("no ghost region in the air")
    return (float(raw[ghost].mean()) - float(raw[rest].mean())) / float(raw[head].mean())


def fwhm(image: np.ndarray, mask: np.ndarray, zooms: tuple[float, ...]) -> tuple[float, float, float]:
    """FWHM (mm) of the spatial autocorrelation per axis, from var(first differences) / var(image) inside
    mask (AFNI 3dFWHMx classic): rho = 1 - var(d) / (2 var), FWHM = sqrt(-2 ln 2 / ln rho) voxels."""
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
    data, inside = image[box].astype(np.float32), mask[box]
    variance = float(np.var(data[inside], dtype=np.float64))
    if variance <= 0:
        raise ValueError("no variance in the mask")
    widths = []
    for axis, zoom in enumerate(zooms[:3]):
        lead = [slice(None)] * 3
        tail = [slice(None)] * 3
        lead[axis], tail[axis] = slice(1, None), slice(None, -1)
        both = inside[tuple(lead)] & inside[tuple(tail)]
        diff = (data[tuple(lead)] - data[tuple(tail)])[both]
        rho = 1 - float(np.var(diff, dtype=np.float64)) / (2 * variance)
        if not 0 < rho < 1:
            raise ValueError(f"autocorrelation {rho:.3f} out of range along axis {axis}")
        widths.append(math.sqrt(-2 * math.log(2) / math.log(rho)) * zoom)
    return widths[0], widths[1], widths[2]
