"""Head, air and tissue masks in the image's native space, made cheaply from what preprocessing has.

Head: a threshold at a share of the bright end (as preprocess.head_mask) joined with the brain, holes filled.
Air: outside the head dilated by AIR_MARGIN_MM. Tissues: the template's labels (1 CSF, 2 GM, 3 WM) through
the inverse of the preprocessing affine (nearest neighbour, in numpy), then a three-class Gaussian
mixture of the N4-corrected intensities inside the brain whose class weights depend on the template label,
so that the image decides at tissue borders and misregistration matters less. Lesions: bright deep-WM voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.io import loadmat

from flairqc_app import config

CSF, GM, WM = 1, 2, 3
AIR_MARGIN_MM = 4.0
PRIOR_WEIGHT = 0.8  # mixture weight of the template's own class; the two others share the rest
FIT_ITERATIONS = 12
FIT_SAMPLE_STEP = 7  # every 7th brain voxel is enough for 1D means and sigmas
CLASS_TABLE_BINS = 4096
LESION_DEPTH_MM = 2.0
LESION_GM_SIGMAS = 2.0
ZEROED_AIR_SHARE = 0.5  # more zero voxels than this in the air: the background was masked


@dataclass(frozen=True)
class Masks:
    """Boolean masks on the native grid (array order of the input), plus whether the air was zeroed."""

    head: np.ndarray
    air: np.ndarray
    brain: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    lesion: np.ndarray
    air_zeroed: bool


def dilate(mask: np.ndarray, radius_vox: tuple[int, ...]) -> np.ndarray:
    """Box dilation, separable (fast on large volumes)."""
    return ndimage.maximum_filter(mask.astype(np.uint8), size=tuple(2 * r + 1 for r in radius_vox)) > 0


def erode(mask: np.ndarray, radius_vox: tuple[int, ...]) -> np.ndarray:
    return ndimage.minimum_filter(mask.astype(np.uint8), size=tuple(2 * r + 1 for r in radius_vox)) > 0


def radius_in_voxels(mm: float, zooms: tuple[float, ...]) -> tuple[int, ...]:
    """
    >>> radius_in_voxels(4.0, (1.0, 1.0, 2.0))
    (4, 4, 2)
    """
    return tuple(max(1, int(round(mm / z))) for z in zooms)


def head_mask(raw: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Head voxels: above HEAD_MASK_FRACTION of the 99th percentile, or brain; the largest connected part
    (noise specks in the air are left out), holes (ventricles) filled."""
    sample = raw[::2, ::2, ::2]  # an eighth of the voxels gives the 99th percentile well enough
    positive = sample[sample > 0]
    threshold = config.HEAD_MASK_FRACTION * float(np.percentile(positive, 99)) if positive.size else 0.0
    return fill_holes(largest_component((raw > threshold) | brain))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """
    >>> mask = np.zeros((5, 5, 5), bool); mask[0, 0, 0] = True; mask[2:5, 2:5, 2:5] = True
    >>> int(largest_component(mask).sum())
    27
    """
    components, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with every background component that does not touch the volume's border filled in
    (one connected-component labelling: faster than ndimage.binary_fill_holes on whole heads).

    >>> ring = np.pad(np.pad(np.zeros((1, 1, 1), bool), 1, constant_values=True), 1)
    >>> int(ring.sum()), int(fill_holes(ring).sum())
    (26, 27)
    """
    components, _ = ndimage.label(~mask)
    faces = [
        components[tuple(slice(None) if a != axis else end for a in range(3))]
        for axis in range(3)
        for end in (0, -1)
    ]
    outside = np.unique(np.concatenate([f.ravel() for f in faces]))
    return ~np.isin(components, outside[outside > 0])


LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # ITK transforms work in LPS coordinates


@lru_cache(maxsize=1)
def template_labels() -> tuple[np.ndarray, np.ndarray]:
    """The shipped tissue labels (uint8) and their voxel-to-RAS affine."""
    img = nib.load(str(config.TISSUE_LABELS))
    return np.asarray(img.dataobj, dtype=np.uint8), img.affine


@lru_cache(maxsize=1)
def padded_template_labels() -> np.ndarray:
    """The labels with a rim of zeros, onto which indices outside the template are clipped."""
    return np.pad(template_labels()[0], 1)


def itk_affine(transform: Path) -> np.ndarray:
    """The 4x4 LPS matrix of an antsRegistration affine (ITK's MATLAB .mat: 9 matrix entries and a translation,
    plus the centre): y = A (x - c) + t + c, template -> subject."""
    stored = loadmat(str(transform))
    key = next(k for k in stored if k.startswith(("AffineTransform", "MatrixOffsetTransformBase")))
    params, centre = stored[key].ravel().astype(float), stored["fixed"].ravel().astype(float)
    matrix = np.eye(4)
    matrix[:3, :3] = params[:9].reshape(3, 3)
    matrix[:3, 3] = params[9:12] + centre - matrix[:3, :3] @ centre
    return matrix


def native_to_template_voxels(native_affine: np.ndarray, transform: Path) -> np.ndarray:
    """Native voxel index -> template voxel index (4x4): inverse of the registration affine, in numpy."""
    subject_to_template = np.linalg.inv(itk_affine(transform))
    return np.linalg.inv(template_labels()[1]) @ LPS @ subject_to_template @ LPS @ native_affine


def native_labels(shape: tuple[int, ...], native_affine: np.ndarray, transform: Path) -> np.ndarray:
    """The template tissue labels on the native grid (nearest neighbour). Only the native box that holds the
    mapped template brain is sampled, one slab at a time, so no coordinate array of the volume is held."""
    labels, _ = template_labels()
    to_template = native_to_template_voxels(native_affine, transform)
    out = np.zeros(shape[:3], np.uint8)
    box = brain_box(labels, np.linalg.inv(to_template), shape[:3])
    if box is None:
        return out
    j, k = np.meshgrid(
        np.arange(box[1].start, box[1].stop), np.arange(box[2].start, box[2].stop), indexing="ij"
    )
    matrix = to_template.astype(np.float32)
    base = matrix[:3, 1:3] @ np.stack([j.ravel(), k.ravel()]).astype(np.float32) + matrix[:3, 3:] + 1
    padded = padded_template_labels()
    flat, size = padded.ravel(), padded.shape
    for i in range(box[0].start, box[0].stop):
        index = np.rint(base + i * matrix[:3, :1]).astype(np.int32)
        for axis in range(3):
            np.clip(index[axis], 0, size[axis] - 1, out=index[axis])
        out[i, box[1], box[2]] = flat[(index[0] * size[1] + index[1]) * size[2] + index[2]].reshape(j.shape)
    return out


def brain_box(
    labels: np.ndarray, template_to_native: np.ndarray, shape: tuple[int, ...]
) -> tuple[slice, ...] | None:
    """The native voxel box that contains the template brain's bounding box once mapped (None: outside)."""
    nonzero = [np.flatnonzero(labels.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    corners = np.array(np.meshgrid(*[[n[0] - 1, n[-1] + 1] for n in nonzero], indexing="ij")).reshape(3, -1)
    mapped = template_to_native[:3, :3] @ corners + template_to_native[:3, 3:]
    low = np.clip(np.floor(mapped.min(axis=1)).astype(int), 0, shape)
    high = np.clip(np.ceil(mapped.max(axis=1)).astype(int) + 1, 0, shape)
    return None if np.any(high <= low) else tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """
    >>> bounding_box(np.pad(np.ones((2, 3, 1), bool), 2), margin=1)
    (slice(1, 5, None), slice(1, 6, None), slice(1, 4, None))
    """
    spans = [
        np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        for axis in range(mask.ndim)
    ]
    return tuple(
        slice(max(int(s[0]) - margin, 0), min(int(s[-1]) + 1 + margin, n)) if s.size else slice(0, 0)
        for s, n in zip(spans, mask.shape)
    )


def class_weights() -> np.ndarray:
    """Mixture weights of (CSF, GM, WM) per template label 0-3: the label's own class is favoured."""
    weights = np.full((4, 3), (1 - PRIOR_WEIGHT) / 2)
    weights[np.arange(1, 4), np.arange(3)] = PRIOR_WEIGHT
    weights[0] = 1 / 3
    return weights


def fit_classes(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means and sigmas of a 1D three-class mixture (CSF, GM, WM) with label-dependent weights; the class of
    each value. Initialised from the template labels' own statistics.

    >>> rng = np.random.default_rng(0)
    >>> x = np.r_[rng.normal(10, 2, 500), rng.normal(80, 5, 500), rng.normal(55, 5, 500)]
    >>> prior = np.repeat([CSF, GM, WM], 500)
    >>> prior[500:600] = WM  # a misregistered border: these GM voxels carry the WM label
    >>> means, sigmas, cls = fit_classes(x, prior)
    >>> np.round(means).tolist(), bool((cls == np.repeat([0, 1, 2], 500)).mean() > 0.95)
    ([10.0, 80.0, 55.0], True)
    """
    w = class_weights()[labels]
    start = [values[labels == k] for k in (CSF, GM, WM)]
    spread = float(np.std(values)) or 1.0
    means = np.array(
        [
            float(np.mean(s)) if s.size else float(np.percentile(values, p))
            for s, p in zip(start, (10, 90, 60))
        ]
    )
    sigmas = np.array([max(float(np.std(s)) if s.size > 1 else spread, 1e-3 * spread) for s in start])
    for _ in range(FIT_ITERATIONS):
        z = (values[:, None] - means) / sigmas
        resp = w * np.exp(-0.5 * z * z) / sigmas
        resp /= resp.sum(axis=1, keepdims=True) + 1e-300
        total = resp.sum(axis=0) + 1e-12
        means = (resp * values[:, None]).sum(axis=0) / total
        sigmas = np.sqrt((resp * (values[:, None] - means) ** 2).sum(axis=0) / total).clip(1e-3 * spread)
    z = (values[:, None] - means) / sigmas
    return means, sigmas, np.argmax(w * np.exp(-0.5 * z * z) / sigmas, axis=1)


def mixture_classes(
    means: np.ndarray, sigmas: np.ndarray, lo: float, hi: float, bins: int = CLASS_TABLE_BINS
):
    """Class per (template label, intensity bin): the mixture's decision as a lookup table, so that millions
    of voxels are classified without an (n, 3) float array."""
    centres = np.linspace(lo, hi, bins)
    z = (centres[:, None] - means) / sigmas
    likelihood = np.exp(-0.5 * z * z) / sigmas
    return np.argmax(class_weights()[:, None, :] * likelihood[None], axis=2).astype(np.uint8)


def tissue_masks(
    corrected: np.ndarray, labels: np.ndarray, zooms: tuple[float, ...]
) -> dict[str, np.ndarray]:
    """GM, WM and lesion masks (bool) from the labels and the N4-corrected intensities (the CSF class is fitted,
    so that dark voxels do not fall into GM or WM, but no metric reads its mask)."""
    box = bounding_box(labels > 0, margin=1)
    labels_box = labels[box]
    brain = labels_box > 0
    values, prior = corrected[box][brain], labels_box[brain]
    means, sigmas, _ = fit_classes(values[::FIT_SAMPLE_STEP], prior[::FIT_SAMPLE_STEP])
    lo, hi = float(values.min()), float(values.max())
    table = mixture_classes(means, sigmas, lo, hi)
    bins = np.clip(
        ((values - lo) * ((CLASS_TABLE_BINS - 1) / max(hi - lo, 1e-12))).round(), 0, CLASS_TABLE_BINS - 1
    ).astype(np.intp)
    cls = table[prior, bins]
    deep_wm = erode(labels_box == WM, radius_in_voxels(LESION_DEPTH_MM, zooms))[brain]
    lesion = deep_wm & (values > means[1] + LESION_GM_SIGMAS * sigmas[1])
    out = {}
    for name, flat in (("gm", (cls == 1) & ~lesion), ("wm", (cls == 2) & ~lesion), ("lesion", lesion)):
        inside = np.zeros(brain.shape, bool)
        inside[brain] = flat
        full = np.zeros(corrected.shape, bool)
        full[box] = inside
        out[name] = full
    return out


def build_masks(
    raw: np.ndarray, corrected: np.ndarray, labels: np.ndarray, zooms: tuple[float, ...]
) -> Masks:
    brain = labels > 0
    head = head_mask(raw, brain)
    air = ~dilate(head, radius_in_voxels(AIR_MARGIN_MM, zooms))
    air_values = raw[air]
    zeroed = air_values.size == 0 or float(np.mean(air_values <= 0)) > ZEROED_AIR_SHARE
    return Masks(head=head, air=air, brain=brain, air_zeroed=zeroed, **tissue_masks(corrected, labels, zooms))
