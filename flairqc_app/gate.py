"""Input gate: cheap checks that an image can be, and deserves to be, preprocessed.

A broken file (unreadable, truncated, impossible geometry, NaN) is `failed`; a readable image that is not
a 3D FLAIR of the whole brain (2D acquisition, too few slices, constant, small field of view) is
`skipped` and counted as a straight reject by the gate. Every reason is a code of schema.GATE_REASONS,
documented in README.md. The limits are config.GateLimits, overridden by a `--gate-config` JSON file
(read_gate_limits) and recorded in every row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from flairqc_app.config import GATE_LIMITS, GateLimits
from flairqc_app.exceptions import GateConfigError, GateFailure
from flairqc_app.schema import GATE_REASONS


@dataclass
class GateResult:
    status: str  # ok | skipped | failed
    reason: str | None = None
    detail: str | None = None
    image: nib.Nifti1Image | None = None  # 3D float32 image, loaded once, for preprocessing and the report
    geometry: dict[str, Any] = field(default_factory=dict)  # voxel_size_x.., dim_x.. for the output row


def check_image(path: Path, metadata: dict[str, Any], limits: GateLimits = GATE_LIMITS) -> GateResult:
    """Load the image and return its first blocking problem (with all problems in the detail)."""
    geometry: dict[str, Any] = {}
    try:
        img = load_3d(path, geometry)
    except GateFailure as exc:
        return GateResult(GATE_REASONS[exc.reason][0], exc.reason, exc.detail, None, geometry)
    problems = (
        sidecar_problems(metadata)
        + content_problems(np.asanyarray(img.dataobj))
        + geometry_problems(img, metadata, limits)
    )
    if not problems:
        return GateResult("ok", image=img, geometry=geometry)
    reason = problems[0][0]
    detail = "; ".join(text for _, text in problems)
    return GateResult(GATE_REASONS[reason][0], reason, detail, img, geometry)


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
        raise GateFailure(
            "degenerate_affine", f"affine {np.round(affine, 3).tolist()} is singular or not finite"
        )
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


def geometry_problems(
    img: nib.Nifti1Image, metadata: dict[str, Any], limits: GateLimits
) -> list[tuple[str, str]]:
    shape = img.shape
    zooms = nib.affines.voxel_sizes(img.affine)
    if zooms.min() < limits.min_voxel_size_mm or zooms.max() > limits.max_voxel_size_mm:
        # the other checks would only repeat this one in other words (a 1e12 mm pixdim is no "2D acquisition")
        return [
            (
                "voxel_size_out_of_range",
                f"voxel size {_mm(zooms)} mm outside [{limits.min_voxel_size_mm:g}, {limits.max_voxel_size_mm:g}] "
                "mm: not a brain MRI, or the header's pixdim/affine is wrong",
            )
        ]
    problems = acquisition_problems(tuple(float(z) for z in zooms), metadata, limits)
    if min(shape) < limits.min_voxels_per_axis:
        problems.append(
            ("too_few_slices", f"shape {shape}: an axis has fewer than {limits.min_voxels_per_axis} voxels")
        )
    extent = np.array(shape) * zooms
    if extent.min() < limits.min_field_of_view_mm:
        problems.append(
            (
                "small_field_of_view",
                f"field of view {np.round(extent, 1).tolist()} mm: below {limits.min_field_of_view_mm} mm",
            )
        )
    return problems


def acquisition_problems(
    zooms: Sequence[float], metadata: dict[str, Any], limits: GateLimits = GATE_LIMITS
) -> list[tuple[str, str]]:
    """Voxels too coarse, or a 2D acquisition: from the sidecar first, then the slice thickness, never the voxel ratio.

    >>> acquisition_problems((0.47, 0.47, 1.2), {}), acquisition_problems((1, 1, 1.9), {"MRAcquisitionType": "3D"})
    ([], [])
    >>> [reason for reason, _ in acquisition_problems((1, 1, 1.9), {})]
    ['acquisition_2d']
    >>> [reason for reason, _ in acquisition_problems((1, 1, 1), {"SliceThickness": 5})]
    ['acquisition_2d']
    >>> [reason for reason, _ in acquisition_problems((3, 3, 3), {"MRAcquisitionType": "3D"})]
    ['voxels_too_coarse']
    """
    in_plane = sorted(zooms)[1]
    if in_plane > limits.max_in_plane_mm:
        return [
            (
                "voxels_too_coarse",
                f"voxel size {_mm(zooms)} mm: even the finer axes are coarser than "
                f"{limits.max_in_plane_mm:g} mm, too coarse to grade",
            )
        ]
    said_3d = str(metadata.get("MRAcquisitionType", "")).upper() == "3D"
    limit = limits.max_slice_thickness_3d_mm if said_3d else limits.max_slice_thickness_mm
    thickness, source = max(zooms), f"voxel size {_mm(zooms)} mm"
    stated = _positive(metadata.get("SliceThickness"))
    if stated is not None and stated > thickness:
        thickness, source = stated, "sidecar SliceThickness"
    problems = []
    if thickness > limit:
        allowed = "a 3D FLAIR" if said_3d else "a FLAIR whose sidecar does not say MRAcquisitionType 3D"
        problems.append(
            (
                "acquisition_2d",
                f"{thickness:g} mm slices ({source}), thicker than the {limit:g} mm of "
                f"{allowed}: a 2D acquisition, not a 3D FLAIR",
            )
        )
    spacing = _positive(metadata.get("SpacingBetweenSlices"))
    if (
        not said_3d
        and stated is not None
        and spacing is not None
        and spacing - stated > limits.max_slice_gap_mm
    ):
        problems.append(
            (
                "acquisition_2d",
                f"sidecar SpacingBetweenSlices {spacing:g} mm > SliceThickness "
                f"{stated:g} mm: gaps between slices, a 2D acquisition",
            )
        )
    return problems


def _positive(value: Any) -> float | None:
    """A sidecar number, or None when absent, not a number or not positive."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        return None
    return float(value)


