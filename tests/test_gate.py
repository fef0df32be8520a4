"""Every input-gate reason on a crafted file, and the real images that must pass or be stopped."""

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import REALDATA, make_dataset, write_nifti
from scipy import ndimage

from flairqc_app import tsv
from flairqc_app.cli import main
from flairqc_app.config import GATE_LIMITS
from flairqc_app.exceptions import GateConfigError
from flairqc_app.gate import check_image, describe_limits, read_gate_limits
from flairqc_app.schema import GATE_REASONS


def head(shape=(160, 192, 160)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 100, shape).astype(np.float32)


def test_good_3d_volume_passes_and_reports_geometry(tmp_path):
    path = write_nifti(tmp_path / "a.nii.gz", head(), zooms=(1.0, 1.0, 1.2))
    result = check_image(path, {"MRAcquisitionType": "3D"})
    assert result.status == "ok" and result.reason is None
    assert result.image.shape == (160, 192, 160)
    assert result.geometry == {
        "dim_x": 160,
        "dim_y": 192,
        "dim_z": 160,
        "voxel_size_x": 1.0,
        "voxel_size_y": 1.0,
        "voxel_size_z": 1.2,
    }


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
    elif reason == "voxels_too_coarse":
        write_nifti(path, head((80, 80, 60)), zooms=(3.0, 3.0, 3.0))
        return path, {"MRAcquisitionType": "3D"}
    elif reason == "sidecar_2d":
        write_nifti(path, head())
        return path, {"MRAcquisitionType": "2D"}
    elif reason == "small_field_of_view":
        write_nifti(path, head((160, 192, 40)), zooms=(1.0, 1.0, 1.0))
    return path, {}


@pytest.mark.parametrize("reason", GATE_REASONS)
def test_each_reason_on_a_crafted_file(tmp_path, reason):
    path, metadata = crafted(tmp_path, reason)
    result = check_image(path, metadata)
    assert result.reason == reason, result.detail
    assert result.status == GATE_REASONS[reason][0]
    assert result.detail


def test_the_sidecar_comes_first_and_all_problems_are_listed_in_the_detail(tmp_path):
    path = write_nifti(tmp_path / "x.nii.gz", head((256, 256, 20)), zooms=(0.9, 0.9, 6.0))
    result = check_image(path, {"MRAcquisitionType": "2D"})
    assert result.reason == "sidecar_2d"
    assert "fewer than 24" in result.detail and "6 mm slices" in result.detail


@pytest.mark.parametrize(
    "zooms, metadata, reason, words",
    [
        ((1.0, 1.0, 1e12), {}, "voxel_size_out_of_range", "pixdim/affine is wrong"),
        ((1.0, 1.0, 1e12), {"MRAcquisitionType": "3D"}, "voxel_size_out_of_range", "[1, 1, 1e+12] mm"),
        ((3.0, 3.0, 3.0), {}, "voxels_too_coarse", "coarser than 2 mm"),
        ((1.0, 1.0, 1.0), {"SliceThickness": 5.0}, "acquisition_2d", "5 mm slices (sidecar SliceThickness)"),
        (
            (1.0, 1.0, 1.0),
            {"SliceThickness": 1.0, "SpacingBetweenSlices": 1.5},
            "acquisition_2d",
            "gaps between slices",
        ),
        ((1.0, 1.0, 1.9), {}, "acquisition_2d", "does not say MRAcquisitionType 3D"),
        (
            (1.0, 1.0, 2.5),
            {"MRAcquisitionType": "3D"},
            "acquisition_2d",
            "thicker than the 2 mm of a 3D FLAIR",
        ),
        # overlapping: fine
        (
            (1.0, 1.0, 1.0),
            {"SliceThickness": 1.0, "SpacingBetweenSlices": 0.5},
            None,
            "",
        ),
        ((1.0, 1.0, 1.9), {"MRAcquisitionType": "3d"}, None, ""),
        ((0.47, 0.47, 1.2), {}, None, ""),  # anisotropy 2.55, no longer a reason
    ],
)
def test_reasons_say_what_is_wrong(tmp_path, zooms, metadata, reason, words):
    shape = tuple(max(24, int(round(160 / z))) if z < 100 else 30 for z in zooms)
    path = write_nifti(tmp_path / "x.nii.gz", head(shape), zooms=zooms)
    result = check_image(path, metadata)
    assert result.reason == reason, result.detail
    assert words in (result.detail or "")
    if reason:
        assert result.detail.count(";") == 0  # one problem, said once


