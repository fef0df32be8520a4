"""Measure registration accuracy against a known answer: move an image by a known world-space affine,
register it, and compare the recovered transform with the truth over the template brain.

Test and benchmark code (tests/test_preprocess.py, tests/test_iqms.py, benchmarks/bench_preprocess.py), not
part of the package.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from flairqc_app import config
from flairqc_app.grid import template_brain_mask
from flairqc_app.synth.geometry import rotation_matrix

LPS = np.array([-1.0, -1.0, 1.0])  # ITK transforms work in LPS coordinates


def world_map(
    degrees: tuple[float, float, float], shift_mm: tuple[float, float, float], scale: float = 1.0
) -> np.ndarray:
    """A world-to-world affine A; the moved image shows, at world point x, the source image at A x."""
    a = np.eye(4)
    a[:3, :3] = rotation_matrix(degrees) * scale
    a[:3, 3] = shift_mm
    return a


def move_image(img: nib.Nifti1Image, a: np.ndarray, shape=(180, 210, 170), spacing=1.1) -> nib.Nifti1Image:
    """`img` moved by A, sampled on an LAS grid of another resolution centred on the origin."""
    affine = np.diag([-spacing, spacing, spacing, 1.0])
    affine[:3, 3] = np.array([1.0, -1.0, -1.0]) * (np.array(shape) - 1) * spacing / 2
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    source = np.linalg.inv(img.affine) @ a @ np.vstack([world, np.ones((1, world.shape[1]))])
    data = ndimage.map_coordinates(np.asarray(img.dataobj, np.float32), source[:3], order=1)
    return nib.Nifti1Image(data.reshape(shape).astype(np.float32), affine)


def brain_points(step: int = 40) -> np.ndarray:
    """RAS world coordinates of every step-th voxel of the template brain mask on the output grid."""
    return np.argwhere(template_brain_mask())[::step].astype(float) + np.array(config.GRID_ORIGIN_RAS_MM)


def map_points(transform: Path, points_ras: np.ndarray) -> np.ndarray:
    """Template-space points mapped into the subject's world space by an antsRegistration affine."""
    import ants

    tx = ants.read_transform(str(transform))
    return np.array([tx.apply_to_point(tuple(p * LPS)) for p in points_ras]) * LPS


def alignment_error(transform: Path, a: np.ndarray, points_ras: np.ndarray | None = None) -> np.ndarray:
    """Distance (mm), per brain point, between where the transform sends it and where A says it should go."""
    points = brain_points() if points_ras is None else points_ras
    expected = (np.linalg.inv(a) @ np.c_[points, np.ones(len(points))].T).T[:, :3]
    return np.linalg.norm(map_points(transform, points) - expected, axis=1)
