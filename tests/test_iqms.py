"""FLAIR IQMs on synthetic volumes with known answers: a piecewise-constant brain painted from the shipped
tissue labels (2 mm), with known noise, contrast, lesions, ghosts, smoothness and bias."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.io import savemat

from flairqc_app import config
from flairqc_app.iqm import artefacts
from flairqc_app.iqm.compute import compute_iqms
from flairqc_app.iqm.definitions import IQM_COLUMNS
from flairqc_app.iqm.masks import CSF, GM, WM, native_labels, template_labels

MEANS = {CSF: 10.0, GM: 100.0, WM: 70.0}  # FLAIR: CSF nulled, GM brighter than WM


def identity_transform(path: Path) -> Path:
    """An antsRegistration-style affine (ITK MATLAB .mat) that maps every point onto itself."""
    savemat(
        str(path),
        {
            "AffineTransform_double_3_3": np.r_[np.eye(3).ravel(), np.zeros(3)][:, None],
            "fixed": np.zeros((3, 1)),
        },
        format="4",
    )
    return path


def phantom_labels() -> tuple[np.ndarray, np.ndarray]:
    """The shipped tissue labels every 2nd voxel, and the affine of that 2 mm grid."""
    labels, affine = template_labels()
    return labels[::2, ::2, ::2].copy(), affine @ np.diag([2.0, 2.0, 2.0, 1.0])


def painted(labels: np.ndarray, sigma: float, seed: int = 0, rician: bool = True) -> np.ndarray:
    """Class means plus noise of sigma: the magnitude of a complex signal (Rician, air Rayleigh) or, with
    rician=False, Gaussian noise inside the brain only and an exactly zero background."""
    signal = np.zeros(labels.shape, np.float32)
    for label, mean in MEANS.items():
        signal[labels == label] = mean
    rng = np.random.default_rng(seed)
    if rician:
        return np.hypot(signal + rng.normal(0, sigma, signal.shape), rng.normal(0, sigma, signal.shape))
    return np.where(labels > 0, signal + rng.normal(0, sigma, signal.shape), 0.0).astype(np.float32)


def iqms(
    data: np.ndarray,
    affine: np.ndarray,
    tmp_path: Path,
    bias: np.ndarray | None = None,
    metadata: dict | None = None,
) -> dict:
    img = nib.Nifti1Image(data.astype(np.float32), affine)
    field = np.ones(data.shape, np.float32) if bias is None else bias
    return compute_iqms(img, field, identity_transform(tmp_path / "identity.mat"), metadata).row()


def test_known_sigma_gives_the_expected_snrs_within_10_percent(tmp_path):
    labels, affine = phantom_labels()
    sigma = 5.0
    row = iqms(painted(labels, sigma), affine, tmp_path)
    assert row["iqm_snr_wm"] == pytest.approx(MEANS[WM] / sigma, rel=0.10)
    assert row["iqm_snr_brain"] == pytest.approx((MEANS[WM] + MEANS[GM]) / 2 / sigma, rel=0.10)
    assert row["iqm_snrd_wm"] == pytest.approx(MEANS[WM] / sigma, rel=0.10)  # from the Rayleigh air
    assert row["iqm_noise_tissue"] == pytest.approx(sigma / MEANS[WM], rel=0.10)  # Laplacian MAD


def test_tissue_noise_needs_no_air_and_follows_sigma(tmp_path):
    labels, affine = phantom_labels()
    rows = [iqms(painted(labels, sigma, rician=False), affine, tmp_path) for sigma in (2.0, 4.0, 8.0)]
    for sigma, row in zip((2.0, 4.0, 8.0), rows):
        assert row["iqm_noise_tissue"] == pytest.approx(sigma / MEANS[WM], rel=0.10)
        assert row["iqm_snrd_wm"] is None and "iqm_snrd_wm: background zeroed" in row["iqm_notes"]


def test_known_gm_wm_difference_gives_the_expected_cnr_and_cjv(tmp_path):
    labels, affine = phantom_labels()
    sigma = 4.0
    row = iqms(painted(labels, sigma), affine, tmp_path)
    gap = MEANS[GM] - MEANS[WM]
    assert row["iqm_cnr"] == pytest.approx(gap / math.sqrt(2 * sigma**2), rel=0.10)
    assert row["iqm_cjv"] == pytest.approx(2 * sigma / gap, rel=0.10)
    assert row["iqm_wm2max"] == pytest.approx(MEANS[WM] / (MEANS[GM] + 3.3 * sigma), rel=0.10)


def test_lesions_are_counted_and_kept_out_of_the_contrast(tmp_path):
    labels, affine = phantom_labels()
    deep_wm = ndimage.binary_erosion(labels == WM, iterations=2)
    centres = np.argwhere(deep_wm)[:: max(1, int(deep_wm.sum()) // 12)][:12]
    lesion = np.zeros(labels.shape, bool)
    for c in centres:
        lesion[tuple(slice(max(i - 1, 0), i + 2) for i in c)] = True
    lesion &= deep_wm
    clean = painted(labels, 4.0)
    with_lesions = np.where(
        lesion, np.hypot(160 + np.random.default_rng(1).normal(0, 4, clean.shape), 0), clean
    )
    before, after = iqms(clean, affine, tmp_path), iqms(with_lesions, affine, tmp_path)
    parenchyma = int(((labels == GM) | (labels == WM)).sum())
    assert after["iqm_wmh_fraction"] == pytest.approx(lesion.sum() / parenchyma, rel=0.10)
    assert before["iqm_wmh_fraction"] < 0.1 * after["iqm_wmh_fraction"]
    assert after["iqm_cnr"] == pytest.approx(before["iqm_cnr"], rel=0.03)


def test_entropy_focus_criterion_orders_noise_above_an_image_in_air():
    rng = np.random.default_rng(0)
    labels, _ = phantom_labels()
    pure_noise = np.abs(rng.normal(0, 1, labels.shape))
    head = painted(labels, 2.0, rician=False)
    point = np.zeros(labels.shape)
    point[10, 10, 10] = 1
    values = [artefacts.efc(x) for x in (np.ones(labels.shape), pure_noise, head, point)]
    assert values[0] == pytest.approx(1.0, abs=1e-5)
    assert values[0] > values[1] > values[2] > values[3]
    assert values[3] == pytest.approx(0.0, abs=1e-6)
    assert artefacts.efc(ndimage.gaussian_filter(head, 3)) > values[2]  # blur spreads the energy


def test_background_metrics_follow_air_noise_and_ghosts(tmp_path):
    labels, affine = phantom_labels()
    quiet, loud = iqms(painted(labels, 2.0), affine, tmp_path), iqms(painted(labels, 6.0), affine, tmp_path)
    assert quiet["iqm_fber"] > 4 * loud["iqm_fber"]
    assert quiet["iqm_qi1"] == pytest.approx(0.0, abs=1e-4)  # pure Rayleigh air: no artefact
    data = painted(labels, 1.0)
    head = data.copy()  # the ghost stays below the head threshold (10 % of the bright end), as ghosts do
    ghosted = data + 0.08 * np.roll(head, labels.shape[1] // 2, axis=1)
    row = iqms(ghosted, affine, tmp_path, metadata={"PhaseEncodingDirection": "j-"})
    assert row["iqm_qi1"] > 0.01
    ghost_region = np.roll(labels > 0, labels.shape[1] // 2, axis=1) & ~ndimage.binary_dilation(
        labels > 0, iterations=3
    )
    expected = (
        0.08
        * float(np.roll(head, labels.shape[1] // 2, axis=1)[ghost_region].mean())
        / float(data[labels > 0].mean())
    )
    assert row["iqm_gsr"] == pytest.approx(expected, rel=0.25)
    assert (
        iqms(data, affine, tmp_path, metadata={"PhaseEncodingDirection": "j"})["iqm_gsr"]
        < 0.2 * row["iqm_gsr"]
    )


def test_fwhm_of_smoothed_white_noise_matches_the_kernel():
    rng = np.random.default_rng(0)
    mask = np.zeros((64, 64, 64), bool)
    mask[8:-8, 8:-8, 8:-8] = True
    for sigma_vox in (1.0, 2.0):
        noise = ndimage.gaussian_filter(rng.normal(0, 1, mask.shape), sigma_vox)
        widths = artefacts.fwhm(noise, mask, (1.0, 1.0, 2.0))
        expected = sigma_vox * math.sqrt(8 * math.log(2))
        assert widths == pytest.approx((expected, expected, 2 * expected), rel=0.10)


def test_bias_field_statistics(tmp_path):
    labels, affine = phantom_labels()
    x = np.linspace(-1, 1, labels.shape[0], dtype=np.float32)[:, None, None] * np.ones(
        labels.shape, np.float32
    )
    field = 1.2 * np.exp(0.2 * x)
    data = painted(labels, 2.0) * field
    row = iqms(data, affine, tmp_path, bias=field)
    inside = field[labels > 0]
    low, med, high = np.percentile(inside, [5, 50, 95])
    assert row["iqm_inu_med"] == pytest.approx(med, rel=1e-3)
    assert row["iqm_inu_range"] == pytest.approx((high - low) / med, rel=1e-3)
    assert row["iqm_cnr"] == pytest.approx(iqms(painted(labels, 2.0), affine, tmp_path)["iqm_cnr"], rel=0.05)


def test_a_metric_that_cannot_be_computed_is_na_with_a_reason_and_the_others_stand(tmp_path):
    labels, affine = phantom_labels()
    img = nib.Nifti1Image(painted(labels, 3.0, rician=False), affine)
    row = compute_iqms(img, None, identity_transform(tmp_path / "id.mat"), {}).row()
    notes = dict(part.split(": ", 1) for part in row["iqm_notes"].split("; "))
    assert notes["iqm_fber"].startswith("background zeroed") and notes["iqm_qi1"].startswith(
        "background zeroed"
    )
    assert notes["iqm_inu_med"] == notes["iqm_inu_range"] == "no N4 bias field"
    computed = [c for c in IQM_COLUMNS if c not in notes]
    assert computed and all(isinstance(row[c], float) for c in computed)
    assert all(row[c] is None for c in notes)
    with_air = iqms(painted(labels, 3.0), affine, tmp_path)
    assert with_air["iqm_notes"] == "iqm_gsr: no PhaseEncodingDirection in the sidecar"


def test_a_failing_metric_is_na_with_its_error(tmp_path):
    labels, affine = phantom_labels()
    # no spread in GM and WM: SNR cannot be computed
    flat = np.where(labels > 0, 50.0, 0.0).astype(np.float32)
    row = iqms(flat, affine, tmp_path)
    assert row["iqm_cnr"] is None and "iqm_cnr: failed (ValueError" in row["iqm_notes"]
    assert (
        row["iqm_snr_wm"] is None
        and "iqm_snr_wm: failed (ValueError: the voxels have no spread)" in row["iqm_notes"]
    )
    assert row["iqm_efc"] is not None


def test_labels_in_native_space_match_ants(tmp_path):
    """The numpy resampling of the template labels through the inverse affine gives what ANTs gives."""
    import ants
    from alignment_helpers import move_image, world_map

    from flairqc_app.preprocess import register_affine, to_ants

    moved = move_image(
        nib.load(str(config.FLAIR_TEMPLATE)),
        world_map((6, -4, 8), (5.0, -3.0, 4.0), 1.03),
        shape=(120, 140, 120),
        spacing=1.5,
    )
    settings = config.PREPROC_RECIPES["fast"].registration
    transform = register_affine(to_ants(moved), config.FLAIR_TEMPLATE, settings, 1, str(tmp_path / "reg_"))
    ours = native_labels(moved.shape, moved.affine, transform)
    theirs = ants.apply_transforms(
        to_ants(moved),
        ants.image_read(str(config.TISSUE_LABELS), pixeltype="float"),
        [str(transform)],
        interpolator="nearestNeighbor",
        whichtoinvert=[True],
    )
    agreement = float(np.mean(ours == np.rint(theirs.numpy()).astype(np.uint8)))
    assert agreement > 0.995 and (ours == WM).sum() > 10_000


def test_when_the_masks_cannot_be_made_every_iqm_is_na_and_the_image_goes_on(tmp_path):
    from flairqc_app.discover import FlairImage
    from flairqc_app.participant import image_quality_metrics
    from flairqc_app.preprocess import PreprocResult

    labels, affine = phantom_labels()
    path = tmp_path / "sub-01_FLAIR.nii.gz"
    img = nib.Nifti1Image(painted(labels, 3.0), affine)
    image = FlairImage(
        path=path, relpath="sub-01/anat/sub-01_FLAIR.nii.gz", entities={"subject": "01"}, metadata={}
    )
    result = PreprocResult(
        volume=np.zeros((2, 2, 2), np.float32),
        transform=tmp_path / "lost.mat",
        registration_ncc=0.5,
        bias_field=None,
    )
    row = image_quality_metrics(image, img, result)
    assert all(row[c] is None for c in IQM_COLUMNS)
    assert row["iqm_notes"].startswith("all IQMs: failed (FileNotFoundError") and "iqms" in result.timings


@pytest.mark.parametrize("module", ["artefacts", "bias", "contrast", "masks", "noise", "ranking"])
def test_the_doctest_examples_hold(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"flairqc_app.iqm.{module}"))
    assert result.attempted > 0 and result.failed == 0
