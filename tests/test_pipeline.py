"""Participant then group on a small dataset, end to end through the CLI; resume; parallel jobs; browser.

The models are the tests' own (helpers.build_models_dir): constant probabilities chosen so that the
verdict is known in advance (motion moderate fires: tier 2), while preprocessing and inference are real.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import nibabel as nib
import pytest
from helpers import REALDATA, build_models_dir, make_dataset, participant_command, sigmoid, template_head

from flairqc_app import __version__
from flairqc_app.cli import main
from flairqc_app.group import group_stem
from flairqc_app.tsv import read_table

pytestmark = pytest.mark.slow
BIASES = {"motion_moderate": 2.0}  # all other tasks: bias -4 -> p = 0.018


def real_or_template(name: str) -> nib.Nifti1Image:
    path = REALDATA / f"{name}.nii.gz"
    return nib.load(str(path)) if path.exists() else template_head()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    bids = make_dataset(
        root / "bids",
        {
            "sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz": real_or_template("flair3d_head_1mm"),
            "sub-02/anat/sub-02_acq-2d_FLAIR.nii.gz": template_head(),
        },
        {
            "sub-01/ses-1/anat/sub-01_ses-1_FLAIR.json": {
                "Manufacturer": "<script>alert(1)</script>",
                "MagneticFieldStrength": 3,
                "MRAcquisitionType": "3D",
            },
            "sub-02/anat/sub-02_acq-2d_FLAIR.json": {"MRAcquisitionType": "2D"},
        },
    )
    broken = bids / "sub-03/anat/sub-03_FLAIR.nii.gz"
    broken.parent.mkdir(parents=True)
    nib.save(template_head(), str(broken))
    broken.write_bytes(broken.read_bytes()[:20000])
    (bids / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\nsub-03\n")
    models = build_models_dir(root / "models", biases=BIASES)
    out = root / "out"
    code = main([str(bids), str(out), "participant", "group", "--models-dir", str(models)])
    return {"bids": bids, "out": out, "models": models, "code": code}


@pytest.fixture
def own_run(run, tmp_path):
    """A copy of the shared run's outputs for a test that writes into them: the shared run stays as made."""
    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    return {**run, "out": out}


def table(run, rel):
    rows = read_table(run["out"] / rel)
    assert len(rows) == 1
    return rows[0]


def test_exit_code_says_one_image_failed(run):
    assert run["code"] == 1