def test_not_a_nifti_at_all(tmp_path):
    path = tmp_path / "x.nii.gz"
    path.write_text("hello")
    assert check_image(path, {}).reason == "unreadable"


@pytest.mark.parametrize(
    "name, status, reason",
    [
        ("flair3d_head_1mm", "ok", None),
        ("t1w3d_head", "ok", None),  # a 3D T1w passes the gate: the straight_reject model must catch it
        ("flair2d_6mm_tumour", "skipped", "acquisition_2d"),
        ("t2w2d_head", "skipped", "acquisition_2d"),
    ],
)
def test_real_images(name, status, reason):
    path = REALDATA / f"{name}.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} not available")
    result = check_image(path, {})
    assert (result.status, result.reason) == (status, reason)


def reslice(source: Path, voxel_mm: tuple[float, float, float], path: Path) -> Path:
    """The real image resampled (trilinear) to other voxel sizes along its array axes, same field of view."""
    img = nib.load(str(source))
    old = nib.affines.voxel_sizes(img.affine)
    data = ndimage.zoom(np.asarray(img.dataobj, np.float32), old / np.asarray(voxel_mm), order=1)
    affine = img.affine @ np.diag([*(np.asarray(voxel_mm) / old), 1.0])
    nib.save(nib.Nifti1Image(data.astype(np.int16), affine), str(path))
    return path


@pytest.mark.parametrize(
    "voxel_mm, metadata, status, reason",
    [
        ((0.47, 0.47, 1.2), {"MRAcquisitionType": "3D"}, "ok", None),  # GE CUBE-style reconstruction
        ((0.47, 0.47, 1.2), {}, "ok", None),
        ((1.0, 1.0, 1.9), {"MRAcquisitionType": "3D"}, "ok", None),
        ((1.0, 1.0, 1.9), {}, "skipped", "acquisition_2d"),  # without the sidecar, 1.9 mm slices look 2D
        # a 3 mm stack, whatever it says
        (
            (0.9, 0.9, 3.0),
            {"MRAcquisitionType": "3D"},
            "skipped",
            "acquisition_2d",
        ),
        ((1.0, 1.0, 4.0), {}, "skipped", "acquisition_2d"),
        ((0.8, 0.8, 6.0), {"MRAcquisitionType": "2D"}, "skipped", "sidecar_2d"),
        ((3.0, 3.0, 3.0), {"MRAcquisitionType": "3D"}, "skipped", "voxels_too_coarse"),
    ],
)
def test_the_real_3d_flair_resliced(tmp_path, voxel_mm, metadata, status, reason):
    source = REALDATA / "flair3d_head_1mm.nii.gz"
    if not source.exists():
        pytest.skip(f"{source} not available")
    result = check_image(reslice(source, voxel_mm, tmp_path / "x.nii.gz"), metadata)
    assert (result.status, result.reason) == (status, reason), result.detail
    assert [result.geometry[f"voxel_size_{a}"] for a in "xyz"] == pytest.approx(voxel_mm, abs=0.01)


def test_the_real_2d_flair_is_rejected_even_with_a_3d_sidecar():
    path = REALDATA / "flair2d_6mm_tumour.nii.gz"
    if not path.exists():
        pytest.skip(f"{path} not available")
    result = check_image(path, {"MRAcquisitionType": "3D"})
    assert (result.status, result.reason) == ("skipped", "acquisition_2d")
    assert "6 mm slices" in result.detail


