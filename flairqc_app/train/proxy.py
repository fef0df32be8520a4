"""The real-proxy set: presentations of one good real 3D FLAIR, clean and degraded by an independent simulator.

Models trained on synthetic heads are chosen, and their thresholds set, on real images they were not trained on
(issue 31: a model chosen on synthetic validation learned the one real image it was checked on). This module makes
that set from one real FLAIR:

- *variants* keep its quality and change its presentation, as real datasets do: brain extracted (the template brain
  mask brought through the inverse of the image's affine to MNI), resampled to MNI 1 mm, cropped, float with an
  offset, uint8, reoriented, resliced to 1 x 1 x 1.5 mm, background zeroed;
- *degradations* are TorchIO's (Motion with Ghosting, Noise, Gamma with BiasField), not the training engine's, on
  graded parameter grids of our own (`LEVELS`). As in TorchIO, parameters are drawn (`draw_degradation`) apart
  from being applied (`apply_degradation`), so a case is a plain record that can be written, read and re-made.

An artefact is acquired before an image is presented, so a degraded case is `variant(degrade(native))`: motion on a
skull-stripped image still blurs and ghosts inside its brain. One registration of the clean image (`anchor_of`)
serves every case.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from flairqc_app.config import ARTEFACTS, BRAIN_MASK, FLAIR_TEMPLATE, PREPROC_RECIPES

BRAIN_MASK_DILATION_MM = 3.0  # the affine template mask misses some cortex; brain tools keep the CSF rim too
HEAD_THRESHOLD = 0.1  # head voxels: above this share of the 99th percentile (filled, then dilated 2 voxels)
CROP_MARGIN_MM = 10.0  # kept around the brain by the cropped variant (face, neck and air cut away)
FLOAT_SCALE, FLOAT_OFFSET = 3.7, -120.0  # float variant: like an image after N4 and a shift, air below zero
# uint8 export: this percentile of the head maps to 255 (the brightest voxels saturate)
UINT8_PERCENTILE = 99.5
RESLICE_MM = 1.5  # slice thickness of the resliced variant (the gate takes 3D FLAIRs up to 1.8 mm)


@dataclass(frozen=True)
class Anchor:
    """What the variants need from one registration of the clean image: masks on its grid and the affine."""

    brain: np.ndarray  # bool, native grid: the template brain through the inverse affine, dilated
    head: np.ndarray  # bool, native grid
    transform: Path  # ANTs affine (template <- image), as the BIDS-App's preprocessing writes it


def head_mask(data: np.ndarray) -> np.ndarray:
    """Voxels of the head: above a share of the bright end, holes filled, grown by 2 voxels.

    >>> volume = np.zeros((9, 9, 9)); volume[3:6, 3:6, 3:6] = 100.0
    >>> int(head_mask(volume).sum()) > 27
    True
    """
    positive = data[data > 0]
    if positive.size == 0:
        return np.zeros(data.shape, bool)
    mask = ndimage.binary_fill_holes(data > HEAD_THRESHOLD * np.percentile(positive, 99))
    return ndimage.binary_dilation(mask, iterations=2)


def anchor_of(clean: nib.Nifti1Image, work_dir: Path | None = None) -> Anchor:
    """Register the clean image as the BIDS-App does (fast recipe: N4, affine to the FLAIR template) and bring the
    template brain mask back onto its grid through the inverse affine."""
    import ants

    from flairqc_app.preprocess import n4_correct, register_affine, to_ants

    recipe = PREPROC_RECIPES["fast"]
    image = to_ants(clean)
    prefix = str(Path(work_dir or tempfile.mkdtemp(prefix="flairqc-proxy-")) / "anchor_")
    transform = register_affine(
        n4_correct(image, recipe)[0], FLAIR_TEMPLATE, recipe.registration, recipe.seed, prefix
    )
    mask = ants.image_read(str(BRAIN_MASK), pixeltype="float")
    back = ants.apply_transforms(image, mask, [str(transform)], interpolator="linear", whichtoinvert=[True])
    brain = ants.to_nibabel_nifti(back).get_fdata() > 0.5
    spacing = float(np.mean(clean.header.get_zooms()[:3]))
    brain = ndimage.distance_transform_edt(~brain) <= BRAIN_MASK_DILATION_MM / spacing
    return Anchor(brain=brain, head=head_mask(np.asarray(clean.dataobj, np.float32)), transform=transform)


# ---------------------------------------------------------------- variants (presentations that keep the quality)
def _like(img: nib.Nifti1Image, data: np.ndarray, affine: np.ndarray | None = None) -> nib.Nifti1Image:
    out = nib.Nifti1Image(data, img.affine if affine is None else affine)
    out.header.set_xyzt_units("mm", "sec")
    return out


def _float(img: nib.Nifti1Image) -> np.ndarray:
    return np.asarray(img.dataobj, dtype=np.float32)


def _to_mni(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """The image resampled on the template's MNI 1 mm grid through the anchor's affine (linear)."""
    import ants

    from flairqc_app.preprocess import read_template, to_ants

    moved = ants.apply_transforms(
        read_template(FLAIR_TEMPLATE), to_ants(img), [str(anchor.transform)], interpolator="linear"
    )
    return _like(
        img, ants.to_nibabel_nifti(moved).get_fdata(dtype=np.float32), ants.to_nibabel_nifti(moved).affine
    )


def native(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """As acquired (the realdata-dev FLAIR: whole head, uint8)."""
    return img


def brain_extracted(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """Skull-stripped: zero outside the template brain brought back through the inverse affine."""
    return _like(img, np.where(anchor.brain, _float(img), 0).astype(np.float32))


def mni_1mm(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """Already registered: the whole head resampled on the MNI 1 mm grid."""
    return _to_mni(img, anchor)


def brain_mni_float(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """Skull-stripped, on MNI 1 mm and z-scored over the brain (values below zero), like public MS FLAIRs."""
    stripped = _to_mni(brain_extracted(img, anchor), anchor)
    data = stripped.get_fdata(dtype=np.float32)
    brain = data > 0
    data = np.where(brain, (data - data[brain].mean()) / data[brain].std(), 0)
    return _like(stripped, data.astype(np.float32))


def cropped(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """Field of view cut to the brain plus a margin: face, neck and air gone (as defacing and cropping do)."""
    margin = np.ceil(CROP_MARGIN_MM / np.asarray(img.header.get_zooms()[:3])).astype(int)
    where = np.argwhere(anchor.brain)
    low = np.maximum(where.min(axis=0) - margin, 0)
    high = np.minimum(where.max(axis=0) + margin + 1, img.shape[:3])
    box = tuple(slice(a, b) for a, b in zip(low, high))
    return _like(img, np.asarray(img.dataobj)[box], img.slicer[box].affine)


def float_offset(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """float32, scaled and shifted so that air lies below zero (an image after N4 and a shift)."""
    return _like(img, (_float(img) * FLOAT_SCALE + FLOAT_OFFSET).astype(np.float32))


def uint8_export(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """uint8 export windowed at a high percentile of the head (its brightest voxels saturate at 255)."""
    data = _float(img)
    top = np.percentile(data[anchor.head], UINT8_PERCENTILE)
    return _like(img, np.clip(np.rint(data * (255.0 / top)), 0, 255).astype(np.uint8))


def reoriented(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """The same voxels stored in another axis order (here the PIL-like order of a sagittal export)."""
    target = nib.orientations.axcodes2ornt(("P", "S", "L"))
    transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(img.affine), target)
    return img.as_reoriented(transform)


def resliced(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """Resliced to 1 mm in plane and 1.5 mm along the axis nearest to head-foot (linear: thicker slices blur)."""
    axis = int(np.argmax(np.abs(img.affine[2, :3])))
    zooms = np.asarray(img.header.get_zooms()[:3], float)
    target = np.ones(3)
    target[axis] = RESLICE_MM
    data = ndimage.zoom(_float(img), zooms / target, order=1, grid_mode=True, mode="nearest")
    affine = img.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ ((target / zooms - 1) / 2)  # grid_mode: the volume's edges stay put
    affine[:3, :3] *= target / zooms
    return _like(img, data.astype(np.float32), affine)


def background_zeroed(img: nib.Nifti1Image, anchor: Anchor) -> nib.Nifti1Image:
    """Air outside the head set to exactly zero (scanner background suppression, converters)."""
    return _like(img, np.where(anchor.head, np.asarray(img.dataobj), 0).astype(img.get_data_dtype()))


VARIANTS: dict[str, Callable[[nib.Nifti1Image, Anchor], nib.Nifti1Image]] = {
    f.__name__: f
    for f in (
        native,
        brain_extracted,
        mni_1mm,
        brain_mni_float,
        cropped,
        float_offset,
        uint8_export,
        reoriented,
        resliced,
        background_zeroed,
    )
}


# ---------------------------------------------------------------- degradations (TorchIO, graded grids of our own)
@dataclass(frozen=True)
class Span:
    """A uniform range of one parameter."""

    lo: float
    hi: float

    def draw(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.lo, self.hi))


# Each level's grid. Motion: `shots` rigid moves (TorchIO Motion) of the given largest rotation and shift, then
# ghosts of the given intensity along the phase axis; level 2 is the "strong" motion (5 shots, 6 mm).
# Noise: Gaussian noise of sigma = head median / snr. Contrast: gamma on the [0, 1] scale (GM/WM 1.17 -> 1.17**gamma:
# 1.08-1.05 at level 1, 1.03-1.02 at level 2; CSF lifts with it), then a smooth bias field of the given coefficient.
LEVELS: dict[str, dict[int, dict[str, Span]]] = {
    "motion": {
        1: {
            "shots": Span(2, 3),
            "degrees": Span(2.0, 3.5),
            "translation_mm": Span(2.0, 3.5),
            "ghost_intensity": Span(0.08, 0.18),
        },
        2: {
            "shots": Span(4, 6),
            "degrees": Span(4.0, 7.0),
            "translation_mm": Span(5.0, 7.0),
            "ghost_intensity": Span(0.3, 0.5),
        },
    },
    "noise": {1: {"snr": Span(8.0, 12.0)}, 2: {"snr": Span(2.5, 3.5)}},
    "contrast": {
        1: {"gamma": Span(0.35, 0.5), "bias": Span(0.1, 0.2)},
        2: {"gamma": Span(0.15, 0.22), "bias": Span(0.3, 0.4)},
    },
}
GHOSTS = 4  # ghosts of the motion degradation (periodic motion)
BIAS_ORDER = 3


def draw_degradation(artefact: str, level: int, rng: np.random.Generator) -> dict:
    """The TorchIO parameters of one degradation, drawn from the level's grid (JSON-ready: a case's record).

    >>> params = draw_degradation("noise", 2, np.random.default_rng(0))
    >>> 2.5 <= params["snr"] <= 3.5
    True
    """
    if artefact not in LEVELS or level not in LEVELS[artefact]:
        raise ValueError(f"no degradation grid for {artefact} level {level}")
    grid = LEVELS[artefact][level]
    if artefact == "motion":
        shots = int(round(grid["shots"].draw(rng)))
        signs = rng.choice([-1.0, 1.0], size=(shots, 2, 3))
        fractions = rng.uniform(0.3, 1.0, size=(shots, 2, 3))
        fractions[np.arange(shots), :, rng.integers(0, 3, shots)] = 1.0  # one axis at the drawn size
        size = np.array([grid["degrees"].draw(rng), grid["translation_mm"].draw(rng)])[None, :, None]
        moves = signs * fractions * size
        return {
            "degrees": moves[:, 0].round(3).tolist(),
            "translation_mm": moves[:, 1].round(3).tolist(),
            "times": np.sort(rng.uniform(0.1, 0.9, shots)).round(3).tolist(),
            "ghost_intensity": round(grid["ghost_intensity"].draw(rng), 3),
            "ghost_axis": 1,
        }
    if artefact == "noise":
        return {"snr": round(grid["snr"].draw(rng), 3), "seed": int(rng.integers(2**31))}
    terms = (BIAS_ORDER + 1) * (BIAS_ORDER + 2) * (BIAS_ORDER + 3) // 6  # TorchIO's polynomial terms
    bias = grid["bias"].draw(rng)
    return {
        "gamma": round(grid["gamma"].draw(rng), 3),
        "bias_coefficients": rng.uniform(-bias, bias, terms).round(4).tolist(),
    }


def apply_degradation(img: nib.Nifti1Image, artefact: str, params: dict) -> nib.Nifti1Image:
    """The image degraded by TorchIO with the drawn parameters, saved back in its own data type."""
    import torch
    import torchio as tio

    data = _float(img)
    image = tio.ScalarImage(tensor=torch.from_numpy(data[np.newaxis].copy()), affine=img.affine)
    if artefact == "motion":
        image = tio.Motion(
            degrees=np.array(params["degrees"]),
            translation=np.array(params["translation_mm"]),
            times=np.array(params["times"]),
            image_interpolation="linear",
        )(image)
        image = tio.Ghosting(
            num_ghosts=GHOSTS, axis=params["ghost_axis"], intensity=params["ghost_intensity"], restore=0.02
        )(image)
        out = image.data[0].numpy()
    elif artefact == "noise":
        head = head_mask(data)
        sigma = float(np.median(data[head])) / params["snr"]
        out = tio.Noise(mean=0.0, std=sigma, seed=params["seed"])(image).data[0].numpy()
    elif artefact == "contrast":  # gamma on the tissue range only: air (below the head floor) stays dark
        floor, top = HEAD_THRESHOLD * float(np.percentile(data[data > 0], 99)), float(data.max())
        image.set_data(((image.data - floor) / (top - floor)).clamp(0, 1))
        image = tio.Gamma(gamma=params["gamma"])(image)
        image = tio.BiasField(coefficients=params["bias_coefficients"], order=BIAS_ORDER)(image)
        out = np.where(data > floor, floor + image.data[0].numpy() * (top - floor), data)
    else:
        raise ValueError(f"unknown artefact {artefact!r} (one of {', '.join(ARTEFACTS)})")
    return _like(img, _as_dtype(out, img.get_data_dtype()))


def _as_dtype(data: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the input's data type: integers rounded and clipped to their range (magnitude images stay >= 0)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(data), max(info.min, 0), info.max).astype(dtype)
    return data.astype(dtype)


# ---------------------------------------------------------------- the set
@dataclass(frozen=True)
class ProxyCase:
    """One image of the set: a variant, clean (level 0) or with one artefact at a level, and its drawn params."""

    variant: str
    artefact: str = "none"
    level: int = 0
    seed: int = 0
    params: str = "{}"  # the drawn TorchIO parameters, JSON

    @property
    def name(self) -> str:
        """A BIDS-label-safe name (letters and digits).

        >>> ProxyCase("brain_extracted", "motion", 2, 1).name
        'brainextractedmotion2s1'
        """
        return self.variant.replace("_", "") + (
            "" if self.level == 0 else f"{self.artefact}{self.level}s{self.seed}"
        )

    def record(self) -> dict:
        return {"case": self.name, **asdict(self)}


def plan_cases(
    variants: tuple[str, ...] = tuple(VARIANTS),
    artefacts: tuple[str, ...] = ARTEFACTS,
    levels: tuple[int, ...] = (1, 2),
    seeds: tuple[int, ...] = (0,),
) -> list[ProxyCase]:
    """Every variant clean, and with each artefact at each level for each seed; parameters drawn per seed, the
    same draw for every variant (so variants differ only by their presentation).

    >>> cases = plan_cases(("native", "cropped"), ("noise",), (1, 2), (0,))
    >>> [c.name for c in cases]
    ['native', 'nativenoise1s0', 'nativenoise2s0', 'cropped', 'croppednoise1s0', 'croppednoise2s0']
    >>> cases[1].params == cases[4].params
    True
    """
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants: {', '.join(sorted(unknown))} (known: {', '.join(VARIANTS)})")
    draws = {
        (a, lv, s): json.dumps(draw_degradation(a, lv, np.random.default_rng([s, ARTEFACTS.index(a), lv])))
        for a in artefacts
        for lv in levels
        for s in seeds
    }
    return [
        case
        for v in variants
        for case in [ProxyCase(v)]
        + [ProxyCase(v, a, lv, s, draws[a, lv, s]) for a in artefacts for lv in levels for s in seeds]
    ]


def render(clean: nib.Nifti1Image, anchor: Anchor, case: ProxyCase) -> nib.Nifti1Image:
    """The case's image: the clean FLAIR degraded (when it has an artefact), then presented as its variant."""
    acquired = clean if case.level == 0 else apply_degradation(clean, case.artefact, json.loads(case.params))
    return VARIANTS[case.variant](acquired, anchor)
