"""The output grid's numpy helpers (flairqc_app/grid.py), and the layers that must work without ANTs."""

import importlib
import pkgutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from flairqc_app import config
from flairqc_app.grid import clip_and_scale, grid_affine, on_grid, template_brain_mask


def test_clip_and_scale_uses_whole_volume_percentiles():
    volume = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    scaled = clip_and_scale(volume, (2.0, 98.0))
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    # percentiles 2 and 98 of 0..999 are 19.98 and 979.02: 0..19 clip to 0, 980..999 to 1
    assert (scaled == 0.0).sum() == 20 and (scaled == 1.0).sum() == 20
    assert np.all(clip_and_scale(np.ones((4, 4, 4)), (2.0, 98.0)) == 0.0)


@pytest.mark.parametrize("module", ["flairqc_app.grid", "flairqc_app.manifest", "flairqc_app.report.figures"])
def test_the_doctest_examples_hold(module):
    import doctest

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_on_grid_copies_the_overlap_and_leaves_zero_outside():
    data = np.arange(1, 1 + 200 * 240 * 170, dtype=np.int32).reshape(200, 240, 170)
    affine = grid_affine()
    affine[:3, 3] -= (10, 20, -5)  # the image starts 10, 20 voxels before the grid in x, y, 5 after it in z
    out = on_grid(data, affine)
    assert out.shape == config.GRID_SHAPE  # 169 x 208 x 179
    assert np.array_equal(out[:, :, 5:175], data[10:179, 20:228, :])
    assert not out[:, :, :5].any() and not out[:, :, 175:].any()


def test_on_grid_refuses_an_image_off_the_grid():
    affine = grid_affine()
    affine[0, 3] += 0.5
    with pytest.raises(ValueError, match="do not coincide"):
        on_grid(np.zeros((4, 4, 4)), affine)


@pytest.mark.slow
def test_template_brain_mask_is_the_ants_nearest_neighbour_resampling():
    """The numpy mask is exactly what ANTs' nearest-neighbour resampling onto the grid gives."""
    from flairqc_app.preprocess import ants, output_grid

    mask = ants.image_read(str(config.BRAIN_MASK), pixeltype="float")
    resampled = ants.resample_image_to_target(mask, output_grid(), interp_type="nearestNeighbor")
    expected = ants.to_nibabel_nifti(resampled).get_fdata() > 0.5
    assert np.array_equal(template_brain_mask(), expected)
    assert nib.load(config.BRAIN_MASK).shape != config.GRID_SHAPE  # the copy did crop and pad


def package_modules(package: str) -> list[str]:
    modules = pkgutil.iter_modules(importlib.import_module(package).__path__, package + ".")
    return [package] + [m.name for m in modules]


WITHOUT_ANTS = [
    *package_modules("flairqc_app.report"),
    *package_modules("flairqc_app.train"),
    "flairqc_app.grade",
    "flairqc_app.grid",
    "flairqc_app.infer",
    "flairqc_app.participant",  # ANTs only for an image past the gate: a run of refused images stays small (#32)
    "flairqc_app.levels",
]


@pytest.mark.parametrize("module", WITHOUT_ANTS)
def test_module_imports_without_ants(module):
    """Reports, grading, inference and training work on the grid and never load antspyx at import (the
    training cache loads it only when it preprocesses)."""
    code = f"import sys, {module}; assert 'ants' not in sys.modules, 'ants loaded'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
