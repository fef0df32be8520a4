"""Training-time augmentation: changes a preprocessed image, never its labels.

- `flip`: left-right mirror. Brains are near-symmetric and every artefact of the engine is too, so this
  doubles the anatomy a small labelled set shows the network.
- `fov_cut`: zero everything under an oblique plane that stays below the cerebrum and cerebellum. Clinical
  3D FLAIRs often stop at the lower brainstem (the real one in realdata-dev: a wedge under the cerebellum,
  tilted ~20 degrees), synthetic heads always include the neck; without this, a missing neck looks like the
  engine's `truncated` straight rejects, which cut a quarter of the head or more.
- `outside_gain`: multiply everything outside the brain (scalp, skull, face, neck) by a smooth random gain.
  The engine's scalps are smooth concentric layers, a real one is thin and textured, and networks trained on
  the former read the latter as motion (the real 3D FLAIR of realdata-dev: its brain in a synthetic head gives
  motion_moderate 0.01, its own head 0.89; docs/model-history.md#attempt-6). The gain is positive and smooth (noise
  smoothed at sigma 3 mm), so edges, ghosts and noise stay where they are; the brain is untouched.
- `sharpness`: blur or sharpen the whole image by an unsharp mask of random sign and amount. Scanners, their
  reconstruction filters and interpolation make good images more or less sharp, and the engine's layered scalp
  is sharper than a real one: at ~3 mm the real 3D FLAIR's scalp has 0.83 of the fine detail of the engine's
  clean scalps, where motion grades 1 and 2 leave 0.72 and 0.67, and networks trained on the engine read that
  blur as motion. Across the drawn amounts blur says little of the grade, so a motion model must find the ghosts.
- `background_suppression`: zero the air under a random threshold, as scanners that suppress the background do.
- `head_swap`: give an image the head (everything outside the brain + 6 mm: scalp, skull, face, neck, air) of
  another image of its mini-batch, whose labels are drawn independently of its own. The label is then carried by
  the brain alone. The engine's heads are a few smooth layers unlike any real one, and networks trained on them
  latched onto the head in some initialisations and not others (docs/model-history.md#attempt-13: with the engine's
  6-15 mm shell in place of the real one, the real 3D FLAIR's motion reading fell from 0.58-0.95 to 0.02-0.21).

- `intensity_warp`: a random monotone intensity mapping of the [0, 1] input: a gamma and a warp through jittered
  knots (Agitation's histogram and gamma randomisation, issue 31). Real scanners and post-processing map tissue
  intensities differently; a model should read artefacts, not a histogram. Monotone, so tissue order holds, and the
  gamma range keeps contrast grade 2 (GM/WM at most 1.054) under grade 0 (at least 1.12): 1.054**1.3 < 1.12**0.77.

Images are on the registered model grid (RAS array order: axis 1 runs posterior to anterior, axis 2
inferior to superior), so the protected region is the template brain there. The draws of one iteration come
from a generator seeded by (run seed, fold, phase, iteration), so a resumed run augments as the uninterrupted
one would have.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from flairqc_app.train.template_grid import BRAIN_WINDOW_MARGIN_MM, template_brain

AUGMENTATIONS = (
    "flip",
    "fov_cut",
    "outside_gain",
    "sharpness",
    "background_suppression",
    "head_swap",
    "intensity_warp",
)
PROBABILITY = 0.5  # of each augmentation, per image
CUT_TILT_DEG = 25.0  # largest tilt of the cut plane about the left-right axis
CUT_DEPTH_VOX = 6  # how far below its highest allowed position the plane may lie
PROTECTED_AREA_FRACTION = 0.03  # axial slices whose brain area is below this share of the largest: medulla
GAIN_BRAIN_MARGIN_VOX = 1  # the gain starts this far outside the template brain (model grid voxels, ~3 mm)
# sigma of the gain's smoothing and of its edge at the brain (model grid voxels, ~3 mm)
GAIN_SMOOTHING_VOX = 1.0
GAIN_LOG_SD = (0.15, 0.6)  # range of the standard deviation of the log gain, drawn per image
# range of the mean gain, drawn per image: the scalp dimmer or brighter than the brain
GAIN_LEVEL = (
    0.6,
    1.3,
)
# sigma of the blur whose residual is the fine detail (model grid voxels, ~3 mm)
SHARPNESS_SMOOTHING_VOX = 1.0
# amount of fine detail added (> 0: sharper) or taken (< 0: blurred): -0.2 brings the engine's clean scalps to the
# real one's fine detail, -0.4 to that of motion grades 1-2 (relative high-pass SD, docs/model-history.md#attempt-8)
SHARPNESS_AMOUNT = (-0.5, 0.5)
# range of the suppression threshold, as a fraction of the mean over the template brain: from just above the engine's
# air noise to where most real motion-1 ghosts fade
SUPPRESSION_THRESHOLD = (0.03, 0.08)
WARP_GAMMA = (0.77, 1.3)  # drawn log-uniform
WARP_KNOTS = 5  # of the monotone warp, ends fixed at 0 and 1
# share of the inner knots' outputs drawn at random (sorted) rather than on the identity line
WARP_JITTER = 0.4


def check_names(names: tuple[str, ...]) -> None:
    unknown = sorted(set(names) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {list(AUGMENTATIONS)}")


@lru_cache(maxsize=4)
def protected_brain(shape: tuple[int, int, int]) -> np.ndarray:
    """Template brain on the model grid without the medulla (slices of tiny area): what a cut must spare."""
    brain = template_brain(shape).copy()
    area = brain.sum(axis=(0, 1))
    brain[..., area < PROTECTED_AREA_FRACTION * area.max()] = False
    return brain


def cut_below_brain(volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zero the voxels under a tilted plane z = z0 + slope (y - y_centre) lying below the protected brain."""
    brain = protected_brain(volume.shape)
    slope = np.tan(np.deg2rad(rng.uniform(-CUT_TILT_DEG, CUT_TILT_DEG)))
    y = np.arange(volume.shape[1]) - (volume.shape[1] - 1) / 2.0
    _, by, bz = np.nonzero(brain)
    # the plane may rise to the lowest protected voxel, not past it
    highest = float(np.min(bz - slope * y[by]))
    z0 = highest - rng.uniform(0.0, CUT_DEPTH_VOX)
    below = np.arange(volume.shape[2])[np.newaxis, :] < z0 + slope * y[:, np.newaxis]  # [Y, Z]
    out = volume.copy()
    out[:, below] = 0.0
    return out


