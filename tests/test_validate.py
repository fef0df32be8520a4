"""BIDS validation: file-level errors fail only their images (bids_invalid), dataset-level ones stop the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import IN_TREE, make_dataset, participant_command

from flairqc_app import tsv
from flairqc_app.validate import Finding, ValidationReport, deno_finding

SMALL = np.zeros((32, 32, 32), np.float32)  # constant: a gate reject, processed without preprocessing
needs_deno = pytest.mark.skipif(
    shutil.which("bids-validator-deno") is None, reason="bids-validator-deno not installed"
)


def flairqc(bids: Path, out: Path, models: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        participant_command(bids, out, models, *extra, launcher=IN_TREE, validate=True),
        capture_output=True,
        text=True,
        timeout=600,
    )


def row(out: Path, label: str) -> dict:
    (only,) = tsv.read_table(out / f"sub-{label}" / "anat" / f"sub-{label}_desc-flairqc_FLAIR.tsv")
    return only


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """sub-01 fine, sub-02 an unreadable FLAIR, sub-03 a sidecar against the schema, sub-04 a broken T1w only."""
    bids = make_dataset(
        tmp_path / "bids",
        {f"sub-0{i}/anat/sub-0{i}_FLAIR.nii.gz": SMALL for i in (1, 2, 3)}
        | {"sub-04/anat/sub-04_T1w.nii.gz": SMALL},
    )
    (bids / "sub-02/anat/sub-02_FLAIR.nii.gz").write_bytes(b"not a NIfTI" * 40)
    (bids / "sub-03/anat/sub-03_FLAIR.json").write_text(json.dumps({"EchoTime": "long"}))
    (bids / "sub-04/anat/sub-04_T1w.nii.gz").write_bytes(b"not a NIfTI" * 40)
    return bids


@needs_deno
def test_file_level_errors_fail_only_their_images(dataset, tmp_path, models_dir):
    out = tmp_path / "out"
    proc = flairqc(dataset, out, models_dir)
    assert proc.returncode == 1, proc.stderr  # some images failed, the others were processed
    assert "Traceback" not in proc.stderr
    assert row(out, "01")["status"] == "skipped" and row(out, "01")["reason"] == "constant_intensity"
    broken, schema = row(out, "02"), row(out, "03")
    assert (broken["status"], broken["reason"]) == ("failed", "bids_invalid")
    assert broken["reason_detail"].startswith(
        "NIFTI_HEADER_UNREADABLE: /sub-02/anat/sub-02_FLAIR.nii.gz: We were"
    )
    assert (schema["status"], schema["reason"]) == ("failed", "bids_invalid")
    assert (
        "JSON_SCHEMA_VALIDATION_ERROR/EchoTime: /sub-03/anat/sub-03_FLAIR.json: must be"
        in schema["reason_detail"]
    )
    assert "bids_invalid" in (out / "logs" / "crash-sub-02_FLAIR.txt").read_text()
    assert "passed at the dataset level" in proc.stderr and "0 dataset-level" in proc.stderr
    (findings_file,) = (out / "logs").glob("bids-validation-*.json")
    findings = json.loads(findings_file.read_text())
    located = {(f["code"], f["location"]) for f in findings["findings"] if f["severity"] == "error"}
    assert ("NIFTI_HEADER_UNREADABLE", "/sub-04/anat/sub-04_T1w.nii.gz") in located  # listed, blocks nothing
    assert findings["summary"] in proc.stderr


@needs_deno
def test_dataset_level_errors_stop_the_run_with_their_message(dataset, tmp_path, models_dir):
    (dataset / "dataset_description.json").unlink()
    out = tmp_path / "out"
    proc = flairqc(dataset, out, models_dir)
    assert proc.returncode == 16
    assert (
        "MISSING_DATASET_DESCRIPTION: (dataset): A dataset_description.json file is required" in proc.stderr
    )
    # only the blocking ones
    assert "NIFTI_HEADER_UNREADABLE" not in proc.stderr.split("failed BIDS validation")[1]
    assert not list(out.glob("sub-*")) and len(list((out / "logs").glob("bids-validation-*.json"))) == 1


def test_builtin_check_fails_a_badly_named_flair_only(dataset, tmp_path, models_dir):
    (dataset / "sub-02/anat/sub-02_FLAIR.nii.gz").unlink()
    (dataset / "sub-03/anat/sub-03_FLAIR.json").unlink()
    (dataset / "sub-01/anat/sub-01_FLAIR.nii.gz").rename(dataset / "sub-01/anat/sub-01_acq-a_b_FLAIR.nii.gz")
    (dataset / "sub-03/anat/sub-03_FLAIR.nii.gz").rename(dataset / "sub-03/anat/sub-03_acq-x_FLAIR.nii.gz")
    out = tmp_path / "out"
    without_deno = ":".join(
        p for p in os.environ["PATH"].split(":") if not (Path(p) / "bids-validator-deno").exists()
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flairqc_app",
            str(dataset),
            str(out),
            "participant",
            "--models-dir",
            str(models_dir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": without_deno},
    )
    assert proc.returncode == 1, proc.stderr
    assert "built-in minimal check" in proc.stderr
    (bad,) = tsv.read_table(out / "sub-01/anat/sub-01_acq-a_b_desc-flairqc_FLAIR.tsv")
    assert (bad["status"], bad["reason"]) == ("failed", "bids_invalid")
    assert bad["reason_detail"] == (
        "INVALID_FLAIR_NAME: /sub-01/anat/sub-01_acq-a_b_FLAIR.nii.gz: not a valid BIDS FLAIR file name"
    )
    (fine,) = tsv.read_table(out / "sub-03/anat/sub-03_acq-x_desc-flairqc_FLAIR.tsv")
    assert fine["status"] == "skipped"


def test_a_validator_issue_without_a_message_takes_its_codes_text():
    messages = {"MISSING_DATASET_DESCRIPTION": "A dataset_description.json file is required in the root"}
    finding = deno_finding(
        {
            "code": "MISSING_DATASET_DESCRIPTION",
            "severity": "error",
            "affects": ["/dataset_description.json"],
        },
        messages,
    )
    assert finding.text() == (
        "MISSING_DATASET_DESCRIPTION: (dataset): A dataset_description.json file is required in the root"
    )
    assert not finding.file_level
    sidecar = deno_finding(
        {
            "code": "JSON_SCHEMA_VALIDATION_ERROR",
            "subCode": "EchoTime",
            "severity": "error",
            "location": "/sub-01/sub-01_FLAIR.json",
            "issueMessage": "must be\nnumber",
            "affects": ["/sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz"],
        },
        {},
    )
    report = ValidationReport("v", [sidecar, Finding("W", "warning", "/sub-02/anat/sub-02_FLAIR.nii.gz")])
    assert report.errors_for("sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz") == [
        "JSON_SCHEMA_VALIDATION_ERROR/EchoTime: /sub-01/sub-01_FLAIR.json: must be number"
    ]
    assert report.errors_for("sub-02/anat/sub-02_FLAIR.nii.gz") == []  # warnings fail nothing
    assert report.dataset_errors == [] and not report.ok