def _mm(zooms: Sequence[float]) -> str:
    """Voxel sizes as a reader wants them: `_mm((0.4688, 1, 1e12))` is '[0.4688, 1, 1e+12]'."""
    return "[" + ", ".join(f"{z:.4g}" for z in zooms) + "]"


def sidecar_problems(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    kind = str(metadata.get("MRAcquisitionType", "")).upper()
    if kind == "2D":
        return [("sidecar_2d", "the sidecar JSON says MRAcquisitionType is 2D")]
    return []


def read_gate_limits(path: Path) -> GateLimits:
    """`--gate-config`: a JSON object overriding some GateLimits fields, e.g. {"max_slice_thickness_3d_mm": 2.5}."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GateConfigError(f"cannot read the gate config {path}: {exc}") from exc
    if not isinstance(payload, dict):
        raise GateConfigError(f"{path}: expected a JSON object {{limit: value}}")
    known = asdict(GATE_LIMITS)
    unknown = sorted(set(payload) - set(known))
    if unknown:
        raise GateConfigError(f"{path}: unknown gate limit(s) {unknown}; known: {sorted(known)}")
    for key, value in payload.items():
        whole = isinstance(known[key], int)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
            or (whole and value != int(value))
        ):
            raise GateConfigError(
                f"{path}: {key} must be a positive {'integer' if whole else 'number'}, not {value!r}"
            )
    return replace(GATE_LIMITS, **{k: type(known[k])(v) for k, v in payload.items()})


def describe_limits(limits: GateLimits) -> str:
    """The limits as one TSV cell, recorded in every row.

    >>> describe_limits(GATE_LIMITS).split(";")[:2]
    ['min_voxels_per_axis=24', 'min_voxel_size_mm=0.2']
    """
    return ";".join(f"{key}={value:g}" for key, value in asdict(limits).items())
