"""Resample a preprocessed grid volume to a model's input shape, identically in training and inference.

A compact model may work at about 2 mm ([85, 104, 90] instead of the 1 mm 169x208x179 grid). Training
(`flairqc-train prepare`) and the BIDS-App both call `resize_to`, so a model sees at inference exactly the
interpolation it was trained on. numpy/scipy only: the BIDS-App imports it without torch.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def resize_to(volume: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear (order 1) resampling of a 3D volume to `shape` over the same field of view, float32.

    Corner voxels map to corner voxels (scipy.ndimage.zoom with grid_mode=False), so the first and last
    voxel centres of each axis are kept; a volume already at `shape` is returned unchanged (as float32).
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
