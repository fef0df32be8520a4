"""The real-proxy set (flairqc_app/train/proxy.py): variants keep the image and change its presentation; TorchIO
degradations follow their drawn parameters and grow with the level; the plan shares one draw across variants."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import REALDATA, template_head
from scipy import ndimage

from flairqc_app.config import FLAIR_TEMPLATE
from flairqc_app.train import proxy

pytest.importorskip("torchio")


def small_head() -> nib.Nifti1Image:
    """The FLAIR template at 2 mm: a quick head with tissue contrast (GM above WM, CSF dark)."""
    return template_head().slicer[::2, ::2, ::2]


def fake_anchor(img: nib.Nifti1Image) -> proxy.Anchor:
    """Masks from the image itself (the real anchor registers; the variants only read its masks here)."""
    data = np.asarray(img.dataobj, np.float32)
    head = proxy.head_mask(data)
    return proxy.Anchor(brain=ndimage.binary_erosion(head, iterations=3), head=head, transform=Path("unused"))


def value_at_world(img: nib.Nifti1Image, point_mm: np.ndarray) -> float:
    ijk = np.rint(np.linalg.solve(img.affine, np.r_[point_mm, 1.0])[:3]).astype(int)
    return float(np.asarray(img.dataobj)[tuple(ijk)])


@pytest.mark.parametrize("artefact", ["motion", "noise", "contrast"])
@pytest.mark.parametrize("level", [1, 2])
def test_drawn_parameters_lie_in_the_level_grid_and_repeat_with_the_seed(artefact, level):
    grid = proxy.LEVELS[artefact][level]
    for seed in range(20):
        params = proxy.draw_degradation(artefact, level, np.random.default_rng(seed))
        assert params == proxy.draw_degradation(artefact, level, np.random.default_rng(seed))
        if artefact == "motion":
            shots = len(params["times"])
            assert grid["shots"].lo <= shots <= grid["shots"].hi
            assert params["times"] == sorted(params["times"])
            largest_rotation = np.abs(params["degrees"]).max(axis=1)
            assert np.all(largest_rotation <= grid["degrees"].hi + 1e-3)
            assert np.ptp(largest_rotation) < 1e-6  # every shot has one axis at the drawn size
            assert grid["ghost_intensity"].lo <= params["ghost_intensity"] <= grid["ghost_intensity"].hi
        elif artefact == "noise":
            assert grid["snr"].lo <= params["snr"] <= grid["snr"].hi
        else:
            assert grid["gamma"].lo <= params["gamma"] <= grid["gamma"].hi
            assert np.abs(params["bias_coefficients"]).max() <= grid["bias"].hi
    with pytest.raises(ValueError, match="no degradation grid"):
        proxy.draw_degradation(artefact, 3, np.random.default_rng(0))


def test_levels_are_ordered_so_a_level_2_is_never_milder_than_a_level_1():
    assert proxy.LEVELS["motion"][2]["translation_mm"].lo > proxy.LEVELS["motion"][1]["translation_mm"].hi
    assert proxy.LEVELS["noise"][2]["snr"].hi < proxy.LEVELS["noise"][1]["snr"].lo
    assert proxy.LEVELS["contrast"][2]["gamma"].hi < proxy.LEVELS["contrast"][1]["gamma"].lo


def test_noise_has_the_drawn_snr_and_keeps_the_data_type():
    img = small_head()
    data = np.asarray(img.dataobj, np.float32)
    params = proxy.draw_degradation("noise", 1, np.random.default_rng(3))
    noisy = proxy.apply_degradation(img, "noise", params)
    assert noisy.get_data_dtype() == img.get_data_dtype()
    head = proxy.head_mask(data)
    sigma = np.std(np.asarray(noisy.dataobj, np.float32)[head] - data[head])
    assert sigma == pytest.approx(np.median(data[head]) / params["snr"], rel=0.1)


def test_contrast_flattens_grey_white_keeps_their_order_and_leaves_air_dark():
    img = small_head()
    data = np.asarray(img.dataobj, np.float32)
    bright, mid = (
        data > np.percentile(data, 97),
        (data > np.percentile(data, 80)) & (data < np.percentile(data, 85)),
    )
    ratios = []
    for level in (0, 1, 2):
        out = (
            data
            if level == 0
            else np.asarray(
                proxy.apply_degradation(
                    img, "contrast", proxy.draw_degradation("contrast", level, np.random.default_rng(0))
                ).dataobj,
                np.float32,
            )
        )
        ratios.append(out[bright].mean() / out[mid].mean())
        assert np.array_equal(out[data == 0], data[data == 0])
    assert ratios[0] > ratios[1] > ratios[2] > 1.0


def test_motion_blurs_more_at_level_2_than_at_level_1():
    img = small_head()
    data = np.asarray(img.dataobj, np.float32)
    change = [
        np.abs(
            np.asarray(
                proxy.apply_degradation(
                    img, "motion", proxy.draw_degradation("motion", level, np.random.default_rng(1))
                ).dataobj,
                np.float32,
            )
            - data
        ).mean()
        for level in (1, 2)
    ]
    assert 0 < change[0] < change[1]


def test_apply_rejects_an_unknown_artefact():
    with pytest.raises(ValueError, match="unknown artefact"):
        proxy.apply_degradation(small_head(), "blur", {})


def test_variants_keep_the_head_where_it_is_and_change_only_its_presentation():
    img = small_head()
    anchor = fake_anchor(img)
    data = np.asarray(img.dataobj, np.float32)
    centre = img.affine[:3, :3] @ (np.array(img.shape) / 2) + img.affine[:3, 3]
    centre_value = value_at_world(img, centre)
    for name in ("native", "cropped", "reoriented", "background_zeroed"):
        assert value_at_world(proxy.VARIANTS[name](img, anchor), centre) == centre_value, name
    stripped = np.asarray(proxy.brain_extracted(img, anchor).dataobj)
    assert np.all(stripped[~anchor.brain] == 0) and np.array_equal(stripped[anchor.brain], data[anchor.brain])
    cropped = proxy.cropped(img, anchor)
    assert all(c < n for c, n in zip(cropped.shape, img.shape))
    shifted = np.asarray(proxy.float_offset(img, anchor).dataobj)
    assert shifted.dtype == np.float32 and shifted.min() < 0
    exported = np.asarray(proxy.uint8_export(img, anchor).dataobj)
    assert exported.dtype == np.uint8 and np.mean(exported[anchor.head] == 255) == pytest.approx(
        0.005, abs=0.003
    )
    assert nib.aff2axcodes(proxy.reoriented(img, anchor).affine) == ("P", "S", "L")
    resliced = proxy.resliced(img, anchor)
    assert resliced.header.get_zooms() == pytest.approx((1.0, 1.0, 1.5), abs=1e-4)
    assert value_at_world(resliced, centre) == pytest.approx(centre_value, rel=0.2)
    zeroed = np.asarray(proxy.background_zeroed(img, anchor).dataobj)
    assert np.all(zeroed[~anchor.head] == 0) and np.array_equal(
        zeroed[anchor.head], np.asarray(img.dataobj)[anchor.head]
    )


def test_plan_shares_each_draw_across_variants_and_names_cases_apart():
    cases = proxy.plan_cases(("native", "uint8_export"), seeds=(0, 1))
    assert len(cases) == 2 * (1 + 3 * 2 * 2)
    assert len({c.name for c in cases}) == len(cases)
    by_variant = {v: [c.params for c in cases if c.variant == v] for v in ("native", "uint8_export")}
    assert by_variant["native"] == by_variant["uint8_export"]
    assert len(set(by_variant["native"])) == 1 + 3 * 2 * 2  # every (artefact, level, seed) its own draw
    with pytest.raises(ValueError, match="unknown variants: skullless"):
        proxy.plan_cases(("skullless",))


def test_render_degrades_before_presenting():
    img = small_head()
    anchor = fake_anchor(img)
    case = next(c for c in proxy.plan_cases(("brain_extracted",), ("noise",)) if c.level == 2)
    out = np.asarray(proxy.render(img, anchor, case).dataobj)
    clean = np.asarray(proxy.render(img, anchor, proxy.ProxyCase("brain_extracted")).dataobj)
    assert np.all(out[~anchor.brain] == 0)  # the noise outside the brain went with the skull
    assert np.abs(out - clean)[anchor.brain].mean() > 0
    assert json.loads(case.params)["snr"] <= proxy.LEVELS["noise"][2]["snr"].hi


@pytest.mark.slow
@pytest.mark.skipif(not (REALDATA / "flair3d_head_1mm.nii.gz").exists(), reason="no realdata-dev")
def test_anchor_brings_the_template_brain_onto_the_real_flair(tmp_path):
    clean = nib.load(str(REALDATA / "flair3d_head_1mm.nii.gz"))
    anchor = proxy.anchor_of(clean, tmp_path)
    assert 1.2e6 < anchor.brain.sum() < 2.0e6  # voxels of 1 mm: an adult brain with its CSF rim, dilated 3 mm
    assert np.mean(anchor.head[anchor.brain]) > 0.99
    data = np.asarray(clean.dataobj, np.float32)
    assert np.median(data[anchor.brain]) > 3 * np.median(data[~anchor.head])  # the brain, not the air
    assert proxy.mni_1mm(clean, anchor).shape == nib.load(str(FLAIR_TEMPLATE)).shape
