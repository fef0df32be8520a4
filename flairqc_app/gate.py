"""Input gate: cheap checks that an image can be, and deserves to be, preprocessed.

A broken file (unreadable, truncated, impossible geometry, NaN) is `failed`; a readable image that is not
a 3D FLAIR of the whole brain (2D acquisition, too few slices, constant, small field of view) is
`skipped` and counted as a straight reject by the gate. Every reason is a code documented in README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from flairqc_app.config import GATE_LIMITS, GateLimits

# code -> (status, one-line meaning); README.md lists the same table
REASONS: dict[str, tuple[str, str]] = {
    "unreadable": ("failed", "the file cannot be opened as NIfTI or its data are truncated"),
    "degenerate_affine": ("failed", "the voxel-to-world affine is singular or not finite"),
    "non_finite": ("failed", "the image contains NaN or infinite values"),
    "not_3d": ("skipped", "not a 3D volume (2D, or 4D with more than one volume)"),
    "constant_intensity": ("skipped", "all voxels have (nearly) the same value: no image content"),
    "too_few_slices": ("skipped", "fewer voxels than a whole-brain 3D acquisition has along some axis"),
    "voxel_size_out_of_range": ("skipped", "a voxel size is outside the range of brain MRI"),
    "acquisition_2d": ("skipped", "thick slices or strongly anisotropic voxels: a 2D acquisition, not a 3D FLAIR"),
    "sidecar_2d": ("skipped", "the sidecar says MRAcquisitionType is 2D"),
    "small_field_of_view": ("skipped", "the field of view is too small to hold the whole brain"),
    "preprocessing_error": ("failed", "N4, registration or resampling raised an error (see the crash file)"),
    "inference_error": ("failed", "a model could not be run on the image (see the crash file)"),
    "too_large": ("failed",
                  "processing the image would need more memory than allowed (--mem); checked from its header"),
    "sidecar_invalid": ("failed", "a JSON sidecar of the image is not a JSON object in UTF-8"),
    "worker_died": ("failed", "the worker process ended while processing the image (killed, out of memory)"),
}


@dataclass
class GateResult:
    status: str  # ok | skipped | failed
    reason: str | None = None
    detail: str | None = None
    image: nib.Nifti1Image | None = None  # 3D float32 image, loaded once, for preprocessing and the report
    geometry: dict[str, Any] = field(default_factory=dict)  # voxel_size_x.., dim_x.. for the output row


class GateFailure(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def check_image(path: Path, metadata: dict[str, Any], limits: GateLimits = GATE_LIMITS) -> GateResult:
    """Load the image and return its first blocking problem (with all problems in the detail)."""
    geometry: dict[str, Any] = {}
    try:
        img = load_3d(path, geometry)
    except GateFailure as exc:
        return GateResult(REASONS[exc.reason][0], exc.reason, exc.detail, None, geometry)
    problems = content_problems(np.asanyarray(img.dataobj)) + geometry_problems(img, limits) + sidecar_problems(metadata)
    if not problems:
        return GateResult("ok", image=img, geometry=geometry)
    reason = problems[0][0]
    detail = "; ".join(text for _, text in problems)
    return GateResult(REASONS[reason][0], reason, detail, img, geometry)


def load_3d(path: Path, geometry: dict[str, Any]) -> nib.Nifti1Image:
    """Read header and data fully (a truncated file fails here, not in N4); squeeze a single-volume 4D."""
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise GateFailure("unreadable", f"cannot read {path.name}: {type(exc).__name__}: {exc}") from exc
    shape = data.shape
    geometry.update({f"dim_{a}": int(n) for a, n in zip("xyz", shape[:3])})
    if data.ndim == 4 and shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise GateFailure("not_3d", f"image shape {shape} is not a 3D volume")
    affine = img.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise GateFailure("degenerate_affine", f"affine {np.round(affine, 3).tolist()} is singular or not finite")
    zooms = nib.affines.voxel_sizes(affine)
    geometry.update({f"voxel_size_{a}": round(float(z), 4) for a, z in zip("xyz", zooms)})
    if not np.all(np.isfinite(data)):
        bad = int((~np.isfinite(data)).sum())
        raise GateFailure("non_finite", f"{bad} voxels are NaN or infinite")
    out = nib.Nifti1Image(data, affine)
    out.header.set_xyzt_units("mm", "sec")
    return out


def content_problems(data: np.ndarray) -> list[tuple[str, str]]:
    low, high = np.percentile(data, [1, 99.9])
    if high - low <= 1e-6 * max(abs(high), 1.0):
        return [("constant_intensity", f"99% of voxels lie between {low:g} and {high:g}")]
    return []


def geometry_problems(img: nib.Nifti1Image, limits: GateLimits) -> list[tuple[str, str]]:
    shape = img.shape
    zooms = nib.affines.voxel_sizes(img.affine)
    problems: list[tuple[str, str]] = []
    anisotropy = zooms.max() / zooms.min()
    if zooms.max() > limits.max_slice_thickness_3d_mm or anisotropy > limits.max_anisotropy_3d:
        problems.append(("acquisition_2d",
                         f"voxel size {np.round(zooms, 3).tolist()} mm (largest {zooms.max():.2f} mm, "
                         f"anisotropy {anisotropy:.1f}): a 2D acquisition, not a 3D FLAIR"))
    if min(shape) < limits.min_voxels_per_axis:
        problems.append(("too_few_slices", f"shape {shape}: an axis has fewer than {limits.min_voxels_per_axis} voxels"))
    if zooms.min() < limits.min_voxel_size_mm or zooms.max() > limits.max_voxel_size_mm:
        problems.append(("voxel_size_out_of_range",
                         f"voxel size {np.round(zooms, 3).tolist()} mm outside "
                         f"[{limits.min_voxel_size_mm}, {limits.max_voxel_size_mm}] mm"))
    extent = np.array(shape) * zooms
    if extent.min() < limits.min_field_of_view_mm:
        problems.append(("small_field_of_view",
                         f"field of view {np.round(extent, 1).tolist()} mm: below {limits.min_field_of_view_mm} mm"))
    return problems


def sidecar_problems(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    kind = str(metadata.get("MRAcquisitionType", "")).upper()
    if kind == "2D":
        return [("sidecar_2d", "the sidecar JSON says MRAcquisitionType is 2D")]
    return []
