"""Domain randomisation of the synthetic engine (flairqc_app/synth/randomise.py, SynthConfig(randomise=True)):
off by default, its draws vary over their stated ranges, FLAIR's tissue order holds, presentations stay passes."""

import hashlib

import nibabel as nib
import numpy as np
import pytest

from flairqc_app.synth import SynthConfig, randomise, render_case
from flairqc_app.synth.params import (
    PATHOLOGIES,
    PRESENTATIONS,
    RANDOMISATION,
    REGISTERED_GRIDS,
    TISSUE_LABELS,
)

DRAWS = [randomise.draw(seed) for seed in range(300)]


def digest(case) -> str:
    return hashlib.sha256(np.asarray(case.image.dataobj).tobytes()).hexdigest()[:16]


def test_off_by_default_the_engine_renders_as_for_the_shipped_models():
    # digests of the engine before randomisation existed (commit 7b1fd43): the 1.2.0 recipe's images are unchanged
    assert digest(render_case(5, config=SynthConfig(grid="2mm"))) == "70b34ac0702af388"
    assert (
        digest(render_case(5, motion=2, noise=1, contrast=1, config=SynthConfig(grid="2mm")))
        == "e32b9d445ef0eb27"
    )


@pytest.mark.parametrize(
    "name",
    [
        "gamma",
        "saturation_percentile",
        "snr",
        "bias_amplitude",
        "crop_margin_mm",
        "float_scale",
        "float_offset",
    ],
)
def test_each_drawn_quantity_spans_its_stated_range(name):
    span = {"gamma": RANDOMISATION.gamma, "snr": RANDOMISATION.clean_snr}.get(name) or getattr(
        RANDOMISATION, name
    )
    lo, hi = (span.lo, span.hi) if hasattr(span, "lo") else span
    values = np.array([getattr(d, name) for d in DRAWS])
    assert values.min() >= lo and values.max() <= hi
    assert np.ptp(values) > 0.8 * (hi - lo)  # it really varies, over most of the range


def test_levels_vary_widely_and_keep_flair_order():
    levels = {k: np.array([d.levels[k] for d in DRAWS]) for k in ("csf", "wm", "gm", "lesion", "fat")}
    assert np.all(levels["csf"] < levels["wm"]) and np.all(levels["wm"] < levels["gm"])
    assert np.all(levels["gm"] < levels["lesion"])
    ratio = levels["gm"] / levels["wm"]
    assert ratio.min() < 1.1 and ratio.max() > 1.5  # beyond the engine's own 1.12-1.45
    assert np.ptp(levels["wm"]) > 0.8 * (RANDOMISATION.wm.hi - RANDOMISATION.wm.lo)
    assert levels["csf"].max() / levels["wm"][levels["csf"].argmax()] <= RANDOMISATION.csf_to_wm.hi


def test_warps_are_monotone_and_resolutions_anisotropic():
    for d in DRAWS:
        assert d.warp[0] == 0.0 and d.warp[-1] == 1.0 and np.all(np.diff(d.warp) > 0)
    slices = np.array([d.voxel_mm[2] for d in DRAWS])
    assert slices.min() < 1.1 and slices.max() > 1.9
    assert {d.presentation for d in DRAWS} == set(PRESENTATIONS) and {d.pathology for d in DRAWS} == set(
        PATHOLOGIES
    )


def test_a_randomised_flair_keeps_csf_dark_gm_above_wm_and_lesions_bright():
    for seed in range(2):
        case = render_case(
            seed,
            config=SynthConfig(
                grid="2mm", randomise=True, presentation="as_acquired", pathology="heavy_lesions"
            ),
            with_tissue=True,
        )
        data = np.asarray(case.image.dataobj, np.float32)
        median = {k: np.median(data[case.tissue == TISSUE_LABELS[k]]) for k in ("csf", "wm", "gm", "lesion")}
        assert median["csf"] < median["wm"] < median["gm"] < median["lesion"], median
        assert case.labels["gen_lesion_ml"] > 5.0  # a heavy load; the engine draws 1-25 small lesions


def test_unknown_presentation_or_pathology_is_refused_at_once():
    with pytest.raises(ValueError, match="unknown presentation 'defaced'"):
        SynthConfig(randomise=True, presentation="defaced")
    with pytest.raises(ValueError, match="unknown pathology"):
        randomise.draw(0, pathology="glioma")


def test_straight_rejects_are_not_randomised():
    config = SynthConfig(grid="2mm")
    for reject in ("wrong_contrast_t2w", "segmentation"):
        plain = render_case(3, reject=reject, config=config)
        randomised = render_case(3, reject=reject, config=SynthConfig(grid="2mm", randomise=True))
        assert digest(plain) == digest(randomised)
        assert randomised.labels["straight_reject"] == 1 and "gen_presentation" not in randomised.labels


@pytest.mark.slow
@pytest.mark.parametrize("presentation", sorted(PRESENTATIONS))
def test_every_presentation_is_a_pass_with_grade_0_and_looks_as_named(presentation):
    grid = "1mm" if any(s in REGISTERED_GRIDS for s in PRESENTATIONS[presentation]) else "2mm"
    config = SynthConfig(grid=grid, randomise=True, presentation=presentation, pathology="tumour_oedema")
    case = render_case(11, config=config, with_tissue=True)
    assert {k: case.labels[k] for k in ("straight_reject", "motion", "noise", "contrast")} == dict(
        straight_reject=0, motion=0, noise=0, contrast=0
    )
    assert case.labels["gen_presentation"] == presentation
    data = np.asarray(case.image.dataobj)
    steps = PRESENTATIONS[presentation]
    brain = np.isin(case.tissue, [TISSUE_LABELS[k] for k in ("csf", "gm", "wm", "lesion")])
    if "skull_stripped" in steps:
        # only a 1-voxel rim round the brain
        assert np.mean(data[case.tissue == TISSUE_LABELS["head"]] != 0) < 0.2
        assert np.mean(data[brain] != 0) > 0.95
    registered = next((REGISTERED_GRIDS[s] for s in steps if s in REGISTERED_GRIDS), None)
    if registered:
        assert case.image.shape == registered and nib.aff2axcodes(case.image.affine) == ("R", "A", "S")
        assert np.allclose(case.image.header.get_zooms(), 1.0)
    if "cropped" in steps:
        whole = render_case(
            11,
            config=SynthConfig(
                grid=grid, randomise=True, presentation="as_acquired", pathology="tumour_oedema"
            ),
        )
        assert np.prod(case.image.shape) < 0.9 * np.prod(whole.image.shape)
    if "float_n4" in steps:
        assert data.dtype == np.float32 and data.min() < 0 <= np.median(data[brain])
    if "uint8" in steps:
        assert data.dtype == np.uint8
    lesion = case.tissue == TISSUE_LABELS["lesion"]
    # the tumour and its oedema, in ml
    assert lesion.sum() * np.prod(case.image.header.get_zooms()) / 1000 > 3.0


@pytest.mark.slow
def test_an_artefact_shows_on_a_skull_stripped_registered_float_presentation():
    config = SynthConfig(grid="1mm", randomise=True, presentation="mni_stripped_float", pathology="none")
    clean, moved = render_case(21, config=config), render_case(21, motion=2, config=config)
    assert moved.labels["motion"] == 2 and moved.labels["gen_presentation"] == "mni_stripped_float"
    a, b = (np.asarray(c.image.dataobj, np.float32) for c in (clean, moved))
    inside = a != 0
    # moved inside the brain, not only edges
    assert np.abs(a - b)[inside].mean() > 0.05 * np.abs(a[inside]).mean()
