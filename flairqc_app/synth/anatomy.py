"""A whole-head tissue model in ICBM 2009a space, and the per-subject template-space image drawn from it.

The ICBM maps are skull-stripped (brain, cerebellum, brainstem), so the head around them is modelled as
layers at given distances from a smooth brain envelope (CSF rim, skull tables, diploe, scalp, fat, skin),
plus a neck and cord below the ICBM grid. Layers are intensity profiles of a distance, so a subject's head
costs one np.interp, and per-subject thicknesses vary at no cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from flairqc_app.synth import fields
from flairqc_app.synth.params import (
    ANATOMY,
    COIL_COVERAGE_MM,
    HEAD_SHELL_MM,
    NECK_PAD_MM,
    TISSUE_LABELS,
    AnatomyRanges,
)


@dataclass(frozen=True)
class HeadModel:
    """Cached template-space model (1 mm, RAS, ICBM grid padded below by NECK_PAD_MM slices)."""

    affine: np.ndarray
    gm: np.ndarray  # probabilities on `brain_idx` voxels only (flat), float32
    wm: np.ndarray
    brain_idx: np.ndarray  # flat indices of voxels inside the smooth brain envelope
    shell_idx: np.ndarray  # flat indices of head voxels outside the envelope
    shell_env_mm: np.ndarray  # distance from the envelope, on shell_idx
    shell_depth_mm: np.ndarray  # depth below the scalp surface, on shell_idx
    labels: np.ndarray  # uint8 tissue codes (TISSUE_LABELS) of the whole grid
    ventricle_push: np.ndarray  # (3, ...) coarse outward unit displacement around the ventricles (voxels)
    push_axes: list[np.ndarray]  # coarse positions of ventricle_push along each axis
    lesion_sites: np.ndarray  # (n, 3) voxel coordinates of deep / periventricular white matter

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.labels.shape  # type: ignore[return-value]


def _pad_below(volume: np.ndarray, extrude: bool) -> np.ndarray:
    """Add NECK_PAD_MM slices under the grid: repeat the lowest slice (cord) or zeros."""
    pad = (
        np.repeat(volume[:, :, :1], NECK_PAD_MM, axis=2)
        if extrude
        else np.zeros(volume.shape[:2] + (NECK_PAD_MM,), volume.dtype)
    )
    return np.concatenate([pad, volume], axis=2)


def _distance_mm(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm) to `mask` for voxels outside it, computed at 2 mm and upsampled (smooth)."""
    coarse = mask[::2, ::2, ::2]
    dist = ndimage.distance_transform_edt(~coarse, sampling=2.0).astype(np.float32)
    axes = [np.arange(n, dtype=np.float64) * 2.0 for n in coarse.shape]
    axes = [np.minimum(a, n - 1.0) for a, n in zip(axes, mask.shape)]
    return fields.upsample(dist, axes, mask.shape)