def test_ok_image_row(run):
    row = table(run, "sub-01/ses-1/anat/sub-01_ses-1_desc-flairqc_FLAIR.tsv")
    assert (row["status"], row["straight_reject"], row["tier"]) == ("ok", 0, 2)
    assert (row["motion"], row["noise"], row["contrast"]) == (1, 0, 0)
    assert row["p_motion_moderate"] == pytest.approx(sigmoid(2.0), abs=1e-5)
    assert row["p_straight_reject"] == pytest.approx(sigmoid(-4.0), abs=1e-5)
    assert (row["participant_id"], row["session_id"], row["bids_name"]) == (
        "sub-01",
        "ses-1",
        "sub-01_ses-1_FLAIR",
    )
    assert row["manufacturer"] == "<script>alert(1)</script>" and row["magnetic_field_strength"] == 3.0
    source = run["bids"] / "sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz"
    assert row["input_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert row["flairqc_version"] == __version__ and row["provider"] == "CPUExecutionProvider"
    assert row["registration_ncc"] > 0.3 and row["seconds"] > 0
    assert (
        run["out"] / "sub-01/ses-1/anat/sub-01_ses-1_from-FLAIR_to-MNI152NLin2009aSym_mode-image_xfm.mat"
    ).exists()


def test_gate_and_failure_rows(run):
    skipped = table(run, "sub-02/anat/sub-02_acq-2d_desc-flairqc_FLAIR.tsv")
    assert (skipped["status"], skipped["reason"], skipped["straight_reject"], skipped["reject_source"]) == (
        "skipped",
        "sidecar_2d",
        1,
        "gate",
    )
    assert skipped["tier"] is None and skipped["p_motion_moderate"] is None
    failed = table(run, "sub-03/anat/sub-03_desc-flairqc_FLAIR.tsv")
    assert (failed["status"], failed["reason"]) == ("failed", "unreadable")
    crash = (run["out"] / "logs" / "crash-sub-03_FLAIR.txt").read_text()
    assert "reason: unreadable" in crash and "sub-03/anat/sub-03_FLAIR.nii.gz" in crash


def test_group_table_and_dictionary(run):
    rows = read_table(run["out"] / "group_FLAIR.tsv")
    assert [r["bids_name"] for r in rows] == ["sub-01_ses-1_FLAIR", "sub-02_acq-2d_FLAIR", "sub-03_FLAIR"]
    assert rows[0] == table(run, "sub-01/ses-1/anat/sub-01_ses-1_desc-flairqc_FLAIR.tsv")
    dictionary = json.loads((run["out"] / "group_FLAIR.json").read_text())
    assert dictionary["tier"]["Levels"]["3"].startswith("bad") and dictionary["seconds"]["Units"] == "s"
    html = (run["out"] / "group_FLAIR.html").read_text()
    assert "sub-03_FLAIR" in html and "<script>alert(1)</script>" not in html


def test_dataset_description_and_validation(run):
    description = json.loads((run["out"] / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Version"] == __version__
    if not shutil.which("bids-validator-deno"):
        pytest.skip("bids-validator-deno not installed")
    proc = subprocess.run(
        ["bids-validator-deno", "--format", "json", str(run["out"])], capture_output=True, text=True
    )
    errors = [i for i in json.loads(proc.stdout)["issues"]["issues"] if i["severity"] == "error"]
    assert not errors


def test_reports_show_the_verdict(run):
    ok = (run["out"] / "sub-01_ses-1_FLAIR.html").read_text()
    assert "Tier 2" in ok and "<script>alert(1)</script>" not in ok
    assert "unreadable" in (run["out"] / "sub-03_FLAIR.html").read_text()


@pytest.mark.browser
def test_report_in_headless_chromium(run, chromium):
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            (run["out"] / "sub-01_ses-1_FLAIR.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # verdict shown, scripts ran
    assert "Tier 2" in proc.stdout and 'data-state="none">not rated<' in proc.stdout


def test_rerun_reuses_done_images_and_redoes_failed(own_run):
    run = own_run
    done = run["out"] / "sub-01/ses-1/anat/sub-01_ses-1_desc-flairqc_FLAIR.tsv"
    before = done.stat().st_mtime_ns
    crash = run["out"] / "logs" / "crash-sub-03_FLAIR.txt"
    crash_before = crash.stat().st_mtime_ns
    time.sleep(0.01)
    assert (
        main(
            [
                str(run["bids"]),
                str(run["out"]),
                "participant",
                "--models-dir",
                str(run["models"]),
                "--skip-bids-validation",
            ]
        )
        == 1
    )
    assert done.stat().st_mtime_ns == before
    assert crash.stat().st_mtime_ns > crash_before


def test_group_filters_apply(own_run):
    run = own_run
    assert main([str(run["bids"]), str(run["out"]), "group", "--participant-label", "01", "03"]) == 0
    table = run["out"] / f"{group_stem({'subject': ['01', '03']})}.tsv"
    assert [r["bids_name"] for r in read_table(table)] == ["sub-01_ses-1_FLAIR", "sub-03_FLAIR"]
    assert main([str(run["bids"]), str(run["out"]), "group", "--session-id", "9"]) == 18


def two_head_dataset(root: Path) -> tuple[Path, Path]:
    bids = make_dataset(
        root / "bids",
        {
            "sub-01/anat/sub-01_FLAIR.nii.gz": template_head((4.0, -3.0, 2.0)),
            "sub-02/anat/sub-02_FLAIR.nii.gz": template_head((-5.0, 2.0, 0.0)),
        },
    )
    return bids, build_models_dir(root / "models", biases=BIASES)


def flairqc(bids, out, models, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        participant_command(bids, out, models, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_resume_after_a_kill(tmp_path):
    bids, models = two_head_dataset(tmp_path)
    out = tmp_path / "out"
    first = out / "sub-01/anat/sub-01_desc-flairqc_FLAIR.tsv"
    second = out / "sub-02/anat/sub-02_desc-flairqc_FLAIR.tsv"
    # one image at a time: the kill lands in the second one
    proc = flairqc(bids, out, models, "--nprocs", "1")
    deadline = time.time() + 400
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert first.exists(), proc.communicate()[0]
    os.killpg(proc.pid, signal.SIGKILL)  # in the middle of the second image
    proc.wait()
    assert not second.exists()
    assert read_table(first)[0]["status"] == "ok"
    done_at = first.stat().st_mtime_ns
    code = main([str(bids), str(out), "participant", "--models-dir", str(models), "--skip-bids-validation"])
    assert code == 0
    assert first.stat().st_mtime_ns == done_at
    assert read_table(second)[0]["status"] == "ok"
    assert main([str(bids), str(out), "group"]) == 0
    assert len(read_table(out / "group_FLAIR.tsv")) == 2  # a temporary file left by the kill is never read


def test_two_participant_jobs_share_one_output_dir(tmp_path):
    bids, models = two_head_dataset(tmp_path)
    out = tmp_path / "out"
    jobs = [
        flairqc(bids, out, models, "--participant-label", label, "--omp-nthreads", "1")
        for label in ("01", "02")
    ]
    logs = [job.communicate(timeout=600)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], logs
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    assert main([str(bids), str(out), "group"]) == 0
    rows = read_table(out / "group_FLAIR.tsv")
    assert [(r["bids_name"], r["status"], r["tier"]) for r in rows] == [
        ("sub-01_FLAIR", "ok", 2),
        ("sub-02_FLAIR", "ok", 2),
    ]
    assert len(list((out / "logs").glob("flairqc-participant-*.log"))) == 2


def test_write_preproc_keeps_the_image_the_models_saw(tmp_path):
    """--write-preproc: the N4-corrected, registered, clipped and scaled image on the MNI grid, with a sidecar."""
    import numpy as np

    from flairqc_app.config import FLAIR_TEMPLATE, GRID_ORIGIN_RAS_MM, GRID_SHAPE
    from flairqc_app.grid import template_brain_mask
    from flairqc_app.preprocess import normalised_cross_correlation, template_on_grid

    bids = make_dataset(
        tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": template_head((6.0, -4.0, 3.0))}
    )
    out = tmp_path / "out"
    args = [
        str(bids),
        str(out),
        "participant",
        "--models-dir",
        str(build_models_dir(tmp_path / "models")),
        "--skip-bids-validation",
        "--write-preproc",
    ]
    assert main(args) == 0
    path = out / "sub-01/anat/sub-01_space-MNI152NLin2009aSym_desc-preproc_FLAIR.nii.gz"
    img = nib.load(str(path))
    volume = np.asarray(img.dataobj, dtype=np.float32)
    assert volume.shape == GRID_SHAPE and volume.min() == 0.0 and volume.max() == 1.0
    assert np.allclose(img.affine[:3, 3], GRID_ORIGIN_RAS_MM) and np.allclose(img.affine[:3, :3], np.eye(3))
    assert int(img.header["sform_code"]) == 4  # MNI
    ncc = normalised_cross_correlation(volume, template_on_grid(FLAIR_TEMPLATE), template_brain_mask())
    assert ncc > 0.9  # the shifted template came back onto the template
    sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["Sources"] == ["bids:raw:sub-01/anat/sub-01_FLAIR.nii.gz"]
    assert read_table(out / "sub-01/anat/sub-01_desc-flairqc_FLAIR.tsv")[0][
        "registration_ncc"
    ] == pytest.approx(ncc, abs=1e-3)
