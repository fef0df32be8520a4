"""Preprocessing (N4, affine registration to the FLAIR template, resampling, clip and scale).

The synthetic head is the shipped template moved by a known affine, so the transform that registration
should recover is known exactly; the real head is the 3D FLAIR of ../shared/realdata-dev.
"""

from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
from alignment_helpers import alignment_error, move_image, world_map
from helpers import REALDATA, template_head

from flairqc_app import config
from flairqc_app.config import PREPROC_RECIPES
from flairqc_app.grid import template_brain_mask
from flairqc_app.preprocess import (
    n4_correct,
    normalised_cross_correlation,
    preprocess_image,
    template_on_grid,
    to_ants,
)

pytestmark = pytest.mark.slow
RECIPE = config.PREPROC_RECIPES[config.DEFAULT_PREPROC]


def test_known_affine_is_recovered(tmp_path):
    a = world_map((6, -4, 10), (8.0, -6.0, 5.0), scale=1.04)
    moved = move_image(nib.load(str(config.FLAIR_TEMPLATE)), a)
    result = preprocess_image(moved, config.FLAIR_TEMPLATE, RECIPE, tmp_path)
    error = alignment_error(result.transform, a)
    print(f"alignment error over the brain: mean {error.mean():.2f} mm, max {error.max():.2f} mm")
    assert error.mean() < 1.0 and error.max() < 2.0
    assert result.volume.shape == config.GRID_SHAPE and result.volume.dtype == np.float32
    assert result.registration_ncc > 0.9  # same contrast as the template: near-perfect match


def test_a_poor_registration_is_retried_and_the_better_transform_kept(tmp_path):
    a = world_map((6, -4, 10), (8.0, -6.0, 5.0), scale=1.04)
    moved = move_image(nib.load(str(config.FLAIR_TEMPLATE)), a)
    crippled = replace(RECIPE.registration, iterations=(0, 0))  # centre-of-mass start only: a poor alignment
    single = preprocess_image(
        moved,
        config.FLAIR_TEMPLATE,
        replace(RECIPE, registration=crippled, retry_registration=None),
        tmp_path / "single",
    )
    retried = preprocess_image(
        moved,
        config.FLAIR_TEMPLATE,
        replace(RECIPE, registration=crippled, retry_below_ncc=single.registration_ncc + 0.01),
        tmp_path / "retried",
    )
    print(f"NCC without retry {single.registration_ncc:.3f}, with retry {retried.registration_ncc:.3f}")
    assert "registration_retry" not in single.timings and "registration_retry" in retried.timings
    assert alignment_error(single.transform, a).mean() > 3.0
    assert alignment_error(retried.transform, a).mean() < 1.0  # the kept transform is the retry's
    assert retried.registration_ncc > 0.9 > single.registration_ncc
    assert [p.name for p in (tmp_path / "retried").iterdir()] == [retried.transform.name]


def test_real_flair_lands_on_the_template():
    path = REALDATA / "flair3d_head_1mm.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} not available")
    result = preprocess_image(nib.load(str(path)), config.FLAIR_TEMPLATE, RECIPE)
    volume, mask = result.volume, template_brain_mask()
    assert volume.min() == 0.0 and volume.max() == 1.0
    covered = (volume[mask] > 0.1).mean()
    reference = template_on_grid(config.FLAIR_TEMPLATE)
    misregistered = normalised_cross_correlation(np.roll(volume, 10, axis=0), reference, mask)
    print(
        f"template brain covered by the registered head: {covered:.3f}; NCC {result.registration_ncc:.3f}, "
        f"after a further 10 mm shift {misregistered:.3f}"
    )
    assert covered > 0.97
    assert result.registration_ncc > 0.35
    assert result.registration_ncc > misregistered + 0.1
    assert set(result.timings) == {"load", "n4", "registration", "resample"}


def test_fast_n4_removes_a_known_bias_from_an_image_with_zero_background():
    """Unmasked N4 stops at once on such images; the fast recipe's head mask makes it work."""
    clean = np.asarray(template_head().dataobj, dtype=np.float32)
    x = np.linspace(-1.0, 1.0, clean.shape[0])[:, None, None]
    biased = clean * np.exp(0.3 * x)  # x 0.74 to x 1.35 from left to right
    corrected = n4_correct(to_ants(nib.Nifti1Image(biased, template_head().affine)), PREPROC_RECIPES["fast"])[
        0
    ].numpy()
    brain = clean > np.percentile(clean[clean > 0], 50)

    def bias_slope(image: np.ndarray) -> float:
        """Slope of log(image / clean) against x inside the brain: 0.3 for the applied bias."""
        ratio = np.log(image[brain] / clean[brain])
        return float(np.polyfit(np.broadcast_to(x, clean.shape)[brain], ratio, 1)[0])

    assert abs(bias_slope(biased) - 0.3) < 1e-3
    assert abs(bias_slope(corrected)) < 0.1, bias_slope(corrected)
