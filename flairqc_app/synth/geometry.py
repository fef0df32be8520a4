"""Where the head sits in the scanner and how the scanner samples it: pose, acquisition grid, storage order.

One coordinate field maps every acquisition voxel to the template (grid affine, inverse head pose, smooth
elastic and ventricle displacement); it is computed on a coarse grid and upsampled, and the template image
is then sampled once (trilinear), which is the single expensive resampling of a head.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from flairqc_app.synth import fields
from flairqc_app.synth.anatomy import Anatomy, HeadModel
from flairqc_app.synth.params import ANATOMY, COARSE_STEP_MM, GRIDS, HEAD_CENTRE_MM, POSE, PoseRanges

# Acquisition axes (read, phase, slice) as RAS unit vectors, per plane.
PLANES = {
    "sagittal": np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=float),
    "axial": np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=float),
}


@dataclass(frozen=True)
class Acquisition:
    """An acquisition grid; array axes are (read, phase, slice)."""

    grid: str
    plane: str
    voxel_mm: tuple[float, float, float]
    shape: tuple[int, int, int]
    mr_acquisition_type: str

    @property
    def affine(self) -> np.ndarray:
        """Voxel index to RAS mm, centred on the nominal head centre."""
        axes = PLANES[self.plane].T * np.asarray(self.voxel_mm)
        centre_idx = (np.asarray(self.shape) - 1) / 2.0
        affine = np.eye(4)
        affine[:3, :3] = axes
        affine[:3, 3] = np.asarray(HEAD_CENTRE_MM) - axes @ centre_idx
        return affine

    def with_slices(self, per_slice: int) -> Acquisition:
        """The same field of view with each slice split into `per_slice` thinner ones (slice profile)."""
        vox = (self.voxel_mm[0], self.voxel_mm[1], self.voxel_mm[2] / per_slice)
        return Acquisition(
            self.grid, self.plane, vox, (*self.shape[:2], self.shape[2] * per_slice), self.mr_acquisition_type
        )

    def summary(self) -> dict[str, str]:
        return {
            "grid": self.grid,
            "plane": self.plane,
            "voxel_mm": "x".join(f"{v:.2f}" for v in self.voxel_mm),
            "shape": "x".join(map(str, self.shape)),
            "mr_acquisition_type": self.mr_acquisition_type,
        }


def draw_acquisition(rng: np.random.Generator, grid: str) -> Acquisition:
    spec = GRIDS[grid]
    plane = spec.planes[int(rng.integers(len(spec.planes)))]
    voxel = tuple(round(r.draw(rng), 2) for r in spec.voxel_mm)
    shape = tuple(int(round(f.draw(rng) / v)) for f, v in zip(spec.fov_mm, voxel))
    return Acquisition(grid, plane, voxel, shape, spec.mr_acquisition_type)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Pose:
    """Rigid-plus-scale position of the head: world = centre + t + R S (template - centre)."""

    rotation_deg: tuple[float, float, float]
    scale: tuple[float, float, float]
    translation_mm: tuple[float, float, float]

    @property
    def matrix(self) -> np.ndarray:
        """4x4 template-world to scanner-world transform."""
        linear = rotation_matrix(self.rotation_deg) @ np.diag(self.scale)
        centre = np.asarray(HEAD_CENTRE_MM)
        out = np.eye(4)
        out[:3, :3] = linear
        out[:3, 3] = centre + np.asarray(self.translation_mm) - linear @ centre
        return out

    def summary(self) -> dict[str, float]:
        keys = ("x", "y", "z")
        return {
            **{f"rot_{k}_deg": round(v, 3) for k, v in zip(keys, self.rotation_deg)},
            **{f"scale_{k}": round(v, 4) for k, v in zip(keys, self.scale)},
            **{f"trans_{k}_mm": round(v, 3) for k, v in zip(keys, self.translation_mm)},
        }


def rotation_matrix(degrees: tuple[float, float, float]) -> np.ndarray:
    """Rotation about x, then y, then z (degrees)."""
    ax, ay, az = np.deg2rad(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def draw_pose(rng: np.random.Generator, ranges: PoseRanges = POSE) -> Pose:
    size = ranges.scale.draw(rng)
    return Pose(
        rotation_deg=tuple(r.draw(rng) for r in ranges.rotation_deg),  # type: ignore[arg-type]
        scale=tuple(size * (1.0 + ranges.anisotropy.draw(rng)) for _ in range(3)),  # type: ignore[arg-type]
        translation_mm=tuple(ranges.translation_mm.draw(rng) for _ in range(3)),
    )  # type: ignore[arg-type]


def _elastic(anatomy: Anatomy, model: HeadModel, spacing_mm: float) -> np.ndarray:
    """(3, ...) smooth random displacement (template voxels) on a coarse template grid, peak norm elastic_mm."""
    rng = np.random.default_rng(anatomy.elastic_seed)
    shape = tuple(int(np.ceil(n / spacing_mm)) + 1 for n in model.shape)
    disp = np.stack([fields.smooth_noise(rng, shape, 1.0) for _ in range(3)])
    return disp * (anatomy.elastic_mm / max(float(np.linalg.norm(disp, axis=0).max()), 1e-6))


def template_coordinates(acq: Acquisition, pose: Pose, anatomy: Anatomy, model: HeadModel) -> np.ndarray:
    """(3, *acq.shape) float32 template voxel coordinates sampled by each acquisition voxel."""
    to_template = np.linalg.inv(model.affine) @ np.linalg.inv(pose.matrix) @ acq.affine
    axes = fields.coarse_axes(acq.shape, tuple(COARSE_STEP_MM / v for v in acq.voxel_mm))
    idx = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(3, -1)
    points = to_template[:3, :3] @ idx + to_template[:3, 3:4]
    spacing = ANATOMY.elastic_spacing_mm
    elastic = _elastic(anatomy, model, spacing)
    disp = np.stack([ndimage.map_coordinates(e, points / spacing, order=3, mode="nearest") for e in elastic])
    step = model.push_axes[0][1]
    push = np.stack(
        [ndimage.map_coordinates(p, points / step, order=1, mode="nearest") for p in model.ventricle_push]
    )
    source = (points + disp + anatomy.ventricle_mm * push).reshape(3, *(a.size for a in axes))
    return np.stack([fields.upsample(c, axes, acq.shape) for c in source]) + _fine_elastic(anatomy, acq)


def _fine_elastic(anatomy: Anatomy, acq: Acquisition) -> np.ndarray:
    """(3, *acq.shape) fine random displacement (template mm ~ voxels), peak norm fine_elastic_mm: it folds the
    sharpened cortex at the scale of gyri, which the coarse elastic field and the averaged template lack."""
    if anatomy.fine_elastic_mm <= 0.0:
        return np.zeros((3, *acq.shape), np.float32)
    rng = np.random.default_rng([anatomy.fine_seed, 2])
    axes = fields.coarse_axes(acq.shape, tuple(ANATOMY.fine_elastic_spacing_mm / v for v in acq.voxel_mm))
    knots = rng.standard_normal((3, *(a.size for a in axes))).astype(np.float32)
    knots *= anatomy.fine_elastic_mm / max(float(np.linalg.norm(knots, axis=0).max()), 1e-6)
    return np.stack([fields.upsample(k, axes, acq.shape) for k in knots])


def sample(volume: np.ndarray, coords: np.ndarray, order: int = 1) -> np.ndarray:
    """Sample a template-space volume at template voxel coordinates (zero outside)."""
    return ndimage.map_coordinates(volume, coords, order=order, mode="constant", cval=0.0, prefilter=False)


def draw_storage(rng: np.random.Generator) -> np.ndarray:
    """A random axis order and direction (nibabel orientation array), as scanners and converters store data."""
    return np.column_stack([rng.permutation(3), rng.choice([-1.0, 1.0], size=3)])


def apply_storage(data: np.ndarray, affine: np.ndarray, ornt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder the array by `ornt` and return the affine that keeps every voxel at the same world position."""
    stored = np.ascontiguousarray(nib.orientations.apply_orientation(data, ornt))
    return stored, affine @ nib.orientations.inv_ornt_aff(ornt, data.shape)


def crop(
    data: np.ndarray, affine: np.ndarray, axis: int, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep indices start..stop-1 along `axis` (a smaller field of view), with the matching affine."""
    index = [slice(None)] * 3
    index[axis] = slice(start, stop)
    shift = np.eye(4)
    shift[axis, 3] = start
    return np.ascontiguousarray(data[tuple(index)]), affine @ shift