def _neck(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """Elliptic neck column below the skull base, widening into the head (RAS mm)."""
    z_mm = affine[2, 2] * np.arange(shape[2]) + affine[2, 3]
    widen = np.clip((z_mm + 70.0) / 50.0, 0.0, 1.0)  # 0 low in the neck, 1 at the skull base
    rx, ry = 55.0 + 15.0 * widen, 55.0 + 25.0 * widen
    x_mm = affine[0, 0] * np.arange(shape[0]) + affine[0, 3]
    y_mm = affine[1, 1] * np.arange(shape[1]) + affine[1, 3]
    inside = (x_mm[:, None, None] / rx) ** 2 + ((y_mm[None, :, None] + 20.0) / ry) ** 2 <= 1.0
    return inside & (z_mm < -30.0)[None, None, :]


@lru_cache(maxsize=1)
def head_model() -> HeadModel:
    """Build (once per process, about 10 s) the head model from nilearn's ICBM 2009a maps."""
    from flairqc_app.synth.icbm import load_icbm_maps

    maps = load_icbm_maps()
    gm, wm, csf = (_pad_below(m, extrude=True) for m in (maps.gm, maps.wm, maps.csf))
    brain = _pad_below(maps.brain_mask | (maps.gm + maps.wm > 0.1), extrude=True)
    affine = maps.affine.copy()
    affine[2, 3] -= NECK_PAD_MM
    envelope = (
        ndimage.binary_fill_holes(ndimage.gaussian_filter(brain.astype(np.float32), 3.0) > 0.35) | brain
    )
    env_mm = _distance_mm(envelope)
    head = (env_mm <= HEAD_SHELL_MM) | _neck(envelope.shape, affine)
    head = ndimage.binary_fill_holes(ndimage.binary_closing(head, iterations=3))
    depth_mm = _distance_mm(~head)

    labels = np.zeros(envelope.shape, np.uint8)
    labels[head] = TISSUE_LABELS["head"]
    labels[envelope] = TISSUE_LABELS["csf"]
    labels[envelope & (gm >= np.maximum(wm, csf)) & (gm > 0.3)] = TISSUE_LABELS["gm"]
    labels[envelope & (wm > np.maximum(gm, csf)) & (wm > 0.3)] = TISSUE_LABELS["wm"]

    inner_mm = _distance_mm(~envelope)
    ventricles = (csf > 0.5) & (inner_mm > 12.0)
    step = 4
    smooth = ndimage.gaussian_filter(ventricles.astype(np.float32), 5.0)[::step, ::step, ::step]
    push = np.stack(np.gradient(smooth))
    push /= max(float(np.linalg.norm(push, axis=0).max()), 1e-6)
    push_axes = [np.arange(n, dtype=np.float64) * step for n in smooth.shape]

    near_ventricle = _distance_mm(ventricles) < 20.0
    sites = np.argwhere((wm > 0.95) & near_ventricle)[::50].astype(np.float32)

    flat_env, flat_head = envelope.ravel(), head.ravel()
    brain_idx = np.flatnonzero(flat_env)
    shell_idx = np.flatnonzero(flat_head & ~flat_env)
    return HeadModel(
        affine=affine,
        gm=gm.ravel()[brain_idx],
        wm=wm.ravel()[brain_idx],
        brain_idx=brain_idx,
        shell_idx=shell_idx,
        shell_env_mm=env_mm.ravel()[shell_idx],
        shell_depth_mm=depth_mm.ravel()[shell_idx],
        labels=labels,
        ventricle_push=push.astype(np.float32),
        push_axes=push_axes,
        lesion_sites=sites,
    )


@dataclass(frozen=True)
class Anatomy:
    """One subject's anatomy: layer thicknesses, elastic and ventricle displacement, lesions, cortex detail."""

    elastic_mm: float
    ventricle_mm: float
    layers_mm: dict[str, float]
    lesions: tuple[tuple[float, float, float, float], ...]  # (x, y, z voxel, radius mm)
    elastic_seed: int
    sharpness: float = 1.0
    fine_elastic_mm: float = 0.0
    texture: float = 0.0
    fine_seed: int = 0
    layer_edge_mm: float = 0.6

    def summary(self) -> dict[str, float | int]:
        """Generation parameters for the labels table."""
        return {
            "elastic_mm": round(self.elastic_mm, 3),
            "ventricle_mm": round(self.ventricle_mm, 3),
            "lesion_count": len(self.lesions),
            "sharpness": round(self.sharpness, 3),
            "fine_elastic_mm": round(self.fine_elastic_mm, 3),
            "texture": round(self.texture, 4),
            "layer_edge_mm": round(self.layer_edge_mm, 3),
            **{f"{k}_mm": round(v, 3) for k, v in self.layers_mm.items()},
        }


def draw_anatomy(
    rng: np.random.Generator, lesions: bool | None = None, ranges: AnatomyRanges = ANATOMY
) -> Anatomy:
    """Draw a subject; `lesions` forces white-matter lesions on or off (None: ANATOMY.lesion_probability)."""
    model = head_model()
    has_lesions = rng.random() < ranges.lesion_probability if lesions is None else lesions
    count = int(rng.integers(ranges.lesion_count[0], ranges.lesion_count[1] + 1)) if has_lesions else 0
    picks = rng.choice(len(model.lesion_sites), size=count, replace=False) if count else []
    lesion_list = tuple(
        (*map(float, model.lesion_sites[i]), ranges.lesion_radius_mm.draw(rng)) for i in picks
    )
    layers = {
        name: getattr(ranges, f"{name}_mm").draw(rng)
        for name in ("csf_rim", "inner_table", "diploe", "outer_table", "skin", "subcutaneous_fat")
    }
    # draws in this order
    return Anatomy(
        elastic_mm=ranges.elastic_mm.draw(rng),
        ventricle_mm=ranges.ventricle_mm.draw(rng),
        layers_mm=layers,
        lesions=lesion_list,
        elastic_seed=int(rng.integers(2**31)),
        sharpness=ranges.sharpness.draw(rng),
        fine_elastic_mm=ranges.fine_elastic_mm.draw(rng),
        texture=ranges.texture.draw(rng),
        fine_seed=int(rng.integers(2**31)),
        layer_edge_mm=ranges.layer_edge_mm.draw(rng),
    )


def tissue_fractions(model: HeadModel, sharpness: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GM, WM and CSF fractions on the brain voxels, sharpened as p**k / sum(p**k): k = 1 is the ICBM average,
    a larger k thins the blurred partial-volume band towards an individual's crisp boundaries."""
    gm, wm = model.gm, model.wm
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    if sharpness == 1.0:
        return gm, wm, csf
    powered = [np.power(p, sharpness, dtype=np.float32) for p in (gm, wm, csf)]
    total = np.maximum(powered[0] + powered[1] + powered[2], 1e-12)
    return powered[0] / total, powered[1] / total, powered[2] / total


def tissue_texture(anatomy: Anatomy, shape: tuple[int, int, int]) -> np.ndarray:
    """Multiplicative fine texture 1 + t * n, n smooth noise of unit standard deviation (ones when t = 0), on the
    whole grid: brain and scalp alike are not flat."""
    if anatomy.texture <= 0.0:
        return np.ones(shape, np.float32)
    rng = np.random.default_rng([anatomy.fine_seed, 1])
    noise = fields.smooth_noise(rng, shape, ANATOMY.texture_sigma_mm)
    return 1.0 + (anatomy.texture / max(float(noise.std()), 1e-6)) * noise


def _shell_intensity(model: HeadModel, anatomy: Anatomy, level: dict[str, float]) -> np.ndarray:
    """Layer intensities outside the envelope: skull from the brain side, skin and fat from the scalp side."""
    lay, edge = anatomy.layers_mm, anatomy.layer_edge_mm
    bounds = np.cumsum([lay["csf_rim"], lay["inner_table"], lay["diploe"], lay["outer_table"]])
    inner_classes = ("csf", "bone", "marrow", "bone", "soft")
    knots, values = [0.0], [level["csf"]]
    for bound, before, after in zip(bounds, inner_classes, inner_classes[1:]):
        knots += [bound - edge, bound + edge]
        values += [level[before], level[after]]
    inner = np.interp(model.shell_env_mm, knots, values)
    s, f = lay["skin"], lay["skin"] + lay["subcutaneous_fat"]
    outer = np.interp(
        model.shell_depth_mm,
        [0.0, s - edge, s + edge, f - edge, f + edge],
        [level["skin"], level["skin"], level["fat"], level["fat"], level["soft"]],
    )
    skull_end = bounds[-1] + edge
    return np.where(model.shell_env_mm < skull_end, inner, outer).astype(np.float32)


def _ball_weights(
    centre: np.ndarray, radius: float, shape: tuple[int, ...]
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Soft ball (1 inside, linear 1-voxel edge) within its bounding box."""
    lo = np.maximum(np.floor(centre - radius - 1).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radius + 2).astype(int), shape)
    grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    return tuple(slice(a, b) for a, b in zip(lo, hi)), np.clip(radius + 0.5 - dist, 0.0, 1.0).astype(
        np.float32
    )


def template_image(
    anatomy: Anatomy, level: dict[str, float], with_labels: bool = False
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Template-space intensity image of a subject (and its tissue labels), and the lesion volume in ml."""
    model = head_model()
    image = np.zeros(model.shape, np.float32)
    flat = image.reshape(-1)
    gm, wm_fraction, rest = tissue_fractions(model, anatomy.sharpness)
    texture = tissue_texture(anatomy, model.shape).reshape(-1)
    flat[model.brain_idx] = (gm * level["gm"] + wm_fraction * level["wm"]) * texture[
        model.brain_idx
    ] + rest * level["csf"]
    flat[model.shell_idx] = _shell_intensity(model, anatomy, level) * texture[model.shell_idx]
    low, high = COIL_COVERAGE_MM
    z_mm = model.affine[2, 2] * np.arange(model.shape[2]) + model.affine[2, 3]
    image *= np.interp(z_mm, [low, high], [0.1, 1.0]).astype(np.float32)[None, None, :]
    labels = model.labels.copy() if with_labels else None
    wm = np.zeros(model.shape, np.float32)
    wm.reshape(-1)[model.brain_idx] = wm_fraction
    lesion_ml = 0.0
    for x, y, z, radius in anatomy.lesions:
        box, ball = _ball_weights(np.array([x, y, z]), radius, model.shape)
        weight = ball * wm[box]
        image[box] += weight * (level["lesion"] - level["wm"])
        wm[box] -= weight  # overlapping lesions do not add up twice
        lesion_ml += float(weight.sum()) / 1000.0
        if labels is not None:
            labels[box][weight > 0.5] = TISSUE_LABELS["lesion"]
    return image, labels, lesion_ml
