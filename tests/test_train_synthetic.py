"""The synthetic training cache: world-coordinate placement on the model grid, labels and splits from the engine."""

from pathlib import Path

import numpy as np
import pytest

from flairqc_app.config import GRID_ORIGIN_RAS_MM, GRID_SHAPE
from flairqc_app.synth import SynthConfig, write_dataset
from flairqc_app.train import synthetic
from flairqc_app.train.cache import CacheRecipe, VolumeCache, prepare
from flairqc_app.train.labels import read_labels
from flairqc_app.train.synthetic import JOURNAL_NAME, Part, build_cache, to_model_grid

SHAPE = (57, 70, 60)
RECIPE = CacheRecipe(SHAPE)


def test_world_planes_land_where_their_world_position_says() -> None:
    """For each axis, an image bright beyond a world plane: its edge on the model grid sits at that plane."""
    affine = np.diag([-1.5, 1.5, 2.0, 1.0])  # LAS storage, anisotropic
    affine[:3, 3] = [90.0, -110.0, -90.0]
    ijk = np.indices((120, 150, 90)).reshape(3, -1)
    world = (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape(3, 120, 150, 90)
    step = (np.array(GRID_SHAPE) - 1) / (np.array(SHAPE) - 1)
    axes = np.array(GRID_ORIGIN_RAS_MM)[:, None] + np.arange(max(SHAPE))[None, :] * step[:, None]
    for axis, plane in enumerate((20.0, -30.0, 15.0)):
        out = to_model_grid((world[axis] > plane).astype(np.float32) * 100.0, affine, SHAPE)
        assert out.shape == SHAPE and out.min() == 0.0 and out.max() == 1.0
        # the grid overhangs the image
        profile = np.median(np.moveaxis(out, axis, 0).reshape(SHAPE[axis], -1), axis=1)
        coords = axes[axis][: SHAPE[axis]]
        inside = (coords > -60) & (coords < 60)  # away from the image borders
        assert np.all(profile[inside & (coords > plane + step[axis])] > 0.99), axis
        assert np.all(profile[inside & (coords < plane - step[axis])] < 0.01), axis


def test_cache_holds_engine_images_with_their_labels_and_splits(tmp_path: Path) -> None:
    parts = [
        Part("s", "source", 2, seed=1, artefact_fraction=0.0),
        Part("r", "target", 2, seed=2, reject_fraction=1.0),
        Part("u", "target", 1, seed=3, labelled=False),
        Part("x", "target", 1, seed=4, split="test", artefact_fraction=1.0),
    ]
    cache = build_cache(tmp_path / "cache", [i for p in parts for i in p.items()], RECIPE, jobs=2)
    samples = {s.participant_id: s for s in cache.read_samples()}
    assert sorted(samples) == ["sub-r0000", "sub-r0001", "sub-s0000", "sub-s0001", "sub-u0000", "sub-x0000"]
    assert [samples[f"sub-s000{i}"].grades for i in range(2)] == [
        {"motion": 0, "noise": 0, "contrast": 0}
    ] * 2
    assert all(samples[f"sub-r000{i}"].straight_reject == 1 for i in range(2))
    assert samples["sub-u0000"].labelled is False and samples["sub-u0000"].domain == "target"
    test = samples["sub-x0000"]
    assert test.split == "test" and test.straight_reject == 0 and max(test.grades.values()) >= 1
    for sample in samples.values():
        volume = cache.load(sample.key)
        assert volume.shape == SHAPE and float(volume.min()) >= 0.0 and float(volume.max()) <= 1.0
    clean = cache.load(samples["sub-s0000"].key).astype(np.float32)
    assert clean.std() > 0.1  # a head, not an empty grid


def test_a_part_names_a_known_split_and_validates_on_labelled_flair_only() -> None:
    assert {i.split for i in Part("v", "target", 3, seed=5, split="validation").items()} == {"validation"}
    with pytest.raises(ValueError, match="'v'.*'valid'"):
        Part("v", "target", 3, seed=5, split="valid")
    # a validation part of T1w or of unlabelled FLAIR would never reach a validation pool
    with pytest.raises(ValueError, match="labelled target"):
        Part("v", "source", 3, seed=5, split="validation")
    with pytest.raises(ValueError, match="labelled target"):
        Part("v", "target", 3, seed=5, split="validation", labelled=False)


def test_a_part_may_carry_one_artefact_alone_in_both_grades() -> None:
    """Every non-reject image of an only_artefact part has that artefact, grades 1 and 2 in turn, and no other;
    the straight rejects and the anatomy the planner drew are the same as without the option."""
    plain = Part("m", "target", 12, seed=6, reject_fraction=0.3).items()
    items = Part("m", "target", 12, seed=6, reject_fraction=0.3, only_artefact="motion").items()
    assert [i.spec.reject for i in items] == [i.spec.reject for i in plain]
    assert [(i.spec.seed, i.spec.subject_seed) for i in items] == [
        (i.spec.seed, i.spec.subject_seed) for i in plain
    ]
    kept = [i.spec for i in items if i.spec.reject is None]
    assert len(kept) >= 4
    assert [(s.motion, s.noise, s.contrast) for s in kept] == [(1 + s.subject % 2, 0, 0) for s in kept]
    with pytest.raises(ValueError, match="'m'.*'ghosting'"):
        Part("m", "target", 2, seed=6, only_artefact="ghosting")


def test_switching_the_motion_grading_renders_only_images_with_motion_again() -> None:
    """Images without motion are the same under either grading (no plan is drawn), so they keep their cache
    identity; every image with motion gets a new one."""
    items = Part("m", "target", 12, seed=6, reject_fraction=0.3).items()
    ids = {
        g: [synthetic.item_id(i, SynthConfig(motion_grading=g), "world") for i in items]
        for g in ("displacement", "visible")
    }
    moved = [i.spec.motion > 0 for i in items]
    assert 0 < sum(moved) < len(items)
    assert [a != b for a, b in zip(ids["displacement"], ids["visible"])] == moved


def test_a_randomised_cache_is_another_cache_and_the_plain_one_keeps_its_identity() -> None:
    """Domain randomisation (SynthConfig.randomise) gives every image a new cache identity; without it the ids are
    those of the 1.2.0 recipe's cache (nothing added to them)."""
    items = Part("r", "target", 6, seed=7, reject_fraction=0.3).items()
    plain = [synthetic.item_id(i, SynthConfig(), "world") for i in items]
    assert plain == [synthetic.item_id(i, SynthConfig(randomise=False), "world") for i in items]
    randomised = [synthetic.item_id(i, SynthConfig(randomise=True), "world") for i in items]
    assert all(a != b for a, b in zip(plain, randomised))


def test_interrupted_cache_resumes_without_rendering_done_images_again(tmp_path: Path, monkeypatch) -> None:
    items = [
        i
        for p in (Part("s", "source", 2, seed=1), Part("x", "target", 2, seed=4, reject_fraction=0.5))
        for i in p.items()
    ]
    root = tmp_path / "cache"
    whole = build_cache(root, items, RECIPE).read_samples()
    journal = root / JOURNAL_NAME
    lines = journal.read_text().splitlines()
    assert len(lines) == 4
    cache = VolumeCache(root)
    stamps = {s.participant_id: cache.path(s.key).stat().st_mtime_ns for s in whole}
    # killed while rendering the third image, mid-way through its journal line
    (root / "samples.tsv").unlink()
    journal.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    assert build_cache(root, items, RECIPE).read_samples() == whole
    again = {s.participant_id: cache.path(s.key).stat().st_mtime_ns for s in whole}
    rendered = {p for p in stamps if again[p] != stamps[p]}
    assert rendered == {s.participant_id for s in whole[2:]}  # only the unfinished images
    assert build_cache(root, items, RECIPE).read_samples() == whole  # complete: nothing rendered
    assert {s.participant_id: cache.path(s.key).stat().st_mtime_ns for s in whole} == again
    other_seed = Part("s", "source", 2, seed=2).items()  # same participants, other images: not reused
    changed = build_cache(root, other_seed, RECIPE).read_samples()
    assert {s.key for s in changed}.isdisjoint({s.key for s in whole})
    monkeypatch.setattr(synthetic, "renderer_fingerprint", lambda: "changed engine")  # same plans, other code
    assert build_cache(root, items, RECIPE).read_samples() == whole  # same pixels here, but all drawn again
    assert all(cache.path(s.key).stat().st_mtime_ns != again[s.participant_id] for s in whole)


@pytest.mark.slow
def test_prepare_preprocesses_an_engine_dataset_like_the_bids_app(tmp_path: Path) -> None:
    """flairqc-synth BIDS dataset -> flairqc-train prepare with the real preprocessing (T1w to the T1w template)."""
    bids = write_dataset(
        tmp_path / "synth", 3, seed=7, reject_fraction=0.0, config=SynthConfig(grid="2mm"), progress=False
    )
    labels = {r.filename: r for r in read_labels(bids / "labels.tsv")}
    recipe = CacheRecipe((24, 29, 25), "fast", test_fraction=0.0, same_subjects=True)
    samples = prepare(bids, bids, tmp_path / "cache", recipe)
    assert (
        sorted((s.domain, s.filename.split("_")[-1]) for s in samples)
        == [("source", "T1w.nii.gz")] * 3 + [("target", "FLAIR.nii.gz")] * 3
    )
    cache = VolumeCache(tmp_path / "cache")
    for sample in samples:
        assert sample.group == sample.participant_id  # same people in both domains: split together
        assert sample.grades == labels[sample.filename].grades
        assert sample.registration_ncc > 0.5, (sample.filename, sample.registration_ncc)
        volume = cache.load(sample.key)
        assert volume.shape == (24, 29, 25) and float(volume.max()) == 1.0


@pytest.mark.slow
def test_preprocessed_cache_holds_what_the_bids_app_computes(tmp_path: Path) -> None:
    """preprocess="fast": each image goes through the BIDS-App preprocessing (T1w to the T1w template)."""
    from flairqc_app.config import FLAIR_TEMPLATE, PREPROC_RECIPES, T1W_TEMPLATE
    from flairqc_app.grid import resize_to
    from flairqc_app.preprocess import preprocess_image
    from flairqc_app.synth.plan import render_spec

    items = Part("s", "source", 1, seed=5).items() + Part("t", "target", 1, seed=6).items()
    cache = build_cache(tmp_path / "cache", items, CacheRecipe(SHAPE, "fast"), jobs=2)
    assert cache.recipe == "synth-fast"
    by_participant = {s.participant_id: s for s in cache.read_samples()}
    for item, template in zip(items, (T1W_TEMPLATE, FLAIR_TEMPLATE)):
        image = render_spec(item.spec, SynthConfig(grid="2mm")).image
        expected = resize_to(
            preprocess_image(image, template, PREPROC_RECIPES["fast"], tmp_path).volume, SHAPE
        )
        cached = cache.load(by_participant[item.participant].key).astype(np.float32)
        assert np.corrcoef(cached.ravel(), expected.ravel())[0, 1] > 0.99