def test_gate_config_overrides_some_limits(tmp_path):
    path = tmp_path / "gate.json"
    path.write_text('{"max_slice_thickness_mm": 2, "min_voxels_per_axis": 30}')
    limits = read_gate_limits(path)
    assert (limits.max_slice_thickness_mm, limits.min_voxels_per_axis) == (2.0, 30)
    assert limits.max_in_plane_mm == GATE_LIMITS.max_in_plane_mm
    assert "max_slice_thickness_mm=2;" in describe_limits(limits)
    image = write_nifti(tmp_path / "x.nii.gz", head((160, 192, 84)), zooms=(1.0, 1.0, 1.9))
    assert check_image(image, {}).reason == "acquisition_2d"
    assert check_image(image, {}, limits).status == "ok"


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"max_slice_thicknes_mm": 2}', "unknown gate limit(s) ['max_slice_thicknes_mm']"),
        ('{"max_in_plane_mm": -1}', "max_in_plane_mm must be a positive number, not -1"),
        ('{"min_voxels_per_axis": 2.5}', "must be a positive integer"),
        ('{"max_in_plane_mm": "2"}', "must be a positive number"),
        ("[1]", "expected a JSON object"),
        ('{"max_in_plane_mm": 2', "cannot read the gate config"),
    ],
)
def test_bad_gate_config_is_named(tmp_path, text, words):
    path = tmp_path / "gate.json"
    path.write_text(text)
    with pytest.raises(GateConfigError) as error:
        read_gate_limits(path)
    assert words in str(error.value) and str(path) in str(error.value)


def test_gate_config_through_the_command_line_is_recorded_and_redoes_images(tmp_path, models_dir):
    bids = make_dataset(tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": head((160, 192, 84))})
    write_nifti(bids / "sub-01/anat/sub-01_FLAIR.nii.gz", head((160, 192, 84)), zooms=(1.0, 1.0, 1.9))
    out, table = tmp_path / "out", tmp_path / "out/sub-01/anat/sub-01_desc-flairqc_FLAIR.tsv"
    command = [str(bids), str(out), "participant", "--models-dir", str(models_dir), "--skip-bids-validation"]
    assert main(command) == 0
    (row,) = tsv.read_table(table)
    assert (row["status"], row["reason"]) == ("skipped", "acquisition_2d")
    assert row["gate_limits"] == describe_limits(GATE_LIMITS)
    config = tmp_path / "gate.json"
    config.write_text('{"max_slice_thickness_mm": 2.0, "min_field_of_view_mm": 200}')
    assert main(command + ["--gate-config", str(config)]) == 0  # new limits, new run key: redone, not reused
    (row,) = tsv.read_table(table)
    # 159.6 mm < 200: the new limits
    assert (row["status"], row["reason"]) == (
        "skipped",
        "small_field_of_view",
    )
    assert (
        "max_slice_thickness_mm=2;" in row["gate_limits"] and "min_field_of_view_mm=200" in row["gate_limits"]
    )
    config.write_text('{"max_slice_thickness": 2.0}')
    assert main(command + ["--gate-config", str(config)]) == 64


def test_bad_gate_config_is_one_line_and_exit_64(tmp_path, models_dir):
    bids = make_dataset(tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": head((32, 32, 32))})
    config = tmp_path / "gate.json"
    config.write_text('{"max_in_plane_mm": 0}')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flairqc_app",
            str(bids),
            str(tmp_path / "out"),
            "participant",
            "--skip-bids-validation",
            "--gate-config",
            str(config),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 64
    assert "Traceback" not in proc.stderr
    assert f"flairqc: error: {config}: max_in_plane_mm must be a positive number, not 0" in proc.stderr
