"""Scale-out on a real single-node SLURM: the README's job-array recipe (tools/slurm/submit.sh) gives a local run's
rows.

The SLURM comes from tools/slurm/start-local-slurm.sh (Debian's slurm-wlm and munge; .ci/run calls it); the test
calls it too when no SLURM answers and it runs as root, and is skipped, with the reason, only where it cannot start.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import REALDATA, make_dataset, template_head, write_nifti

from flairqc_app import tsv

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "tools" / "slurm" / "start-local-slurm.sh"
SUBMIT = ROOT / "tools" / "slurm" / "submit.sh"
FLAIRQC = f"{sys.executable} -m flairqc_app"  # the local install instead of the Singularity image


def slurm_ready() -> bool:
    if shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return proc.returncode == 0 and bool(re.search(r"^(idle|mixed|allocated)", proc.stdout, re.M))


@pytest.fixture(scope="module")
def slurm() -> None:
    if slurm_ready():
        return
    if os.geteuid() != 0:
        pytest.skip("no SLURM answers and this is not root: run tools/slurm/start-local-slurm.sh as root")
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not slurm_ready():
        pytest.skip(f"SLURM could not be installed or started: {(proc.stdout + proc.stderr).strip()[-500:]}")


def real_or_template(name: str, shift: tuple[float, float, float]) -> nib.Nifti1Image:
    path = REALDATA / f"{name}.nii.gz"
    return nib.load(str(path)) if path.exists() else template_head(shift)


def eight_subjects(root: Path) -> Path:
    """Two images through the whole pipeline, five gate rejects and one broken file (its task exits 1)."""
    bids = make_dataset(
        root / "bids",
        {
            "sub-01/anat/sub-01_FLAIR.nii.gz": real_or_template("flair3d_head_1mm", (0, 0, 0)),
            "sub-02/anat/sub-02_FLAIR.nii.gz": template_head((4.0, -3.0, 2.0)),  # its sidecar says 2D
            "sub-03/anat/sub-03_FLAIR.nii.gz": real_or_template("t1w3d_head", (-3.0, 2.0, 0.0)),
            # 40 mm: small field of view
            "sub-04/anat/sub-04_FLAIR.nii.gz": nib.Nifti1Image(
                np.asarray(template_head().dataobj)[:, :, 60:100], template_head().affine
            ),
            "sub-05/anat/sub-05_FLAIR.nii.gz": real_or_template("flair2d_6mm_tumour", (1.0, 1.0, 1.0)),
            "sub-06/anat/sub-06_FLAIR.nii.gz": real_or_template("t2w2d_head", (2.0, 0.0, 0.0)),
            "sub-07/anat/sub-07_FLAIR.nii.gz": np.zeros((4, 4, 4), np.float32),  # replaced below: 3 mm voxels
            "sub-08/anat/sub-08_FLAIR.nii.gz": np.zeros((4, 4, 4), np.float32),  # replaced below: not a NIfTI
        },
        {"sub-02/anat/sub-02_FLAIR.json": {"MRAcquisitionType": "2D"}},
    )
    write_nifti(
        bids / "sub-07/anat/sub-07_FLAIR.nii.gz",
        np.random.default_rng(7).uniform(0, 100, (80, 80, 60)).astype(np.float32),
        zooms=(3.0, 3.0, 3.0),
    )
    (bids / "sub-08/anat/sub-08_FLAIR.nii.gz").write_bytes(b"not a NIfTI" * 40)
    return bids


def comparable(out: Path) -> list[dict]:
    """The group table without the wall times (the only column that may differ between two runs)."""
    return [
        {k: v for k, v in row.items() if k != "seconds"} for row in tsv.read_table(out / "group_FLAIR.tsv")
    ]


def job_states(job: str) -> list[tuple[str, str]]:
    """(JobState, ExitCode) of a job, or of every task of an array."""
    text = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, check=True).stdout
    return re.findall(r"JobState=(\S+).*?ExitCode=(\S+)", text, re.S)


def test_the_job_array_recipe_equals_a_local_run(slurm, tmp_path):
    bids = eight_subjects(tmp_path)
    out = tmp_path / "slurm-out"
    env = {**os.environ, "FLAIRQC": FLAIRQC, "FLAIRQC_CPUS": "1", "FLAIRQC_MEM": "3G"}
    started = time.perf_counter()
    submitted = subprocess.run(
        ["bash", str(SUBMIT), str(bids), str(out)], capture_output=True, text=True, env=env, timeout=60
    )
    assert submitted.returncode == 0, submitted.stderr
    array, group = re.search(
        r"participant array job (\d+) \(8 tasks for 8 subjects\), group job (\d+)", submitted.stdout
    ).groups()
    deadline = time.time() + 540
    while time.time() < deadline:
        queued = subprocess.run(
            ["squeue", "-h", "-j", f"{array},{group}"], capture_output=True, text=True
        ).stdout
        if not queued.strip():
            break
        time.sleep(1)
    slurm_seconds = time.perf_counter() - started
    logs = "\n".join(p.read_text() for p in sorted((out / "logs").glob("slurm-*.out")))
    assert job_states(group) == [("COMPLETED", "0:0")], logs
    tasks = sorted(job_states(array))
    # afterany: group ran anyway
    assert tasks == sorted([("COMPLETED", "0:0")] * 7 + [("FAILED", "1:0")]), logs

    local = tmp_path / "local-out"
    started = time.perf_counter()
    command = [sys.executable, "-m", "flairqc_app", str(bids), str(local)]
    participant = subprocess.run(
        command + ["participant", "--nprocs", "2", "--omp-nthreads", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert participant.returncode == 1, participant.stderr  # sub-08 failed, as its SLURM task did
    assert subprocess.run(command + ["group"], capture_output=True, text=True, timeout=120).returncode == 0
    local_seconds = time.perf_counter() - started

    rows = comparable(out)
    assert rows == comparable(local)
    assert [(r["bids_name"], r["status"]) for r in rows] == [
        ("sub-01_FLAIR", "ok"),
        ("sub-02_FLAIR", "skipped"),
        ("sub-03_FLAIR", "ok"),
        ("sub-04_FLAIR", "skipped"),
        ("sub-05_FLAIR", "skipped"),
        ("sub-06_FLAIR", "skipped"),
        ("sub-07_FLAIR", "skipped"),
        ("sub-08_FLAIR", "failed"),
    ]
    outputs = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and "logs" not in p.parts
    )
    assert outputs == sorted(
        p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file() and "logs" not in p.parts
    )
    print(
        f"\nSLURM job array, N = 8 (1 CPU per task, {os.cpu_count()} CPUs): submit to group done "
        f"{slurm_seconds:.1f} s; the same images locally (--nprocs 2 --omp-nthreads 1): {local_seconds:.1f} s"
    )


@pytest.mark.parametrize(
    "task, expected", [("1", "sub-01 sub-02 sub-03"), ("2", "sub-04 sub-05 sub-06"), ("3", "sub-07")]
)
def test_an_array_task_takes_its_share_of_subjects(tmp_path, task, expected):
    """FLAIRQC_PER_TASK subjects per task (here 3 of 7): the task's slice of the list, one image per CPU."""
    subjects = tmp_path / "subjects.txt"
    subjects.write_text("".join(f"sub-0{i}\n" for i in range(1, 8)))
    env = {**os.environ, "FLAIRQC": "echo", "SLURM_ARRAY_TASK_ID": task, "SLURM_CPUS_PER_TASK": "4"}
    proc = subprocess.run(
        ["bash", str(SUBMIT.with_name("participant.sbatch")), str(subjects), "3", "BIDS", "OUT", "--force"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert proc.stdout.split() == [
        "BIDS",
        "OUT",
        "participant",
        "--participant-label",
        *expected.split(),
        "--nprocs",
        "4",
        "--force",
    ]
