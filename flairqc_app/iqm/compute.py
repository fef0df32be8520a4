"""Compute every FLAIR IQM of one image from what preprocessing already has: the native image, the N4 bias
field and the affine to the template. A metric that cannot be computed is n/a with a reason; it never fails
the image (compute_iqms itself only raises for a programming error caught by the caller)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from flairqc_app.exceptions import NotAvailable
from flairqc_app.iqm import artefacts, bias, contrast, noise
from flairqc_app.iqm.definitions import IQM_COLUMNS, NOTES_COLUMN
from flairqc_app.iqm.masks import Masks, build_masks, native_labels

log = logging.getLogger("flairqc")
PHASE_AXES = {"i": 0, "j": 1, "k": 2}


@dataclass
class IqmResult:
    values: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(IQM_COLUMNS))
    notes: dict[str, str] = field(default_factory=dict)

    def row(self) -> dict[str, float | str | None]:
        """TSV cells: one per IQM plus iqm_notes ('column: reason; ...', None when all were computed)."""
        notes = "; ".join(f"{column}: {reason}" for column, reason in self.notes.items())
        return {**self.values, NOTES_COLUMN: notes or None}

    def attempt(self, columns: Sequence[str], compute: Callable[[], float | Sequence[float]]) -> None:
        try:
            result = compute()
            numbers = [float(result)] if isinstance(result, float) else [float(v) for v in result]
            if len(numbers) != len(columns) or not all(np.isfinite(numbers)):
                raise ValueError(f"not {len(columns)} finite numbers: {numbers}")
            self.values.update(zip(columns, numbers))
        except NotAvailable as reason:
            self.notes.update(dict.fromkeys(columns, str(reason)))
        except Exception as exc:  # a failing metric is n/a with its reason; the image goes on
            log.debug("IQM %s failed", columns, exc_info=True)
            self.notes.update(dict.fromkeys(columns, f"failed ({type(exc).__name__}: {exc})"[:160]))


def failed_row(reason: str) -> dict[str, float | str | None]:
    """Every IQM n/a, for when the whole computation broke (the image's verdict stands)."""
    return IqmResult(notes={"all IQMs": f"failed ({reason})"[:300]}).row()


def native_array(img: nib.Nifti1Image) -> np.ndarray:
    """The first volume as float32, negative values clamped (as preprocess.to_ants, whose array order the
    bias field has)."""
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    return np.clip(data, 0, None, out=data if data.flags.writeable else None)


def phase_axis(metadata: dict) -> int:
    direction = str(metadata.get("PhaseEncodingDirection") or "").strip().rstrip("-")
    if direction not in PHASE_AXES:
        raise NotAvailable("no PhaseEncodingDirection in the sidecar")
    return PHASE_AXES[direction]


def needs_air(masks: Masks) -> None:
    if masks.air_zeroed:
        raise NotAvailable("background zeroed (skull-stripped or air masked)")


def compute_iqms(
    img: nib.Nifti1Image, bias_field: np.ndarray | None, transform: Path, metadata: dict | None = None
) -> IqmResult:
    """All IQMs of one image; `bias_field` is the N4 field on the native grid, `transform` the affine
    (template <- subject) that preprocessing wrote."""
    result = IqmResult()
    raw = native_array(img)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    labels = native_labels(raw.shape, img.affine, transform)
    if bias_field is not None and bias_field.shape == raw.shape:
        corrected = np.divide(raw, bias_field, out=raw.copy(), where=bias_field > 1e-6, dtype=np.float32)
    else:
        corrected = raw
    masks = build_masks(raw, corrected, labels, zooms)
    fill(result, raw, corrected, bias_field, masks, zooms, metadata or {})
    return result


def fill(
    result: IqmResult,
    raw: np.ndarray,
    corrected: np.ndarray,
    bias_field: np.ndarray | None,
    masks: Masks,
    zooms: tuple[float, ...],
    metadata: dict,
) -> None:
    gm, wm = corrected[masks.gm], corrected[masks.wm]

    def air_mask() -> np.ndarray:
        needs_air(masks)
        return masks.air

    def field_in_brain() -> np.ndarray:
        if bias_field is None:
            raise NotAvailable("no N4 bias field")
        return bias_field[masks.brain]

    result.attempt(["iqm_snr_wm"], lambda: noise.snr(wm))
    result.attempt(["iqm_snr_brain"], lambda: (noise.snr(gm) + noise.snr(wm)) / 2)
    result.attempt(
        ["iqm_snrd_wm"], lambda: noise.snr_dietrich(float(np.mean(raw[masks.wm])), raw[air_mask()])
    )
    result.attempt(
        ["iqm_noise_tissue"], lambda: noise.laplacian_sigma(corrected, masks.wm) / float(np.median(wm))
    )
    result.attempt(["iqm_cnr"], lambda: contrast.cnr(gm, wm))
    result.attempt(["iqm_cjv"], lambda: contrast.cjv(gm, wm))
    result.attempt(["iqm_wm2max"], lambda: contrast.wm2max(wm, corrected[masks.head]))
    result.attempt(["iqm_efc"], lambda: artefacts.efc(raw))
    result.attempt(["iqm_fber"], lambda: artefacts.fber(raw[masks.head], raw[air_mask()]))
    result.attempt(["iqm_qi1"], lambda: artefacts.qi1(raw, air_mask(), zooms))
    result.attempt(
        ["iqm_gsr"], lambda: artefacts.ghost_to_signal(raw, masks.head, air_mask(), phase_axis(metadata))
    )

    def smoothness() -> list[float]:
        widths = artefacts.fwhm(corrected, masks.brain, zooms)
        return [*widths, sum(widths) / 3]

    result.attempt(["iqm_fwhm_x", "iqm_fwhm_y", "iqm_fwhm_z", "iqm_fwhm_avg"], smoothness)
    result.attempt(["iqm_inu_med", "iqm_inu_range"], lambda: bias.inu_stats(field_in_brain()))
    result.attempt(["iqm_wmh_fraction"], lambda: bias.wmh_fraction(masks.lesion, masks.gm, masks.wm))
