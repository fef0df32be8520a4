"""Every input-gate reason on a crafted file, and the real images that must pass or be stopped."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import REALDATA, write_nifti

from flairqc_app.gate import REASONS, check_image


def head(shape=(160, 192, 160)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 100, shape).astype(np.float32)


def test_good_3d_volume_passes_and_reports_geometry(tmp_path):
    path = write_nifti(tmp_path / "a.nii.gz", head(), zooms=(1.0, 1.0, 1.2))
    result = check_image(path, {"MRAcquisitionType": "3D"})
    assert result.status == "ok" and result.reason is None
    assert result.image.shape == (160, 192, 160)
    assert result.geometry == {"dim_x": 160, "dim_y": 192, "dim_z": 160,
                               "voxel_size_x": 1.0, "voxel_size_y": 1.0, "voxel_size_z": 1.2}


def test_single_volume_4d_is_fine(tmp_path):
    path = write_nifti(tmp_path / "a.nii.gz", head()[..., np.newaxis])
    result = check_image(path, {})
    assert result.status == "ok" and result.image.ndim == 3


def crafted(tmp_path: Path, reason: str) -> tuple[Path, dict]:
    path = tmp_path / f"{reason}.nii.gz"
    if reason == "unreadable":
        good = write_nifti(tmp_path / "good.nii.gz", head())
        path.write_bytes(good.read_bytes()[:4000])  # truncated gzip stream
    elif reason == "degenerate_affine":
        affine = np.eye(4)
        affine[2, 2] = 0.0  # a collapsed axis: the sform alone carries it (a qform cannot)
        img = nib.Nifti1Image(head(), None)
        img.set_sform(affine, code=1)
        img.set_qform(None, code=0)
        nib.save(img, str(path))
    elif reason == "non_finite":
        data = head()
        data[10, 10, 10] = np.nan
        write_nifti(path, data)
    elif reason == "not_3d":
        write_nifti(path, np.stack([head((64, 64, 64))] * 3, axis=-1))
    elif reason == "constant_intensity":
        write_nifti(path, np.full((160, 192, 160), 7.0, np.float32))
    elif reason == "too_few_slices":
        write_nifti(path, head((160, 192, 16)), zooms=(1.0, 1.0, 1.0))
    elif reason == "voxel_size_out_of_range":
        write_nifti(path, head((160, 160, 160)), zooms=(0.1, 0.1, 0.1))
    elif reason == "acquisition_2d":
        write_nifti(path, head((256, 256, 30)), zooms=(0.9, 0.9, 5.0))
    elif reason == "sidecar_2d":
        write_nifti(path, head())
        return path, {"MRAcquisitionType": "2D"}
    elif reason == "small_field_of_view":
        write_nifti(path, head((160, 192, 40)), zooms=(1.0, 1.0, 1.0))
    return path, {}


GATE_REASONS = [r for r in REASONS if r not in ("preprocessing_error", "inference_error")]


@pytest.mark.parametrize("reason", GATE_REASONS)
def test_each_reason_on_a_crafted_file(tmp_path, reason):
    path, metadata = crafted(tmp_path, reason)
    result = check_image(path, metadata)
    assert result.reason == reason, result.detail
    assert result.status == REASONS[reason][0]
    assert result.detail


def test_all_problems_are_listed_in_the_detail(tmp_path):
    path = write_nifti(tmp_path / "x.nii.gz", head((256, 256, 20)), zooms=(0.9, 0.9, 6.0))
    result = check_image(path, {"MRAcquisitionType": "2D"})
    assert result.reason == "acquisition_2d"
    assert "fewer than 24" in result.detail and "MRAcquisitionType is 2D" in result.detail


def test_not_a_nifti_at_all(tmp_path):
    path = tmp_path / "x.nii.gz"
    path.write_text("hello")
    assert check_image(path, {}).reason == "unreadable"


@pytest.mark.parametrize("name, status, reason", [
    ("flair3d_head_1mm", "ok", None),
    ("t1w3d_head", "ok", None),  # a 3D T1w passes the gate: the straight_reject model must catch it
    ("flair2d_6mm_tumour", "skipped", "acquisition_2d"),
    ("t2w2d_head", "skipped", "acquisition_2d"),
])
def test_real_images(name, status, reason):
    path = REALDATA / f"{name}.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} not available")
    result = check_image(path, {})
    assert (result.status, result.reason) == (status, reason)
