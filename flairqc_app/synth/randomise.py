"""Domain randomisation of synthetic FLAIRs (issue 31): wide contrasts, resolutions and presentations, same labels.

Models trained on the engine's narrow FLAIRs rejected real skull-stripped, pre-registered and float FLAIRs and read
unseen real heads as degraded. After SynthSeg and Agitation, `SynthConfig(randomise=True)` draws, per labelled
FLAIR that is not a straight reject, from its own stream (so the engine's other draws of a seed stay the same):

- intensity and contrast: per-class levels over wide ranges that keep FLAIR's order (CSF dark, GM above WM,
  lesions above GM), a monotone histogram warp (gamma and jittered knots), saturation of the brightest voxels, a
  stronger bias field and a clean-image noise floor anywhere from a noisy to a quiet scanner (above grade 1's SNR);
- resolution: voxels of 0.8-1.2 mm in plane and 1-2 mm slices (anisotropic 3D reconstructions, with their
  box slice profile and blur);
- presentation (`PRESENTATIONS`): as acquired, skull-stripped, on the MNI or SRI24 grid (template pose, RAS
  storage), cropped to the brain, float after N4 and winsorising (air below zero), uint8 export, and the MS-like
  combination of skull-stripped, MNI and float;
- pathology (`PATHOLOGIES`): tumour with oedema, heavy white-matter lesion load, an old infarct.

None of these is an artefact: the labels stay as planned (a clean image is a pass with grades 0), and an artefact
drawn for the image is applied before the presentation, so it shows on every presentation. Straight rejects and
T1w images are not randomised: a T2w's bright CSF or a label map stay what makes them rejects. Ranges live in
params (RANDOMISATION); docs/synthetic-data.md documents them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from flairqc_app.synth import geometry
from flairqc_app.synth.anatomy import Anatomy, _ball_weights, head_model
from flairqc_app.synth.params import (
    PATHOLOGIES,
    PATHOLOGY_WEIGHTS,
    PRESENTATIONS,
    RANDOMISATION,
    REGISTERED_GRIDS,
    TISSUE_LABELS,
)

STREAM = 7  # the randomisation's own generator: default_rng([seed, STREAM])
BRAIN_CODES = [TISSUE_LABELS[c] for c in ("csf", "gm", "wm", "lesion")]


@dataclass(frozen=True)
class Randomisation:
    """Everything drawn for one image; `levels` are FLAIR class intensities (params.SEQUENCE_INTENSITIES keys)."""

    levels: dict[str, float]
    gamma: float
    warp: tuple[float, ...]  # output values at evenly spaced input knots of [0, 1], increasing from 0 to 1
    saturation_percentile: float
    snr: float  # of a clean image (noise grade 0)
    bias_amplitude: float
    voxel_mm: tuple[float, float, float]
    presentation: str
    pathology: str
    crop_margin_mm: float
    float_scale: float
    float_offset: float
    seed: int

    def steps(self) -> tuple[str, ...]:
        return PRESENTATIONS[self.presentation]

    def summary(self) -> dict[str, object]:
        return {
            "presentation": self.presentation,
            "pathology": self.pathology,
            "intensity_gamma": round(self.gamma, 3),
        }


def draw(seed: int, presentation: str | None = None, pathology: str | None = None) -> Randomisation:
    """The randomisation of the image of case seed `seed`; `presentation` and `pathology` force those draws."""
    for name, value, known in (
        ("presentation", presentation, PRESENTATIONS),
        ("pathology", pathology, PATHOLOGIES),
    ):
        if value is not None and value not in known:
            raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(known)}")
    r = RANDOMISATION
    rng = np.random.default_rng([seed, STREAM])
    wm = r.wm.draw(rng)
    gm = wm * r.gm_to_wm.draw(rng)
    levels = {
        "wm": wm,
        "gm": gm,
        "csf": wm * r.csf_to_wm.draw(rng),
        "lesion": gm * r.lesion_to_gm.draw(rng),
        **{name: wm * span.draw(rng) for name, span in r.head_to_wm.items()},
    }
    steps = np.sort(rng.uniform(0, 1, r.warp_knots - 2))
    warp = tuple(
        np.r_[
            0.0, (1 - r.warp_jitter) * np.linspace(0, 1, r.warp_knots)[1:-1] + r.warp_jitter * steps, 1.0
        ].round(4)
    )
    drawn_presentation = str(
        rng.choice(list(PRESENTATIONS), p=_weights(r.presentation_weights, PRESENTATIONS))
    )
    drawn_pathology = str(rng.choice(PATHOLOGIES, p=PATHOLOGY_WEIGHTS))
    return Randomisation(
        levels=levels,
        gamma=float(np.exp(rng.uniform(*np.log(r.gamma)))),
        warp=warp,
        saturation_percentile=r.saturation_percentile.draw(rng),
        snr=r.clean_snr.draw(rng),
        bias_amplitude=r.bias_amplitude.draw(rng),
        voxel_mm=(r.in_plane_mm.draw(rng),) * 2 + (r.slice_mm.draw(rng),),  # type: ignore[arg-type]
        presentation=presentation or drawn_presentation,
        pathology=pathology or drawn_pathology,
        crop_margin_mm=r.crop_margin_mm.draw(rng),
        float_scale=r.float_scale.draw(rng),
        float_offset=r.float_offset.draw(rng),
        seed=int(rng.integers(2**31)),
    )


def _weights(weights: dict[str, float], names) -> np.ndarray:
    w = np.array([weights[n] for n in names], float)
    return w / w.sum()


# ---------------------------------------------------------------- acquisition
def acquisition(acq: geometry.Acquisition, rand: Randomisation) -> geometry.Acquisition:
    """The drawn voxel size (times the grid's own: a 2 mm test grid stays coarse) over the same field of view; on a
    registered grid, its axial 1 mm grid."""
    grid = next((REGISTERED_GRIDS[s] for s in rand.steps() if s in REGISTERED_GRIDS), None)
    if grid is not None:
        # axial: array axes (A, R, S)
        return geometry.Acquisition(
            acq.grid, "axial", (1.0, 1.0, 1.0), (grid[1], grid[0], grid[2]), acq.mr_acquisition_type
        )
    voxel = tuple(round(v * base, 2) for v, base in zip(rand.voxel_mm, acq.voxel_mm))
    shape = tuple(int(round(n * old / new)) for n, old, new in zip(acq.shape, acq.voxel_mm, voxel))
    return geometry.Acquisition(acq.grid, acq.plane, voxel, shape, acq.mr_acquisition_type)  # type: ignore[arg-type]


def registered(rand: Randomisation) -> bool:
    return any(s in REGISTERED_GRIDS for s in rand.steps())


def template_pose() -> geometry.Pose:
    """The head as the template lies: what registration to MNI leaves."""
    return geometry.Pose((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


# ---------------------------------------------------------------- pathology (template space)
def with_pathology_lesions(anatomy: Anatomy, rand: Randomisation) -> Anatomy:
    """Heavy lesion load: many more and larger white-matter lesions than the engine's 1-25."""
    if rand.pathology != "heavy_lesions":
        return anatomy
    rng = np.random.default_rng([rand.seed, 1])
    sites = head_model().lesion_sites
    count = int(rng.integers(*RANDOMISATION.heavy_lesion_count))
    picks = rng.choice(len(sites), size=min(count, len(sites)), replace=False)
    lesions = tuple((*map(float, sites[i]), RANDOMISATION.heavy_lesion_radius_mm.draw(rng)) for i in picks)
    return replace(anatomy, lesions=anatomy.lesions + lesions)


def add_pathology(
    image: np.ndarray, labels: np.ndarray | None, levels: dict[str, float], rand: Randomisation
) -> np.ndarray:
    """A tumour (bright oedema round a dark or grey core) or an old infarct (a CSF-dark cavity in a bright gliotic
    rim), centred on a deep white-matter site of the template; labelled as lesion inside the brain."""
    if rand.pathology not in ("tumour_oedema", "infarct"):
        return image
    rng = np.random.default_rng([rand.seed, 2])
    sites = head_model().lesion_sites
    centre = sites[int(rng.integers(len(sites)))].astype(float)
    r = RANDOMISATION
    if rand.pathology == "tumour_oedema":
        outer, inner = r.oedema_radius_mm.draw(rng), r.core_fraction.draw(rng)
        ring, core = levels["lesion"] * r.oedema_to_lesion.draw(rng), levels[str(rng.choice(["csf", "gm"]))]
    else:
        outer, inner = r.infarct_radius_mm.draw(rng), r.cavity_fraction.draw(rng)
        ring, core = levels["lesion"], levels["csf"]
    out = image.copy()
    box, ball = _ball_weights(centre, outer, image.shape)
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(np.ogrid[box], centre)))
    inner_ball = np.clip(outer * inner + 0.5 - distance, 0.0, 1.0)
    brain = np.isin(head_model().labels[box], BRAIN_CODES)  # inside the template brain only, never the skull
    target = ball * (ring * (1 - inner_ball) + core * inner_ball) + (1 - ball) * out[box]
    out[box] = np.where(brain, target, out[box])
    if labels is not None:
        labels[box][(ball > 0.5) & brain] = TISSUE_LABELS["lesion"]
    return out


