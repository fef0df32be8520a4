"""One labelled image: draw a subject and an acquisition, render, degrade, scale like a scanner.

Image formation order follows the physics: tissue contrast (and contrast failures) -> receive bias ->
k-space motion -> complex thermal noise -> magnitude -> integer storage. Every draw comes from one seeded
generator, so a seed gives the same image bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import nibabel as nib
import numpy as np
from scipy import ndimage

from flairqc_app.config import ARTEFACTS
from flairqc_app.synth import anatomy as anat
from flairqc_app.synth import artefacts, fields, geometry, randomise, rejects
from flairqc_app.synth.contrasts import draw_levels
from flairqc_app.synth.labels import MISSING, gen_fields
from flairqc_app.synth.measures import foreground_mask, reference_signal
from flairqc_app.synth.params import (
    BACKGROUND_MARGIN_MM, BIAS_AMPLITUDE, CONTRAST_MODE_WEIGHTS, CONTRAST_MODES, INTEGER_DTYPES, INTEGER_MAX,
    PARTIAL_VOLUME_SIGMA_VOX, REJECT_REASONS, UINT8_MAX, ZERO_BACKGROUND_PROBABILITY, Range,
)
from flairqc_app.synth.sidecar import draw_scanner, sidecar

MODALITIES = ("FLAIR", "T1w")
WRONG_CONTRAST = {"wrong_contrast_t1w": "T1w", "wrong_contrast_t2w": "T2w", "wrong_contrast_pd": "PD"}
NO_HEAD_REJECTS = ("near_empty", "noise_only", "non_brain")
UNGRADED_REJECTS = ("segmentation",) + NO_HEAD_REJECTS  # grades are meaningless, written as n/a
NEAR_EMPTY_MAX = Range(5.0, 60.0)


@dataclass(frozen=True)
class SynthConfig:
    """Options of a generated image that are not its labels.

    grid: "1mm" (1 mm isotropic 3D), "2mm" (fast, for tests and CI), "2d" (3-6 mm slices; FLAIRs on it are
    straight rejects "acquisition_2d" when made by the dataset planner). lesions: force white-matter lesions
    on/off (None: drawn). reorient: store arrays in a random axis order. integer: int16/uint16/uint8 like scanners
    and converters. zero_background: air set to exactly 0 (None: drawn, ZERO_BACKGROUND_PROBABILITY).
    motion_grading: "displacement" (the grade sets the size of the moves) or "visible" (plans are redrawn until
    what shows lies in the grade's band; artefacts.draw_moved). randomise: domain randomisation of labelled FLAIRs
    that are not straight rejects (randomise.py; off: the engine of the 1.2.0 models, bit for bit), with
    `presentation` and `pathology` forcing those draws (None: drawn).
    """

    grid: str = "1mm"
    lesions: bool | None = None
    reorient: bool = True
    integer: bool = True
    zero_background: bool | None = None
    motion_grading: str = "displacement"
    randomise: bool = False
    presentation: str | None = None
    pathology: str | None = None

    def __post_init__(self) -> None:
        artefacts.check_motion_grading(self.motion_grading)
        if self.randomise:
            randomise.draw(0, self.presentation, self.pathology)  # refuses unknown names now, not per image


@dataclass(frozen=True)
class Case:
    image: nib.Nifti1Image
    labels: dict[str, object]
    sidecar: dict[str, object]
    tissue: np.ndarray | None  # TISSUE_LABELS codes on the stored grid, when asked for


def _check(modality: str, grades: tuple[int, int, int], reject: str | None) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, not {modality!r}")
    if any(g not in (0, 1, 2) for g in grades):
        raise ValueError(f"grades must be 0, 1 or 2, got {grades}")
    if reject is not None and reject not in REJECT_REASONS:
        raise ValueError(f"reject must be None or one of {REJECT_REASONS}, not {reject!r}")


def _acquire_head(anatomy: anat.Anatomy, levels: dict[str, float], acq: geometry.Acquisition,
                  pose: geometry.Pose, with_tissue: bool, rand: randomise.Randomisation | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Sample the subject's template image on the acquisition grid, with the slice profile and PSF blur."""
    image, labels, lesion_ml = anat.template_image(anatomy, levels, with_labels=with_tissue)
    if rand is not None:
        image = randomise.add_pathology(image, labels, levels, rand)
    per_slice = max(1, int(round(acq.voxel_mm[2])))
    sampling = acq.with_slices(per_slice) if per_slice > 1 else acq
    coords = geometry.template_coordinates(sampling, pose, anatomy, anat.head_model())
    clean = geometry.sample(image, coords)
    tissue = geometry.sample(labels, coords, order=0) if labels is not None else None
    if per_slice > 1:  # thick slice = mean of thin ones (box slice profile)
        clean = clean.reshape(*acq.shape, per_slice).mean(axis=3)
        tissue = tissue[..., per_slice // 2 :: per_slice] if tissue is not None else None
    return ndimage.gaussian_filter(clean, PARTIAL_VOLUME_SIGMA_VOX), tissue, lesion_ml


def _to_integer(data: np.ndarray, rng: np.random.Generator, target: Range, dtype: str | None = None
                ) -> tuple[np.ndarray, dict[str, object]]:
    """Scale the 99.9th percentile (or the maximum of sparse images) to a drawn value, round to a drawn dtype
    (or to `dtype`)."""
    drawn = INTEGER_DTYPES[int(rng.integers(len(INTEGER_DTYPES)))]
    dtype = dtype or drawn
    top = (UINT8_MAX if dtype == "uint8" and target.hi > UINT8_MAX.hi else target).draw(rng)
    reference = float(np.percentile(data[::5], 99.9)) or float(data.max()) or 1.0
    scaled = np.clip(np.rint(data * (top / reference)), 0, np.iinfo(dtype).max).astype(dtype)
    return scaled, {"dtype": dtype, "intensity_max": round(top, 1)}


def _background(data: np.ndarray, clean: np.ndarray, voxel_mm: tuple[float, float, float], seed: int,
                config: SynthConfig, params: dict[str, object]) -> np.ndarray:
    """Air kept noisy, or set to exactly 0 beyond BACKGROUND_MARGIN_MM of the object as by scanners' background
    suppression, converters and defacing (the real 3D FLAIR of realdata-dev is 48 % exact zeros). Drawn from
    its own stream, so the other draws of a seed stay what they were."""
    zero = config.zero_background
    if zero is None:
        zero = bool(np.random.default_rng([seed, 3]).random() < ZERO_BACKGROUND_PROBABILITY)
    params["zero_background"] = int(zero)
    if not zero:
        return data
    inside = ndimage.binary_fill_holes(foreground_mask(clean))
    steps = max(1, int(round(BACKGROUND_MARGIN_MM / min(voxel_mm))))  # at least the margin along every axis
    inside = ndimage.binary_dilation(inside, iterations=steps)
    return np.where(inside, data, 0.0).astype(data.dtype)


def _degrade(rng: np.random.Generator, clean: np.ndarray, levels: dict[str, float], acq: geometry.Acquisition,
             grades: tuple[int, int, int], contrast_mode: str, field_t: float,
             motion_grading: str = "displacement", rand: randomise.Randomisation | None = None
             ) -> tuple[np.ndarray, dict[str, object]]:
    """Contrast failure, bias, motion, Rician noise on a clean float image; returns magnitude and parameters.
    With `rand`, its bias amplitude and clean-image SNR, and its intensity warp after the bias."""
    motion, noise, contrast = grades
    params: dict[str, object] = {}
    plan = artefacts.draw_contrast(rng, contrast, contrast_mode)
    if plan is not None:
        clean = artefacts.reduce_contrast(clean, plan, levels)
        params.update(plan.summary())
    amplitude = BIAS_AMPLITUDE[field_t].draw(rng)
    amplitude = rand.bias_amplitude if rand is not None else amplitude
    clean = clean * fields.bias_field(rng, clean.shape, amplitude)
    if rand is not None:
        clean = randomise.warp_intensities(clean, rand)
    params["bias_amplitude"] = round(amplitude, 4)
    reference = reference_signal(clean)
    signal = clean
    if motion:
        signal, summary = artefacts.draw_moved(clean, motion, rng, acq.voxel_mm, motion_grading)
        params.update(summary)
    snr = artefacts.draw_snr(rng, noise)
    snr = rand.snr if rand is not None and noise == 0 else snr
    sigma = reference / snr if reference > 0 else 1.0
    params.update(snr=round(snr, 3), noise_sigma=round(sigma, 6))
    return artefacts.add_rician_noise(signal, sigma, rng), params


def render_case(seed: int, modality: str = "FLAIR", motion: int = 0, noise: int = 0, contrast: int = 0,
                reject: str | None = None, config: SynthConfig = SynthConfig(), subject_seed: int | None = None,
                with_tissue: bool = False, contrast_mode: str | None = None) -> Case:
    """Render one image with its labels and sidecar; `subject_seed` shares anatomy and scanner across images.

    contrast_mode (FLAIR only): "gm_wm", "csf" (incomplete CSF suppression) or "both"; None draws it.
    """
    grades = (motion, noise, contrast)
    _check(modality, grades, reject)
    rng = np.random.default_rng(seed)
    subject_rng = np.random.default_rng(subject_seed) if subject_seed is not None else rng
    anatomy = anat.draw_anatomy(subject_rng, config.lesions)
    scanner = draw_scanner(subject_rng)
    sequence = WRONG_CONTRAST.get(reject or "", modality)
    acq = geometry.draw_acquisition(rng, "2d" if reject == "acquisition_2d" else config.grid)
    pose = geometry.draw_pose(rng)
    levels = draw_levels(rng, sequence)
    if contrast_mode is None:
        contrast_mode = str(rng.choice(CONTRAST_MODES, p=CONTRAST_MODE_WEIGHTS)) if sequence == "FLAIR" else "gm_wm"
    rand = (randomise.draw(seed, config.presentation, config.pathology)
            if config.randomise and modality == "FLAIR" and reject is None else None)
    if rand is not None:  # drawn from its own stream: the draws above are the unrandomised image's
        levels, acq = rand.levels, randomise.acquisition(acq, rand)
        pose = randomise.template_pose() if randomise.registered(rand) else pose
        anatomy = randomise.with_pathology_lesions(anatomy, rand)
    params: dict[str, object] = {
        "seed": seed, "subject_seed": subject_seed, "sequence": sequence, **acq.summary(), **pose.summary(),
        **anatomy.summary(), **{f"level_{k}": round(levels[k], 4) for k in ("csf", "gm", "wm", "lesion", "fat")},
        "manufacturer": scanner.manufacturer, "model": scanner.model, "field_strength_t": scanner.field_t,
    }
    want_tissue = with_tissue or reject == "segmentation" or rand is not None
    tissue = None
    integer_max = INTEGER_MAX
    if reject in NO_HEAD_REJECTS:
        params = {k: v for k, v in params.items() if k in ("seed", "subject_seed", "manufacturer", "model",
                                                           "field_strength_t") or k in acq.summary()}
        params["sequence"] = MISSING
        if reject == "non_brain":
            clean, extra = rejects.phantom(rng, acq)
            data, degrade = _degrade(rng, clean, {"csf": 0.0, "wm": 1.0, "gm": 1.0}, acq, (0, 0, 0), "gm_wm",
                                     scanner.field_t)
            data = _background(data, clean, acq.voxel_mm, seed, config, params)
        elif reject == "noise_only":
            extra, data, degrade = {}, artefacts.add_rician_noise(np.zeros(acq.shape, np.float32), 1.0, rng), {}
        else:
            (data, extra), degrade, integer_max = rejects.near_empty(rng, acq.shape), {}, NEAR_EMPTY_MAX
        params.update(extra, **degrade)
        tissue = np.zeros(acq.shape, np.uint8) if with_tissue else None
    else:
        clean, tissue, lesion_ml = _acquire_head(anatomy, levels, acq, pose, want_tissue, rand)
        params["lesion_ml"] = round(lesion_ml, 3)
        if reject == "segmentation":
            kind = str(rng.choice(["labels", "gm", "wm"]))
            params["segmentation_kind"] = kind
            if kind == "labels":
                data = rejects.segmentation_labels(tissue)
            else:
                flat = replace(anatomy, texture=0.0)  # a probability map has no tissue texture
                data = _acquire_head(flat, rejects.probability_levels(kind), acq, pose, False)[0]
        else:
            data, degrade = _degrade(rng, clean, levels, acq, grades, contrast_mode, scanner.field_t,
                                     config.motion_grading, rand)
            params.update(degrade)
            data = _background(data, clean, acq.voxel_mm, seed, config, params)
        if reject == "truncated":
            axis, start, stop, fraction = rejects.truncation(rng, clean, acq)
            params.update(truncation_axis=axis, truncation_fraction=round(fraction, 3))
    affine = acq.affine
    if rand is not None:
        data, affine, tissue = randomise.present(data, affine, tissue, rand)
        params.update(rand.summary())
    if reject == "truncated":
        data, affine = geometry.crop(data, affine, axis, start, stop)
        tissue = geometry.crop(tissue, acq.affine, axis, start, stop)[0] if tissue is not None else None
    as_float = rand is not None and randomise.stores_as_float(rand)
    as_uint8 = rand is not None and randomise.stores_as_uint8(rand)
    probability_map = params.get("segmentation_kind") in ("gm", "wm")
    if config.integer and data.dtype.kind == "f" and not probability_map and not as_float:
        data, scaling = _to_integer(data, rng, integer_max, "uint8" if as_uint8 else None)
        params.update(scaling)
    else:
        params["dtype"] = str(data.dtype)
    if rand is not None and randomise.registered(rand):  # a registered image is stored as its template: RAS
        ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(affine),
                                               nib.orientations.axcodes2ornt("RAS"))
        data, affine = geometry.apply_storage(data, affine, ornt)
        tissue = geometry.apply_storage(tissue, np.eye(4), ornt)[0] if tissue is not None else None
    elif config.reorient:
        ornt = geometry.draw_storage(rng)
        data, affine = geometry.apply_storage(data, affine, ornt)
        tissue = geometry.apply_storage(tissue, np.eye(4), ornt)[0] if tissue is not None else None
    params["orientation"] = "".join(nib.aff2axcodes(affine))
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    ungraded = reject in UNGRADED_REJECTS
    labels = {"modality": modality, "straight_reject": int(reject is not None), "reject_reason": reject or MISSING,
              **{name: MISSING if ungraded else grade for name, grade in zip(ARTEFACTS, grades)},
              **gen_fields(params)}
    return Case(image, labels, sidecar(rng, scanner, modality, acq.mr_acquisition_type),
                tissue if with_tissue else None)


def generate_case(rng_or_seed: np.random.Generator | int, modality: str = "FLAIR", motion: int = 0, noise: int = 0,
                  contrast: int = 0, reject: str | None = None, config: SynthConfig = SynthConfig(),
                  subject_seed: int | None = None) -> tuple[nib.Nifti1Image, dict[str, object]]:
    """(image, labels) of one synthetic case. A Generator is used only to draw the case seed (gen_seed), so
    the labels always hold the integer that regenerates the image."""
    seed = int(rng_or_seed.integers(2**63)) if isinstance(rng_or_seed, np.random.Generator) else int(rng_or_seed)
    case = render_case(seed, modality, motion, noise, contrast, reject, config, subject_seed)
    return case.image, case.labels
