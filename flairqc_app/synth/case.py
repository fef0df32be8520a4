"""One labelled image: draw a subject and an acquisition, render its kind (kinds.py), scale like a scanner.

Image formation order follows the physics: tissue contrast (and contrast failures) -> receive bias ->
k-space motion -> complex thermal noise -> magnitude (head.py) -> integer storage. Every draw comes from one
seeded generator, so a seed gives the same image bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np

from flairqc_app.config import ARTEFACTS
from flairqc_app.synth import anatomy as anat
from flairqc_app.synth import artefacts, geometry, randomise
from flairqc_app.synth.contrasts import draw_levels
from flairqc_app.synth.kinds import KINDS, Scene
from flairqc_app.synth.labels import MISSING, gen_fields
from flairqc_app.synth.params import (
    CONTRAST_MODE_WEIGHTS,
    CONTRAST_MODES,
    INTEGER_DTYPES,
    REJECT_REASONS,
    UINT8_MAX,
    Range,
)
from flairqc_app.synth.sidecar import draw_scanner, sidecar

MODALITIES = ("FLAIR", "T1w")


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


def _to_integer(
    data: np.ndarray, rng: np.random.Generator, target: Range, dtype: str | None = None
) -> tuple[np.ndarray, dict[str, object]]:
    """Scale the 99.9th percentile (or the maximum of sparse images) to a drawn value, round to a drawn dtype
    (or to `dtype`)."""
    drawn = INTEGER_DTYPES[int(rng.integers(len(INTEGER_DTYPES)))]
    dtype = dtype or drawn
    top = (UINT8_MAX if dtype == "uint8" and target.hi > UINT8_MAX.hi else target).draw(rng)
    reference = float(np.percentile(data[::5], 99.9)) or float(data.max()) or 1.0
    scaled = np.clip(np.rint(data * (top / reference)), 0, np.iinfo(dtype).max).astype(dtype)
    return scaled, {"dtype": dtype, "intensity_max": round(top, 1)}


def render_case(
    seed: int,
    modality: str = "FLAIR",
    motion: int = 0,
    noise: int = 0,
    contrast: int = 0,
    reject: str | None = None,
    config: SynthConfig = SynthConfig(),
    subject_seed: int | None = None,
    with_tissue: bool = False,
    contrast_mode: str | None = None,
) -> Case:
    """Render one image with its labels and sidecar; `subject_seed` shares anatomy and scanner across images.

    contrast_mode (FLAIR only): "gm_wm", "csf" (incomplete CSF suppression) or "both"; None draws it.
    """
    grades = (motion, noise, contrast)
    _check(modality, grades, reject)
    kind = KINDS[reject]
    rng = np.random.default_rng(seed)
    subject_rng = np.random.default_rng(subject_seed) if subject_seed is not None else rng
    anatomy = anat.draw_anatomy(subject_rng, config.lesions)
    scanner = draw_scanner(subject_rng)
    sequence = kind.sequence or modality
    acq = geometry.draw_acquisition(rng, kind.grid or config.grid)
    pose = geometry.draw_pose(rng)
    levels = draw_levels(rng, sequence)
    if contrast_mode is None:
        contrast_mode = (
            str(rng.choice(CONTRAST_MODES, p=CONTRAST_MODE_WEIGHTS)) if sequence == "FLAIR" else "gm_wm"
        )
    rand = (
        randomise.draw(seed, config.presentation, config.pathology)
        if config.randomise and modality == "FLAIR" and reject is None
        else None
    )
    if rand is not None:  # drawn from its own stream: the draws above are the unrandomised image's
        levels, acq = rand.levels, randomise.acquisition(acq, rand)
        pose = randomise.template_pose() if randomise.registered(rand) else pose
        anatomy = randomise.with_pathology_lesions(anatomy, rand)
    params: dict[str, object] = {
        "seed": seed,
        "subject_seed": subject_seed,
        "sequence": sequence,
        **acq.summary(),
        **pose.summary(),
        **anatomy.summary(),
        **{f"level_{k}": round(levels[k], 4) for k in ("csf", "gm", "wm", "lesion", "fat")},
        "manufacturer": scanner.manufacturer,
        "model": scanner.model,
        "field_strength_t": scanner.field_t,
    }
    want_tissue = with_tissue or kind.needs_tissue or rand is not None
    scene = Scene(
        seed,
        acq,
        pose,
        anatomy,
        levels,
        scanner.field_t,
        grades,
        contrast_mode,
        config.motion_grading,
        config.zero_background,
        want_tissue,
        with_tissue,
        rand,
    )
    rendered = kind.render(rng, scene, params)
    data, affine, tissue, params = rendered.data, rendered.affine, rendered.tissue, rendered.params
    if rand is not None:
        data, affine, tissue = randomise.present(data, affine, tissue, rand)
        params.update(rand.summary())
    as_float = rand is not None and randomise.stores_as_float(rand)
    as_uint8 = rand is not None and randomise.stores_as_uint8(rand)
    probability_map = params.get("segmentation_kind") in ("gm", "wm")
    if config.integer and data.dtype.kind == "f" and not probability_map and not as_float:
        data, scaling = _to_integer(data, rng, rendered.integer_max, "uint8" if as_uint8 else None)
        params.update(scaling)
    else:
        params["dtype"] = str(data.dtype)
    if rand is not None and randomise.registered(rand):  # a registered image is stored as its template: RAS
        ornt = nib.orientations.ornt_transform(
            nib.orientations.io_orientation(affine), nib.orientations.axcodes2ornt("RAS")
        )
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
    labels = {
        "modality": modality,
        "straight_reject": int(reject is not None),
        "reject_reason": reject or MISSING,
        **{name: grade if kind.graded else MISSING for name, grade in zip(ARTEFACTS, grades)},
        **gen_fields(params),
    }
    return Case(
        image,
        labels,
        sidecar(rng, scanner, modality, acq.mr_acquisition_type),
        tissue if with_tissue else None,
    )


def generate_case(
    rng_or_seed: np.random.Generator | int,
    modality: str = "FLAIR",
    motion: int = 0,
    noise: int = 0,
    contrast: int = 0,
    reject: str | None = None,
    config: SynthConfig = SynthConfig(),
    subject_seed: int | None = None,
) -> tuple[nib.Nifti1Image, dict[str, object]]:
    """(image, labels) of one synthetic case. A Generator is used only to draw the case seed (gen_seed), so
    the labels always hold the integer that regenerates the image."""
    seed = (
        int(rng_or_seed.integers(2**63)) if isinstance(rng_or_seed, np.random.Generator) else int(rng_or_seed)
    )
    case = render_case(seed, modality, motion, noise, contrast, reject, config, subject_seed)
    return case.image, case.labels