@lru_cache(maxsize=4)
def outside_weight(shape: tuple[int, int, int]) -> np.ndarray:
    """0 in the template brain and its margin, rising smoothly to 1 outside: where the gain applies."""
    brain = template_brain(shape)
    kept = ndimage.binary_dilation(brain, iterations=GAIN_BRAIN_MARGIN_VOX)
    weight = ndimage.gaussian_filter((~kept).astype(np.float32), GAIN_SMOOTHING_VOX)
    weight[brain] = 0.0
    return weight


def gain_outside_brain(volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The volume times a smooth log-normal gain outside the brain, clipped to the [0, 1] input range."""
    field = ndimage.gaussian_filter(rng.standard_normal(volume.shape).astype(np.float32), GAIN_SMOOTHING_VOX)
    field /= field.std()
    gain = rng.uniform(*GAIN_LEVEL) * np.exp(rng.uniform(*GAIN_LOG_SD) * field)
    weight = outside_weight(volume.shape)
    return np.clip(volume * (1.0 + weight * (gain - 1.0)), 0.0, 1.0).astype(volume.dtype)


def sharpened(volume: np.ndarray, amount: float) -> np.ndarray:
    """The volume plus `amount` times its fine detail (unsharp mask; < 0 blurs), clipped to the [0, 1] input range.
    Also how benchmarks/bench_default_models.py asks whether a model reads sharpness as an artefact."""
    detail = volume - ndimage.gaussian_filter(volume, SHARPNESS_SMOOTHING_VOX)
    return np.clip(volume + amount * detail, 0.0, 1.0).astype(volume.dtype)


def change_sharpness(volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return sharpened(volume, rng.uniform(*SHARPNESS_AMOUNT))


def suppress_background(volume: np.ndarray, threshold: float) -> np.ndarray:
    """The volume with its air below `threshold` (a fraction of the template-brain mean) set to 0: every voxel
    under the threshold that is not enclosed by voxels at or above it."""
    level = threshold * float(volume[template_brain(volume.shape)].mean())
    air = ~ndimage.binary_fill_holes(volume >= level)
    out = volume.copy()
    out[air] = 0.0
    return out


def warp_intensity(volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random gamma, then a monotone warp through jittered knots, of a [0, 1] volume.

    >>> v = np.linspace(0, 1, 11, dtype=np.float32).reshape(11, 1, 1)
    >>> w = warp_intensity(v, np.random.default_rng(0)).ravel()
    >>> bool(w[0] == 0 and w[-1] == 1 and np.all(np.diff(w) > 0))
    True
    """
    gamma = float(np.exp(rng.uniform(*np.log(WARP_GAMMA))))
    inner = np.linspace(0, 1, WARP_KNOTS)[1:-1]
    outputs = np.r_[
        0.0, (1 - WARP_JITTER) * inner + WARP_JITTER * np.sort(rng.uniform(0, 1, inner.size)), 1.0
    ]
    return np.interp(np.clip(volume, 0, 1) ** gamma, np.linspace(0, 1, WARP_KNOTS), outputs).astype(
        volume.dtype
    )


def swap_heads(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The batch [N, 1, X, Y, Z] where each image, with probability 1/2, has the head of another image drawn from
    the batch (itself excluded) around its own brain + margin."""
    n = batch.shape[0]
    out = batch.copy()
    if n < 2:
        return out
    head = ~template_brain(batch.shape[2:], BRAIN_WINDOW_MARGIN_MM)
    for i in range(n):
        if rng.random() < PROBABILITY:
            donor = (i + rng.integers(1, n)) % n
            out[i, 0][head] = batch[donor, 0][head]
    return out


def augment_batch(batch: np.ndarray, names: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """A batch [N, 1, X, Y, Z] with each named augmentation applied to each image with probability 1/2."""
    if not names:
        return batch
    out = swap_heads(batch, rng) if "head_swap" in names else batch.copy()  # first: donors as rendered
    for i in range(out.shape[0]):
        if "flip" in names and rng.random() < PROBABILITY:
            out[i, 0] = out[i, 0, ::-1]
        if "fov_cut" in names and rng.random() < PROBABILITY:
            out[i, 0] = cut_below_brain(out[i, 0], rng)
        # at the scanner, before the rest
        if "background_suppression" in names and rng.random() < PROBABILITY:
            out[i, 0] = suppress_background(out[i, 0], rng.uniform(*SUPPRESSION_THRESHOLD))
        if "outside_gain" in names and rng.random() < PROBABILITY:  # last: runs without it draw as before
            out[i, 0] = gain_outside_brain(out[i, 0], rng)
        if "sharpness" in names and rng.random() < PROBABILITY:
            out[i, 0] = change_sharpness(out[i, 0], rng)  # last of an image's draws, as outside_gain
        # after the rest: runs without it as before
        if "intensity_warp" in names and rng.random() < PROBABILITY:
            out[i, 0] = warp_intensity(out[i, 0], rng)
    return out
