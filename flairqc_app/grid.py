"""The output grid every preprocessed image lands on, and the numpy helpers that work on it.

Clinica's 169x208x179 1 mm box in MNI space (config.GRID_*): preprocess.py registers onto it with ANTs;
inference, the reports and training only read images already on it, so they import this module, not ANTs.
`resize_to` is the one resampling to a model's input shape, identical in training and inference.
"""

from __future__ import annotations

from functools import lru_cache

import nibabel as nib
import numpy as np
from scipy import ndimage

from flairqc_app import config


def grid_affine() -> np.ndarray:
    """Voxel -> RAS mm of the output grid: identity direction, GRID_SPACING_MM, GRID_ORIGIN_RAS_MM (config).

    >>> grid_affine()[:, 3].tolist()
    [-84.0, -119.0, -78.0, 1.0]
    """
    affine = np.eye(4)
    affine[:3, :3] *= config.GRID_SPACING_MM
    affine[:3, 3] = config.GRID_ORIGIN_RAS_MM
    return affine


def clip_and_scale(volume: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Clip to the given percentiles of the whole volume, then scale to [0, 1] (paper, section 2.2).

    >>> clip_and_scale(np.arange(5.0), (25.0, 75.0)).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    low, high = np.percentile(volume, percentiles)
    if high <= low:
        return np.zeros_like(volume, dtype=np.float32)
    return ((np.clip(volume, low, high) - low) / (high - low)).astype(np.float32)


def resize_to(volume: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear (order 1) resampling of a 3D volume to `shape` over the same field of view, float32.

    A compact model may work at about 2 mm ([85, 104, 90] instead of the 1 mm grid); training and the
    BIDS-App both call this, so a model sees at inference exactly the interpolation it was trained on. Corner
    voxels map to corner voxels (scipy.ndimage.zoom with grid_mode=False), so the first and last voxel centres
    of each axis are kept; a volume already at `shape` is returned unchanged (as float32).

    >>> resize_to(np.arange(8.0).reshape(2, 2, 2), (3, 2, 2))[:, 0, 0].tolist()
    [0.0, 2.0, 4.0]
    """
    target = tuple(int(n) for n in shape)
    if volume.ndim != 3 or len(target) != 3:
        raise ValueError(f"resize_to needs a 3D volume and a 3D shape, got {volume.shape} -> {target}")
    data = np.asarray(volume, dtype=np.float32)
    if data.shape == target:
        return data
    factors = [t / s for t, s in zip(target, data.shape)]
    out = ndimage.zoom(data, factors, order=1, mode="nearest", grid_mode=False)
    if out.shape != target:  # zoom rounds the output shape; never observed for these factors, but be exact
        raise ValueError(f"resize_to produced {out.shape}, expected {target}")
    return out.astype(np.float32, copy=False)


def voxel_offset(affine: np.ndarray) -> np.ndarray:
    """Where the output grid's voxel (0, 0, 0) falls in an image whose voxels coincide with the grid's.

    >>> voxel_offset(grid_affine()).tolist()
    [0, 0, 0]
    """
    offset = np.linalg.solve(affine, grid_affine())
    if not np.allclose(offset[:3, :3], np.eye(3)) or not np.allclose(offset[:3, 3], np.round(offset[:3, 3])):
        raise ValueError("the image's voxels do not coincide with the output grid's")
    return np.round(offset[:3, 3]).astype(int)


def on_grid(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The image on the output grid when their voxels coincide (nearest neighbour is a copy); 0 outside."""
    start = voxel_offset(affine)
    out = np.zeros(config.GRID_SHAPE, dtype=data.dtype)
    low = np.maximum(start, 0)
    high = np.minimum(start + np.array(config.GRID_SHAPE), data.shape[:3])
    source = tuple(slice(a, b) for a, b in zip(low, high))
    target = tuple(slice(a - s, b - s) for a, b, s in zip(low, high, start))
    out[target] = data[source]
    return out


@lru_cache(maxsize=1)
def template_brain_mask() -> np.ndarray:
    """The template brain mask on the output grid (bool, RAS array order)."""
    mask = nib.load(config.BRAIN_MASK)
    brain = on_grid(np.asarray(mask.dataobj, dtype=np.float32), mask.affine) > 0.5
    brain.flags.writeable = False  # shared by every caller through the cache
    return brain
