"""IQMs through the BIDS-App: columns in the per-image and group TSVs, n/a with reasons where an image has no
air or no phase-encoding direction, the MRIQC-layout JSON behind --iqm-json, and the verdict untouched."""

import hashlib
import json

import nibabel as nib
import numpy as np
import pytest
from helpers import build_models_dir, make_dataset, template_head

from flairqc_app.cli import main
from flairqc_app.iqm.definitions import IQM_COLUMNS, IQMS
from flairqc_app.tsv import data_dictionary, read_table

pytestmark = pytest.mark.slow
BACKGROUND = ("iqm_snrd_wm", "iqm_fber", "iqm_qi1", "iqm_gsr")


def with_air_noise(img: nib.Nifti1Image, sigma: float, seed: int = 0) -> nib.Nifti1Image:
    """The brain-only template head as a magnitude image: Rician noise everywhere, so the air is not zero."""
    rng = np.random.default_rng(seed)
    data = np.asarray(img.dataobj, np.float32)
    noisy = np.hypot(data + rng.normal(0, sigma, data.shape), rng.normal(0, sigma, data.shape))
    return nib.Nifti1Image(noisy.astype(np.float32), img.affine)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("iqms")
    bids = make_dataset(
        root / "bids",
        {
            "sub-01/anat/sub-01_FLAIR.nii.gz": with_air_noise(template_head(), 10.0),
            "sub-02/anat/sub-02_FLAIR.nii.gz": template_head(),
        },
        {"sub-01/anat/sub-01_FLAIR.json": {"PhaseEncodingDirection": "j", "Manufacturer": "Siemens"}},
    )
    out = root / "out"
    code = main(
        [
            str(bids),
            str(out),
            "participant",
            "group",
            "--skip-bids-validation",
            "--iqm-json",
            "--models-dir",
            str(build_models_dir(root / "models", biases={"motion_moderate": 2.0})),
        ]
    )
    return {"bids": bids, "out": out, "code": code}


def test_every_iqm_is_computed_for_an_image_with_air_and_a_phase_encoding_direction(run):
    assert run["code"] == 0
    row = read_table(run["out"] / "sub-01/anat/sub-01_desc-flairqc_FLAIR.tsv")[0]
    assert row["status"] == "ok" and row["tier"] == 2  # the models' verdict, whatever the IQMs say
    assert all(isinstance(row[c], float) for c in IQM_COLUMNS), {c: row[c] for c in IQM_COLUMNS}
    assert row["iqm_notes"] is None
    assert (
        0 < row["iqm_efc"] < 1
        and row["iqm_snr_wm"] > 1
        and row["iqm_cnr"] > 0.5
        and 1 < row["iqm_fwhm_avg"] < 6
    )


def test_a_skull_stripped_image_has_background_iqms_na_with_the_reason(run):
    row = read_table(run["out"] / "sub-02/anat/sub-02_desc-flairqc_FLAIR.tsv")[0]
    assert row["status"] == "ok" and row["tier"] == 2
    assert all(row[c] is None for c in BACKGROUND)
    assert all(f"{c}: background zeroed" in row["iqm_notes"] for c in BACKGROUND)
    assert all(isinstance(row[c], float) for c in IQM_COLUMNS if c not in BACKGROUND)


def test_group_table_and_dictionary_carry_the_iqms(run):
    rows = read_table(run["out"] / "group_FLAIR.tsv")
    assert [r["bids_name"] for r in rows] == ["sub-01_FLAIR", "sub-02_FLAIR"]
    assert (
        rows[0]["iqm_cnr"]
        == read_table(run["out"] / "sub-01/anat/sub-01_desc-flairqc_FLAIR.tsv")[0]["iqm_cnr"]
    )
    dictionary = json.loads((run["out"] / "group_FLAIR.json").read_text())
    assert dictionary == data_dictionary()
    for iqm in IQMS:
        entry = dictionary[iqm.column]
        assert entry["Units"] == iqm.units and entry["TermURL"].startswith("https://doi.org/")
        assert f"Space: {iqm.space}" in entry["Description"] and "Reference:" in entry["Description"]


def test_iqm_json_export_has_mriqc_layout(run):
    path = run["out"] / "sub-01/anat/sub-01_desc-iqms_FLAIR.json"
    document = json.loads(path.read_text())
    row = read_table(run["out"] / "sub-01/anat/sub-01_desc-flairqc_FLAIR.tsv")[0]
    pairs = (
        ("cnr", "iqm_cnr"),
        ("cjv", "iqm_cjv"),
        ("efc", "iqm_efc"),
        ("fber", "iqm_fber"),
        ("qi_1", "iqm_qi1"),
        ("snr_wm", "iqm_snr_wm"),
        ("fwhm_avg", "iqm_fwhm_avg"),
        ("inu_range", "iqm_inu_range"),
    )
    # TSV: 6 digits
    assert {k: document[k] for k, _ in pairs} == pytest.approx({k: row[c] for k, c in pairs}, rel=1e-5)
    source = run["bids"] / "sub-01/anat/sub-01_FLAIR.nii.gz"
    assert document["provenance"]["md5sum"] == hashlib.md5(source.read_bytes()).hexdigest()
    assert document["provenance"]["software"] == "flairqc" and document["provenance"]["warnings"] == {}
    assert document["bids_meta"] == {
        "PhaseEncodingDirection": "j",
        "Manufacturer": "Siemens",
        "subject_id": "01",
        "modality": "FLAIR",
    }
    stripped = json.loads((run["out"] / "sub-02/anat/sub-02_desc-iqms_FLAIR.json").read_text())
    assert "fber" not in stripped and stripped["provenance"]["warnings"]["fber"].startswith(
        "background zeroed"
    )
    assert "*_desc-iqms_FLAIR.json" in (run["out"] / ".bidsignore").read_text().splitlines()
