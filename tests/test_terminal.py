"""The terminal of a real run (the console script in a subprocess, stderr not a TTY): one line per image,
-v stage timings, -q errors only, and the final summary naming the group report."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import build_models_dir, make_dataset, template_head

pytestmark = pytest.mark.slow


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    bids = make_dataset(
        tmp_path / "bids",
        {
            "sub-01/anat/sub-01_FLAIR.nii.gz": template_head(),
            "sub-02/anat/sub-02_acq-2d_FLAIR.nii.gz": template_head(),
        },
        {
            "sub-01/anat/sub-01_FLAIR.json": {"MRAcquisitionType": "3D"},
            "sub-02/anat/sub-02_acq-2d_FLAIR.json": {"MRAcquisitionType": "2D"},
        },
    )
    return bids, build_models_dir(tmp_path / "models", biases={"motion_moderate": 2.0})


def flairqc(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    # one image at a time, so that [n/N] follows the dataset's order
    return subprocess.run(
        ["flairqc", *args, "--skip-bids-validation", "--nprocs", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_lines_summary_verbose_and_quiet(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    bids, models = dataset
    out = tmp_path / "out"
    first = flairqc(str(bids), str(out), "participant", "group", "--models-dir", str(models), "-v")
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert any(
        line.startswith("[1/2] sub-01_FLAIR  tier 2 (motion 1)  ") and line.endswith(" s") for line in lines
    )
    assert "[2/2] sub-02_acq-2d_FLAIR  Skipped: straight reject by the input gate (sidecar_2d)  0 s" in lines
    assert any("sub-01_FLAIR: stages " in line and " s, " in line for line in lines)  # -v: stage timings
    assert lines[-1] == f"2 images: 1 tier 2, 1 skipped; report: {out / 'group_FLAIR.html'}"
    assert "{'motion'" not in first.stderr and "timings {" not in first.stderr  # no raw dicts

    plain = flairqc(str(bids), str(out), "participant", "--models-dir", str(models))
    assert "[1/2] sub-01_FLAIR  tier 2 (motion 1)  done before" in plain.stderr.splitlines()
    assert "stages" not in plain.stderr and "DEBUG" not in plain.stderr
    assert plain.stderr.splitlines()[-1] == "2 images: 1 tier 2, 1 skipped"  # no group level ran

    quiet = flairqc(str(bids), str(out), "participant", "group", "--models-dir", str(models), "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
    log_text = "".join(p.read_text() for p in (out / "logs").glob("flairqc-*.log"))
    assert "sub-01_FLAIR  tier 2 (motion 1)  done before" in log_text  # the log file keeps the lines