# ---------------------------------------------------------------- image formation
def warp_intensities(clean: np.ndarray, rand: Randomisation) -> np.ndarray:
    """Monotone: saturate above a percentile, then gamma and the knot warp on [0, 1], then back to the scale."""
    top = float(np.percentile(clean[clean > 0], rand.saturation_percentile)) if np.any(clean > 0) else 1.0
    x = np.clip(clean / top, 0, 1) ** rand.gamma
    knots = np.linspace(0, 1, len(rand.warp))
    return (np.interp(x, knots, rand.warp) * top).astype(np.float32)


def present(
    data: np.ndarray, affine: np.ndarray, tissue: np.ndarray | None, rand: Randomisation
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The presentation's steps on the acquired magnitude image (and its tissue map), in order."""
    steps = rand.steps()
    if "skull_stripped" in steps or "cropped" in steps:
        brain = ndimage.binary_fill_holes(np.isin(tissue, BRAIN_CODES))
    if "skull_stripped" in steps:
        data = np.where(ndimage.binary_dilation(brain, iterations=1), data, 0).astype(np.float32)
    if "cropped" in steps:
        voxel = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        where = np.argwhere(brain)
        low = np.maximum(where.min(axis=0) - np.ceil(rand.crop_margin_mm / voxel).astype(int), 0)
        high = np.minimum(
            where.max(axis=0) + np.ceil(rand.crop_margin_mm / voxel).astype(int) + 1, data.shape
        )
        for axis in range(3):
            cut_affine = affine
            data, affine = geometry.crop(data, cut_affine, axis, int(low[axis]), int(high[axis]))
            tissue = geometry.crop(tissue, cut_affine, axis, int(low[axis]), int(high[axis]))[0]
    if "float_n4" in steps:  # N4 leaves a float image; winsorising and a shift put dark voxels below zero
        inside = data > 0  # an exact-zero background (suppressed, skull-stripped) stays zero
        low, high = (
            np.percentile(data[inside], RANDOMISATION.winsorise_percentiles) if inside.any() else (0, 1)
        )
        shifted = (
            (np.clip(data, low, high) - low) / ((high - low) or 1.0) + rand.float_offset
        ) * rand.float_scale
        data = np.where(inside, shifted, 0).astype(np.float32)
    return data, affine, tissue


def stores_as_float(rand: Randomisation) -> bool:
    return "float_n4" in rand.steps()


def stores_as_uint8(rand: Randomisation) -> bool:
    return "uint8" in rand.steps()
