"""Training-time augmentation keeps the brain and the labels: flips mirror, FOV cuts spare the brain, the gain
outside the brain leaves the brain as it was, sharpness changes fine detail only, background suppression zeroes
only the air under its threshold, a head swap replaces the head around a kept brain with another image's."""

import numpy as np
import pytest
from scipy import ndimage

from flairqc_app.train import settings
from flairqc_app.train.augment import (
    GAIN_LEVEL,
    SHARPNESS_SMOOTHING_VOX,
    augment_batch,
    change_sharpness,
    cut_below_brain,
    gain_outside_brain,
    outside_weight,
    protected_brain,
    suppress_background,
)
from flairqc_app.train.template_grid import BRAIN_WINDOW_MARGIN_MM, template_brain

SHAPE = (57, 70, 60)  # the default models' input shape


def test_flip_mirrors_left_right_only():
    batch = np.random.default_rng(0).random((8, 1, *SHAPE), dtype=np.float32)
    out = augment_batch(batch, ("flip",), np.random.default_rng(1))
    flipped = [np.array_equal(o[0], b[0, ::-1]) for o, b in zip(out, batch)]
    kept = [np.array_equal(o, b) for o, b in zip(out, batch)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image either mirrored or untouched
    assert 0 < sum(flipped) < len(batch)
    assert np.array_equal(augment_batch(batch, ("flip",), np.random.default_rng(1)), out)  # seeded


def test_fov_cut_spares_the_brain_and_cuts_below_it():
    head = np.ones(SHAPE, np.float32)
    brain = protected_brain(SHAPE)
    assert brain.any() and not brain[..., :3].any()  # the medulla at the grid bottom is not protected
    rng = np.random.default_rng(3)
    for _ in range(20):
        cut = cut_below_brain(head, rng)
        zeroed = cut == 0
        assert not (zeroed & brain).any()
        assert zeroed[..., 0].any()  # the bottom of the grid goes, at least where the plane is lowest
        assert not zeroed[..., SHAPE[2] // 2 :].any()  # nothing above the middle
        assert (zeroed == zeroed[:1]).all()  # a plane: the same along left-right


def test_fov_cut_is_tilted_like_a_real_field_of_view():
    slopes = set()
    rng = np.random.default_rng(5)
    for _ in range(10):
        zeroed = cut_below_brain(np.ones(SHAPE, np.float32), rng)[0] == 0  # [Y, Z]
        depth = zeroed.sum(axis=1)  # zeroed slices per posterior-anterior position
        slopes.add(int(np.sign(depth[-1] - depth[0])))
    assert slopes >= {-1, 1}


def test_outside_gain_leaves_the_brain_and_the_air_and_varies_smoothly_outside():
    head = np.full(SHAPE, 0.5, np.float32)
    head[..., :4] = 0.0  # air below the head
    weight = outside_weight(SHAPE)
    brain = protected_brain(SHAPE)
    rng = np.random.default_rng(7)
    levels = []
    for _ in range(10):
        out = gain_outside_brain(head, rng)
        assert np.array_equal(out[brain], head[brain]) and np.array_equal(out[weight == 0], head[weight == 0])
        assert not out[..., :4].any()  # zeros stay zeros
        assert out.min() >= 0.0 and out.max() <= 1.0
        gain = out[weight == 1] / 0.5
        assert gain.std() > 0.03  # not a constant factor
        levels.append(np.median(gain))
        along = out[:, :, 50][weight[:, :, 50] == 1]  # an axial slice far outside: neighbours alike (smooth)
        assert np.corrcoef(along[:-1], along[1:])[0, 1] > 0.5
    assert min(levels) < 1.0 < max(levels) and GAIN_LEVEL[0] / 2 < min(levels)


def test_outside_gain_draws_after_the_other_augmentations():
    batch = np.random.default_rng(0).random((6, 1, *SHAPE), dtype=np.float32)
    both = augment_batch(batch, ("flip", "outside_gain"), np.random.default_rng(2))
    flips = augment_batch(batch[:1], ("flip",), np.random.default_rng(2))
    brain = protected_brain(SHAPE)
    assert np.array_equal(both[0, 0][brain], flips[0, 0][brain])  # image 0 flipped as without outside_gain
    gained = 0
    for out, image in zip(both[:, 0], batch[:, 0]):
        as_drawn = image if np.array_equal(out[brain], image[brain]) else image[::-1]
        # every brain is the original or its mirror, untouched
        assert np.array_equal(out[brain], as_drawn[brain])
        gained += not np.array_equal(out[~brain], as_drawn[~brain])
    assert 0 < gained < len(batch)  # the gain is drawn per image, with probability 1/2


def detail_sd(volume: np.ndarray) -> float:
    return float(
        (volume - ndimage.gaussian_filter(volume, SHARPNESS_SMOOTHING_VOX))[10:-10, 10:-10, 10:-10].std()
    )


def test_sharpness_blurs_or_sharpens_and_keeps_the_smooth_content():
    rng = np.random.default_rng(12)
    head = (0.5 + 0.1 * rng.standard_normal(SHAPE)).astype(np.float32)  # fine detail on a flat level
    before = detail_sd(head)
    ratios = []
    for _ in range(30):
        out = change_sharpness(head, rng)
        assert out.min() >= 0.0 and out.max() <= 1.0 and out.dtype == head.dtype
        core = (slice(10, -10),) * 3
        smooth = ndimage.gaussian_filter(out, 3.0)[core]
        assert np.abs(smooth - ndimage.gaussian_filter(head, 3.0)[core]).max() < 0.01  # coarse content kept
        ratios.append(detail_sd(out) / before)
    assert min(ratios) < 0.65 and max(ratios) > 1.35  # both ways, by up to half the detail
    assert 0.45 < min(ratios) and max(ratios) < 1.55


def test_sharpness_is_drawn_per_image_and_seeded():
    batch = np.random.default_rng(0).random((8, 1, *SHAPE), dtype=np.float32)
    out = augment_batch(batch, ("sharpness",), np.random.default_rng(4))
    changed = [not np.array_equal(o, b) for o, b in zip(out, batch)]
    assert 0 < sum(changed) < len(batch)  # with probability 1/2 per image
    assert np.array_equal(augment_batch(batch, ("sharpness",), np.random.default_rng(4)), out)


def noisy_head_with_a_ghost() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A bright head around the template brain with a dark pool inside it (a ventricle), noisy air and a ghost in it."""
    brain = template_brain(SHAPE)
    head = ndimage.binary_dilation(brain, iterations=3)
    pool = ndimage.binary_erosion(brain, iterations=6)
    volume = np.abs(0.02 * np.random.default_rng(9).standard_normal(SHAPE)).astype(np.float32)  # air noise
    volume[head] = 0.8
    volume[pool] = 0.01  # darker than the air's noise, but enclosed
    ghost = np.zeros(SHAPE, bool)
    ghost[2:8, 30:40, -8:-2] = True  # above the head, as a ghost along the phase-encode axis would be
    volume[ghost] = 0.2
    return volume, head, ghost, pool


def test_background_suppression_zeroes_the_air_and_keeps_ghosts_and_the_enclosed_dark():
    volume, head, ghost, pool = noisy_head_with_a_ghost()
    assert pool.any() and not (ghost & ndimage.binary_dilation(head, iterations=2)).any()
    air = ~head & ~ghost
    level = 0.08 * volume[template_brain(SHAPE)].mean()  # the dark pool lowers the brain mean: ~0.03
    out = suppress_background(volume, 0.08)
    assert (volume[air] > 0).all() and (out[air] == 0).mean() > 0.85
    under = air & (volume < level)
    assert np.count_nonzero(out[under]) < 1e-4 * under.sum()  # all of it goes, but voxels walled in by noise
    # noise above it stays
    assert np.array_equal(out[air & (volume >= level)], volume[air & (volume >= level)])
    assert np.array_equal(out[head], volume[head])  # the head, its dark pool included, untouched
    assert np.array_equal(out[ghost], volume[ghost])  # the ghost stands out of a black background
    low = suppress_background(volume, 0.01)  # under most of the noise: little of the air goes
    assert (low[air] == 0).mean() < 0.5
    batch = np.stack([volume] * 8)[:, np.newaxis]
    drawn = augment_batch(batch, ("background_suppression",), np.random.default_rng(6))
    suppressed = [(o[0][air] == 0).mean() > 0.9 for o in drawn]
    assert 0 < sum(suppressed) < len(batch)  # with probability 1/2 per image
    assert np.array_equal(augment_batch(batch, ("background_suppression",), np.random.default_rng(6)), drawn)


def test_head_swap_gives_an_image_another_images_head_and_keeps_its_brain():
    n = 10
    batch = np.stack([np.full(SHAPE, i + 1.0, np.float32) for i in range(n)])[
        :, np.newaxis
    ]  # image i is all i + 1
    kept = template_brain(SHAPE, BRAIN_WINDOW_MARGIN_MM)
    assert template_brain(SHAPE).sum() < kept.sum() < 0.6 * kept.size
    out = augment_batch(batch, ("head_swap",), np.random.default_rng(4))
    donors = []
    for i, image in enumerate(out[:, 0]):
        assert (image[kept] == i + 1).all()  # the brain and its margin are the image's own
        head = np.unique(image[~kept])
        assert len(head) == 1  # one donor gives the whole head
        donors.append(int(head[0]) - 1)
    swapped = [d != i for i, d in enumerate(donors)]
    assert 0 < sum(swapped) < n  # with probability 1/2 per image, never from itself
    assert len({d for d, s in zip(donors, swapped) if s}) > 1  # donors drawn, not one image for all
    assert np.array_equal(augment_batch(batch, ("head_swap",), np.random.default_rng(4)), out)  # seeded
    # alone
    assert np.array_equal(augment_batch(batch[:1], ("head_swap",), np.random.default_rng(4)), batch[:1])


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="rotate"):
        settings.from_dict({"augment": ["flip", "rotate"]})
    assert settings.from_dict({"augment": ["flip"]}).augment == ("flip",)
    batch = np.zeros((2, 1, 4, 4, 4), np.float32)
    assert augment_batch(batch, (), np.random.default_rng(0)) is batch


def test_intensity_warp_keeps_tissue_order_varies_the_histogram_and_draws_last():
    from flairqc_app.train.augment import WARP_GAMMA, warp_intensity

    volume = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    order = np.argsort(volume, axis=None)
    warped = [warp_intensity(volume, np.random.default_rng(seed)) for seed in range(10)]
    for w in warped:
        assert np.all(np.diff(w.ravel()[order]) >= 0)  # monotone: every voxel keeps its rank
        assert w.min() >= 0 and w.max() <= 1
    medians = [float(np.median(w)) for w in warped]
    assert max(medians) - min(medians) > 0.1  # the histogram really moves from draw to draw
    # contrast grade 2 (GM/WM <= 1.054) stays under grade 0 (>= 1.12) whatever gamma is drawn
    assert 1.054 ** WARP_GAMMA[1] < 1.12 ** WARP_GAMMA[0]
    changed = 0
    # one image: the same flip and sharpening with or without the warp, which draws last
    for seed in range(8):
        without = augment_batch(volume[None, None], ("flip", "sharpness"), np.random.default_rng(seed))[0, 0]
        warped = augment_batch(
            volume[None, None], ("flip", "sharpness", "intensity_warp"), np.random.default_rng(seed)
        )[0, 0]
        assert np.all(np.diff(warped.ravel()[np.argsort(without, axis=None)]) >= 0)
        changed += not np.array_equal(without, warped)
    assert 0 < changed < 8
