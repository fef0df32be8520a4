"""Every number of the synthetic data engine: anatomy variation, contrasts, grids, artefact grades, scanners.

All ranges live here so that the calibration sheet (docs/synthetic-data.md) documents one place, and so
that changing a grade changes the generator, the tests and the sheet together. Grade ranges leave a gap
between grades so that a label is never a coin toss on the boundary (paper section 2.3 definitions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Range:
    """A closed interval drawn uniformly; `lo == hi` is a constant."""

    lo: float
    hi: float

    def draw(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.lo, self.hi)) if self.hi > self.lo else float(self.lo)


# ---------------------------------------------------------------- tissue classes
# Brain classes come from the ICBM maps; the others are layers drawn around a smooth brain envelope.
TISSUE_LABELS = {"air": 0, "csf": 1, "gm": 2, "wm": 3, "lesion": 4, "head": 5}  # rendered tissue map codes

# Relative intensity of each class per sequence (before bias, noise and integer scaling). FLAIR: CSF nulled
# (up to a third of WM: the real 3D FLAIR of realdata-dev has ventricles at ~0.39 of WM and GM at 1.17 WM),
# WM darker than GM, lesions and fat bright. T1w: WM > GM > CSF, fat bright. T2w: CSF brightest. PD: flat.
# `gm` and `lesion` are ratios to `wm` (FLAIR, T2w, PD) so that the stated order holds whatever is drawn.
# FLAIR scalp (fat, marrow, skin) reaches down to WM level: the real 3D FLAIR's scalp peaks at 0.70 of the
# [0, 1] registered scale where bright fat at 1.5-2x WM saturated it (attempt 4 read the real, dimmer and
# softer scalp as motion blur: docs/model-history.md#attempt-4).
SEQUENCE_INTENSITIES: dict[str, dict[str, Range]] = {
    "FLAIR": {
        "wm": Range(0.50, 0.62),
        "gm": Range(1.12, 1.45),
        "csf": Range(0.03, 0.16),
        "lesion": Range(1.45, 1.80),
        "bone": Range(0.02, 0.05),
        "marrow": Range(0.30, 0.85),
        "soft": Range(0.20, 0.40),
        "fat": Range(0.40, 1.10),
        "skin": Range(0.30, 0.60),
    },
    "T1w": {
        "wm": Range(0.78, 0.92),
        "gm": Range(0.58, 0.70),
        "csf": Range(0.10, 0.20),
        "lesion": Range(0.55, 0.70),
        "bone": Range(0.02, 0.05),
        "marrow": Range(0.70, 0.95),
        "soft": Range(0.30, 0.42),
        "fat": Range(0.95, 1.15),
        "skin": Range(0.45, 0.65),
    },
    "T2w": {
        "wm": Range(0.32, 0.42),
        "gm": Range(1.30, 1.55),
        "csf": Range(0.95, 1.05),
        "lesion": Range(1.90, 2.30),
        "bone": Range(0.02, 0.05),
        "marrow": Range(0.40, 0.60),
        "soft": Range(0.20, 0.30),
        "fat": Range(0.55, 0.75),
        "skin": Range(0.30, 0.45),
    },
    "PD": {
        "wm": Range(0.58, 0.66),
        "gm": Range(1.15, 1.25),
        "csf": Range(0.85, 0.95),
        "lesion": Range(1.25, 1.40),
        "bone": Range(0.03, 0.06),
        "marrow": Range(0.60, 0.80),
        "soft": Range(0.45, 0.55),
        "fat": Range(0.80, 0.95),
        "skin": Range(0.50, 0.65),
    },
}
RATIO_TO_WM = {"FLAIR": ("gm", "lesion"), "T1w": ("lesion",), "T2w": ("gm", "lesion"), "PD": ("gm", "lesion")}
# T1w lesions are a ratio to WM below 1 (hypointense), drawn from "lesion" above.


# ---------------------------------------------------------------- anatomy (per subject)
@dataclass(frozen=True)
class AnatomyRanges:
    """Per-subject variation of the head, in mm unless stated."""

    elastic_mm: Range = Range(0.5, 3.0)  # largest smooth elastic displacement
    elastic_spacing_mm: float = 24.0  # control-point spacing of the elastic field
    # Individual cortex: the ICBM maps average 152 brains, so their sulci are blurred away. Per subject, the tissue
    # fractions are sharpened (p**k renormalised, k = 1 keeps the average), folded by a fine elastic field, and
    # given a fine multiplicative texture (real tissue is not flat; attempt 3 of the default models rejected a
    # real 3D FLAIR that looks nothing like the smooth average: docs/model-history.md#attempt-3).
    sharpness: Range = Range(1.0, 4.0)
    fine_elastic_mm: Range = Range(0.3, 1.5)
    fine_elastic_spacing_mm: float = 4.0
    texture: Range = Range(0.01, 0.06)  # relative standard deviation of the tissue texture
    texture_sigma_mm: float = 1.0
    # half-width of the ramps between head layers (real scalp is not crisp)
    layer_edge_mm: Range = Range(0.6, 2.0)
    ventricle_mm: Range = Range(0.0, 6.0)  # atrophy-like outward push at the ventricle wall
    lesion_probability: float = 0.4
    lesion_count: tuple[int, int] = (1, 25)
    lesion_radius_mm: Range = Range(1.5, 6.0)
    csf_rim_mm: Range = Range(1.0, 3.0)  # extra-axial CSF between brain envelope and skull
    inner_table_mm: Range = Range(1.2, 2.2)
    diploe_mm: Range = Range(1.5, 4.0)
    outer_table_mm: Range = Range(1.2, 2.2)
    skin_mm: Range = Range(0.8, 1.5)
    subcutaneous_fat_mm: Range = Range(1.5, 4.5)


ANATOMY = AnatomyRanges()
HEAD_SHELL_MM = 15.0  # scalp outer surface distance from the brain envelope in the template model
NECK_PAD_MM = 60  # slices added below the ICBM grid to hold the neck and cord
COIL_COVERAGE_MM = (-125.0, -65.0)  # head-coil sensitivity falls from 1 (upper) to 0.1 (lower z, RAS mm)


# ---------------------------------------------------------------- pose and grid
@dataclass(frozen=True)
class PoseRanges:
    """Head position in the scanner: rotation about the head centre, size, offset from the FOV centre."""

    rotation_deg: tuple[Range, Range, Range] = (Range(-10, 10), Range(-8, 8), Range(-6, 6))  # about x, y, z
    scale: Range = Range(0.90, 1.10)
    anisotropy: Range = Range(-0.03, 0.03)  # per-axis scale deviation
    translation_mm: Range = Range(-10, 10)


POSE = PoseRanges()
HEAD_CENTRE_MM = (0.0, -18.0, 5.0)  # RAS world position of the head centre in the template


@dataclass(frozen=True)
class GridSpec:
    """An acquisition grid: voxel size (read, phase, slice) and field of view, and its plane."""

    name: str
    voxel_mm: tuple[Range, Range, Range]
    fov_mm: tuple[Range, Range, Range]
    planes: tuple[str, ...]
    mr_acquisition_type: str


GRIDS = {
    "1mm": GridSpec(
        "1mm",
        (Range(1, 1), Range(1, 1), Range(1, 1)),
        (Range(230, 256), Range(220, 250), Range(160, 190)),
        ("sagittal", "sagittal", "axial"),
        "3D",
    ),
    "2mm": GridSpec(
        "2mm",
        (Range(2, 2), Range(2, 2), Range(2, 2)),
        (Range(230, 256), Range(220, 250), Range(160, 190)),
        ("sagittal", "sagittal", "axial"),
        "3D",
    ),
    "2d": GridSpec(
        "2d",
        (Range(0.7, 1.0), Range(0.7, 1.0), Range(3.0, 6.0)),
        (Range(220, 240), Range(200, 230), Range(140, 170)),
        ("axial", "axial", "sagittal"),
        "2D",
    ),
}
COARSE_STEP_MM = 8.0  # spacing of the coarse grid on which smooth fields are computed, then upsampled
PARTIAL_VOLUME_SIGMA_VOX = 0.5  # Gaussian point-spread blur after sampling


# ---------------------------------------------------------------- image formation
BIAS_AMPLITUDE = {1.5: Range(0.05, 0.15), 3.0: Range(0.10, 0.30)}  # half peak-to-peak of log bias field
BASELINE_SNR = Range(30.0, 50.0)  # foreground median / noise sigma of a grade-0 acquisition
INTEGER_MAX = Range(800.0, 4000.0)  # value the 99.9th percentile is scaled to
INTEGER_DTYPES = ("int16", "uint16", "uint8")  # uint8: exported or converted images, as the real 3D FLAIR
UINT8_MAX = Range(180.0, 250.0)  # 99.9th percentile of uint8 images (headroom below 255)
# air set to exactly 0 (scanner background suppression, converters, defacing)
ZERO_BACKGROUND_PROBABILITY = 0.35
BACKGROUND_MARGIN_MM = 3.0  # the zeroed air starts this far out from the head


# ---------------------------------------------------------------- artefact grades
@dataclass(frozen=True)
class MotionGrade:
    """Rigid head motion across k-space: `poses` distinct moved positions visited in `switches` pose changes
    (back and forth, like nodding or fidgeting); each move rotates and shifts by the drawn size (mm, degrees)."""

    poses: tuple[int, int]  # distinct moved positions (inclusive range)
    switches: tuple[int, int]  # pose changes during the acquisition (inclusive range)
    rotation_deg: Range
    translation_mm: Range
    visible: Range  # what shows (artefacts.motion_visibility), kept by motion_grading = "visible"


@dataclass(frozen=True)
class NoiseGrade:
    snr: Range  # foreground median / sigma of the complex Gaussian noise (magnitude is Rician)


@dataclass(frozen=True)
class ContrastGrade:
    """Grey/white contrast kept (1 = untouched) inside a region covering `region_fraction` of the head,
    `outside_residual` elsewhere; FLAIR CSF lifted to `csf_to_wm` of the WM level when suppression fails."""

    residual: Range
    region_fraction: Range
    outside_residual: Range
    csf_to_wm: Range


# Graded by displacement alone, what shows overlaps across grades: over 20 heads (1 mm), grade 1 showed 0.014-0.167
# (quartiles 0.056-0.096) and grade 2 0.019-0.277 (quartiles 0.081-0.162), 5 of 20 grade-2 images under grade 1's
# median, and the CI guard's grade-2 image (seed 90001) 0.040, as its grade-1 twin (0.038): when the pose held at
# the k-space centre takes most lines, a grade-2 plan shows as a grade 1 (benchmarks/bench_motion_grades.py). The
# visible bands keep the middle of each grade's spread, apart: grade 1 about its interquartile range, grade 2 from
# above grade 1's upper quartile.
MOTION_GRADES = {
    1: MotionGrade(
        poses=(1, 1),
        switches=(3, 6),
        rotation_deg=Range(2.0, 3.5),
        translation_mm=Range(2.0, 3.5),
        visible=Range(0.04, 0.10),
    ),
    2: MotionGrade(
        poses=(2, 3),
        switches=(6, 12),
        rotation_deg=Range(4.0, 8.0),
        translation_mm=Range(4.0, 8.0),
        visible=Range(0.12, 1.0),
    ),
}
MOTION_GRADINGS = ("displacement", "visible")  # how a motion plan earns its grade (artefacts.draw_moved)
MOTION_VISIBLE_DRAWS = 40  # plans drawn at most for one visible grade (each is kept with p ~ 0.5)
NOISE_GRADES = {
    0: NoiseGrade(snr=BASELINE_SNR),
    1: NoiseGrade(snr=Range(8.0, 14.0)),
    2: NoiseGrade(snr=Range(2.0, 3.5)),
}
# Grade 2 keeps at most 12 % of the GM/WM difference everywhere: GM/WM <= 1 + 0.12 x 0.45 = 1.054 from the
# most contrasted base (1.45), below the least contrasted grade 0 (1.12), so the grades never meet across
# images (attempt 4 allowed 25 %, up to 1.11, and graded a guard's grade 2 as 0).
CONTRAST_GRADES = {
    1: ContrastGrade(
        residual=Range(0.0, 0.25),
        region_fraction=Range(0.3, 0.6),
        outside_residual=Range(0.8, 1.0),
        csf_to_wm=Range(0.30, 0.50),
    ),
    2: ContrastGrade(
        residual=Range(0.0, 0.12),
        region_fraction=Range(1.0, 1.0),
        outside_residual=Range(0.0, 0.12),
        csf_to_wm=Range(0.75, 1.0),
    ),
}
CONTRAST_MODES = ("gm_wm", "csf", "both")  # FLAIR: which contrast fails; other sequences always gm_wm
CONTRAST_MODE_WEIGHTS = (0.7, 0.15, 0.15)

# Dataset plan: how the grades of an artefacted image are drawn (paper: contrast is the commonest).
ARTEFACT_WEIGHTS = {"motion": 0.25, "noise": 0.30, "contrast": 0.45}
ARTEFACT_COUNT_WEIGHTS = (0.7, 0.25, 0.05)  # one, two or three artefacts in one image
SEVERE_PROBABILITY = 0.5


# ---------------------------------------------------------------- domain randomisation (SynthConfig.randomise)
@dataclass(frozen=True)
class RandomisationRanges:
    """What flairqc_app/synth/randomise.py draws per randomised FLAIR (docs/synthetic-data.md, issue 31).

    FLAIR order holds whatever is drawn: GM and CSF are ratios to WM (CSF at most 0.45 of it, GM at least 1.06
    times it), lesions a ratio above 1 to GM. The engine's own ranges (SEQUENCE_INTENSITIES) sit inside these.
    """

    wm: Range = Range(0.30, 0.80)
    gm_to_wm: Range = Range(1.06, 1.60)
    csf_to_wm: Range = Range(0.00, 0.45)
    lesion_to_gm: Range = Range(1.08, 1.60)
    head_to_wm: dict[str, Range] = field(
        default_factory=lambda: {  # scalp classes as ratios to WM, dim to bright
            "bone": Range(0.0, 0.15),
            "marrow": Range(0.3, 1.8),
            "soft": Range(0.2, 1.0),
            "fat": Range(0.4, 2.0),
            "skin": Range(0.3, 1.4),
        }
    )
    gamma: tuple[float, float] = (0.6, 1.6)  # drawn log-uniform
    warp_knots: int = 6  # knots of the monotone histogram warp, ends fixed at 0 and 1
    # share of the inner knots' outputs drawn at random (sorted) rather than on the line
    warp_jitter: float = 0.5
    saturation_percentile: Range = Range(99.0, 100.0)  # voxels above it saturate
    clean_snr: Range = Range(18.0, 90.0)  # noise floor of a grade-0 image; grade 1 is SNR 8-14
    bias_amplitude: Range = Range(0.05, 0.40)
    in_plane_mm: Range = Range(0.8, 1.2)
    slice_mm: Range = Range(1.0, 2.0)  # anisotropic 3D reconstructions (box slice profile)
    crop_margin_mm: Range = Range(4.0, 20.0)  # kept round the brain by the cropped presentation
    winsorise_percentiles: tuple[float, float] = (0.5, 99.5)
    float_scale: Range = Range(0.5, 4.0)
    float_offset: Range = Range(-0.3, -0.02)  # added on the winsorised [0, 1] scale: CSF and air below zero
    presentation_weights: dict[str, float] = field(
        default_factory=lambda: {  # as acquired 3 in 10
            name: 3.0 if name == "as_acquired" else 1.0 for name in PRESENTATIONS
        }
    )
    heavy_lesion_count: tuple[int, int] = (40, 90)
    heavy_lesion_radius_mm: Range = Range(2.0, 7.0)
    oedema_radius_mm: Range = Range(14.0, 30.0)
    core_fraction: Range = Range(0.25, 0.6)
    oedema_to_lesion: Range = Range(0.85, 1.05)
    infarct_radius_mm: Range = Range(8.0, 20.0)
    cavity_fraction: Range = Range(0.6, 0.85)


# Each presentation is a sequence of steps (randomise.present); registered grids are the templates' 1 mm grids.
PRESENTATIONS = {
    "as_acquired": (),
    "skull_stripped": ("skull_stripped",),
    "registered_mni": ("mni",),
    "registered_sri24": ("sri24", "skull_stripped"),
    "cropped": ("cropped",),
    "float_n4": ("float_n4",),
    "uint8": ("uint8",),
    "mni_stripped_float": ("mni", "skull_stripped", "float_n4"),
}
REGISTERED_GRIDS = {"mni": (197, 233, 189), "sri24": (240, 240, 155)}  # (R, A, S) voxels at 1 mm
PATHOLOGIES = ("none", "tumour_oedema", "heavy_lesions", "infarct")
PATHOLOGY_WEIGHTS = (0.7, 0.1, 0.1, 0.1)
RANDOMISATION = RandomisationRanges()


# ---------------------------------------------------------------- straight rejects
REJECT_REASONS = (
    "wrong_contrast_t1w",
    "wrong_contrast_t2w",
    "wrong_contrast_pd",
    "segmentation",
    "truncated",
    "acquisition_2d",
    "near_empty",
    "noise_only",
    "non_brain",
)
TRUNCATION_FRACTION = Range(0.25, 0.45)  # share of the head extent cut away along one axis
PHANTOM_DIAMETER_MM = Range(150, 190)
PHANTOM_LENGTH_MM = Range(120, 150)


# ---------------------------------------------------------------- scanners and sidecars (seconds)
@dataclass(frozen=True)
class Scanner:
    manufacturer: str
    model: str
    field_t: float


SCANNERS = (
    Scanner("Siemens", "Skyra", 3.0),
    Scanner("Siemens", "Prisma_fit", 3.0),
    Scanner("Siemens", "Aera", 1.5),
    Scanner("Siemens", "Avanto_fit", 1.5),
    Scanner("GE", "DISCOVERY MR750", 3.0),
    Scanner("GE", "SIGNA Premier", 3.0),
    Scanner("GE", "Optima MR450w", 1.5),
    Scanner("Philips", "Ingenia", 3.0),
    Scanner("Philips", "Achieva", 1.5),
)
# EchoTime, InversionTime, RepetitionTime per sequence and acquisition type, plausible clinical values.
TIMINGS = {
    ("FLAIR", "3D"): {
        "EchoTime": Range(0.090, 0.400),
        "InversionTime": Range(1.60, 2.50),
        "RepetitionTime": Range(4.80, 8.00),
    },
    ("FLAIR", "2D"): {
        "EchoTime": Range(0.080, 0.140),
        "InversionTime": Range(2.20, 2.80),
        "RepetitionTime": Range(8.00, 11.00),
    },
    ("T1w", "3D"): {
        "EchoTime": Range(0.0025, 0.0045),
        "InversionTime": Range(0.80, 1.10),
        "RepetitionTime": Range(1.90, 2.40),
    },
    ("T1w", "2D"): {"EchoTime": Range(0.008, 0.015), "RepetitionTime": Range(0.40, 0.70)},
}
