"""One table of the kinds of image `render_case` makes: a graded head, or one kind of straight reject.

Each kind is a renderer that draws its own parameters (rejects.py: drawn first, then applied) after the
case's common draws, in the order of the engine of the 1.2.0 models, and the sequence or grid it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from flairqc_app.synth import anatomy as anat
from flairqc_app.synth import artefacts, geometry, randomise, rejects
from flairqc_app.synth.head import acquire_head, background, degrade
from flairqc_app.synth.labels import MISSING
from flairqc_app.synth.params import INTEGER_MAX, Range

NEAR_EMPTY_MAX = Range(5.0, 60.0)
HEADLESS_KEPT = ("seed", "subject_seed", "manufacturer", "model", "field_strength_t")  # and the acquisition's


@dataclass(frozen=True)
class Scene:
    """What every renderer reads: the case's draws before its image, and the options that shape it."""

    seed: int
    acq: geometry.Acquisition
    pose: geometry.Pose
    anatomy: anat.Anatomy
    levels: dict[str, float]
    field_t: float
    grades: tuple[int, int, int]
    contrast_mode: str
    motion_grading: str
    zero_background: bool | None
    want_tissue: bool  # render tissue codes (asked for, needed by the kind, or by randomisation)
    with_tissue: bool  # tissue codes asked for by the caller
    rand: randomise.Randomisation | None


@dataclass(frozen=True)
class Rendered:
    """A kind's image before storage, with its affine, tissue codes and generation parameters."""

    data: np.ndarray
    affine: np.ndarray
    tissue: np.ndarray | None
    params: dict[str, object]
    integer_max: Range = INTEGER_MAX


Renderer = Callable[[np.random.Generator, Scene, dict[str, object]], Rendered]


def _degraded_head(
    rng: np.random.Generator, scene: Scene, params: dict[str, object]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(clean, degraded, tissue) of a head; the parameters of its degradations go into `params`."""
    acq = scene.acq
    clean, tissue, lesion_ml = acquire_head(
        scene.anatomy, scene.levels, acq, scene.pose, scene.want_tissue, scene.rand
    )
    params["lesion_ml"] = round(lesion_ml, 3)
    data, degraded = degrade(
        rng,
        clean,
        scene.levels,
        acq,
        scene.grades,
        scene.contrast_mode,
        scene.field_t,
        scene.motion_grading,
        scene.rand,
    )
    params.update(degraded)
    return clean, background(data, clean, acq.voxel_mm, scene.seed, scene.zero_background, params), tissue


def _head(rng: np.random.Generator, scene: Scene, params: dict[str, object]) -> Rendered:
    """A graded head (also the wrong-contrast and 2D rejects, whose sequence or grid the table sets)."""
    _, data, tissue = _degraded_head(rng, scene, params)
    return Rendered(data, scene.acq.affine, tissue, params)


def _truncated(rng: np.random.Generator, scene: Scene, params: dict[str, object]) -> Rendered:
    clean, data, tissue = _degraded_head(rng, scene, params)
    cut = rejects.Truncation.draw(rng, scene.acq)
    params.update(cut.summary())
    start, stop = cut.bounds(clean)
    data, affine = geometry.crop(data, scene.acq.affine, cut.axis, start, stop)
    tissue = geometry.crop(tissue, scene.acq.affine, cut.axis, start, stop)[0] if tissue is not None else None
    return Rendered(data, affine, tissue, params)


def _segmentation(rng: np.random.Generator, scene: Scene, params: dict[str, object]) -> Rendered:
    acq, pose = scene.acq, scene.pose
    _, tissue, lesion_ml = acquire_head(scene.anatomy, scene.levels, acq, pose, scene.want_tissue)
    params["lesion_ml"] = round(lesion_ml, 3)
    segmentation = rejects.Segmentation.draw(rng)
    params.update(segmentation.summary())
    if segmentation.kind == "labels":
        data = rejects.segmentation_labels(tissue)
    else:
        flat = replace(scene.anatomy, texture=0.0)  # a probability map has no tissue texture
        data = acquire_head(flat, rejects.probability_levels(segmentation.kind), acq, pose, False)[0]
    return Rendered(data, acq.affine, tissue, params)


def _headless(scene: Scene, params: dict[str, object]) -> dict[str, object]:
    """The parameters that still mean something without a head (no sequence, anatomy, pose or contrast)."""
    kept = {k: v for k, v in params.items() if k in HEADLESS_KEPT or k in scene.acq.summary()}
    kept["sequence"] = MISSING
    return kept


def _no_tissue(scene: Scene) -> np.ndarray | None:
    return np.zeros(scene.acq.shape, np.uint8) if scene.with_tissue else None


def _non_brain(rng: np.random.Generator, scene: Scene, params: dict[str, object]) -> Rendered:
    acq, params = scene.acq, _headless(scene, params)
    phantom = rejects.Phantom.draw(rng)
    clean = phantom.render(acq)
    data, degraded = degrade(
        rng, clean, {"csf": 0.0, "wm": 1.0, "gm": 1.0}, acq, (0, 0, 0), "gm_wm", scene.field_t
    )
    data = background(data, clean, acq.voxel_mm, scene.seed, scene.zero_background, params)
    params.update(phantom.summary(), **degraded)
    return Rendered(data, acq.affine, _no_tissue(scene), params)


def _noise_only(rng: np.random.Generator, scene: Scene, params: dict[str, object]) -> Rendered:
    """Unit-sigma Rayleigh noise and nothing else: no parameter to draw, the noise is the image."""
    data = artefacts.add_rician_noise(np.zeros(scene.acq.shape, np.float32), 1.0, rng)
    return Rendered(data, scene.acq.affine, _no_tissue(scene), _headless(scene, params))


def _near_empty(rng: np.random.Generator, scene: Scene, params: dict[str, object]) -> Rendered:
    params = _headless(scene, params)
    spots = rejects.NearEmpty.draw(rng, scene.acq.shape)
    params.update(spots.summary())
    image = spots.render(scene.acq.shape)
    return Rendered(image, scene.acq.affine, _no_tissue(scene), params, NEAR_EMPTY_MAX)


@dataclass(frozen=True)
class Kind:
    """How one kind of image is made: its renderer, and what it changes of the case."""

    render: Renderer = _head
    sequence: str | None = None  # the contrast rendered instead of the modality's
    grid: str | None = None  # the acquisition grid instead of the configured one
    graded: bool = True  # False: the grades are meaningless, written as n/a
    needs_tissue: bool = False  # the renderer reads the tissue codes


KINDS: dict[str | None, Kind] = {
    None: Kind(),
    "wrong_contrast_t1w": Kind(sequence="T1w"),
    "wrong_contrast_t2w": Kind(sequence="T2w"),
    "wrong_contrast_pd": Kind(sequence="PD"),
    "segmentation": Kind(_segmentation, graded=False, needs_tissue=True),
    "truncated": Kind(_truncated),
    "acquisition_2d": Kind(grid="2d"),
    "near_empty": Kind(_near_empty, graded=False),
    "noise_only": Kind(_noise_only, graded=False),
    "non_brain": Kind(_non_brain, graded=False),
}
