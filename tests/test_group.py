"""Group level with selections: each selection writes its own table, so concurrent runs never mix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_dataset

from flairqc_app import tsv
from flairqc_app.group import group_stem

SUBJECTS = [f"{i:02d}" for i in range(1, 9)]


@pytest.fixture
def output_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A BIDS folder and an output directory with one participant table per subject (no pipeline run)."""
    bids = make_dataset(tmp_path / "bids", {})
    out = tmp_path / "out"
    for label in SUBJECTS:
        row = {
            "bids_name": f"sub-{label}_FLAIR",
            "source_file": f"sub-{label}/anat/sub-{label}_FLAIR.nii.gz",
            "participant_id": f"sub-{label}",
            "status": "ok",
            "straight_reject": 0,
            "tier": 1,
            "motion": 0,
            "noise": 0,
            "contrast": 0,
        }
        tsv.write_table(out / f"sub-{label}" / "anat" / f"sub-{label}_desc-flairqc_FLAIR.tsv", [row])
    return bids, out


def group(bids: Path, out: Path, *labels: str) -> subprocess.Popen:
    selection = ["--participant-label", *labels] if labels else []
    return subprocess.Popen(
        [sys.executable, "-m", "flairqc_app", str(bids), str(out), "group", *selection],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def names_in(out: Path, stem: str) -> list[str]:
    return [row["bids_name"] for row in tsv.read_table(out / f"{stem}.tsv")]


def test_concurrent_group_runs_with_different_selections_keep_their_own_tables(output_dir):
    bids, out = output_dir
    selections = [(), ("01", "02", "03"), ("04", "05"), ("sub-06",)]
    jobs = [group(bids, out, *labels) for labels in selections]
    logs = [job.communicate(timeout=300)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0] * len(jobs), logs
    stems = [
        group_stem({"subject": [label.removeprefix("sub-") for label in labels]} if labels else {})
        for labels in selections
    ]
    assert stems[0] == "group_FLAIR" and len(set(stems)) == len(stems)
    for labels, stem, log in zip(selections, stems, logs):
        expected = [f"sub-{label.removeprefix('sub-')}_FLAIR" for label in labels or SUBJECTS]
        assert names_in(out, stem) == expected
        assert str(out / f"{stem}.html") in log
        html = (out / f"{stem}.html").read_text()
        assert all(name in html for name in expected)
        assert all(f"sub-{s}_FLAIR" not in html for s in SUBJECTS if f"sub-{s}_FLAIR" not in expected)
    assert sorted(p.name for p in out.glob("group_*.tsv")) == sorted(f"{stem}.tsv" for stem in stems)


def test_the_same_selection_reuses_its_table(output_dir):
    bids, out = output_dir
    for labels in (("02", "01"), ("sub-01", "02")):
        job = group(bids, out, *labels)
        assert job.wait(timeout=300) == 0
    assert names_in(out, group_stem({"subject": ["01", "02"]})) == ["sub-01_FLAIR", "sub-02_FLAIR"]
    assert len(list(out.glob("group_*.tsv"))) == 1 and not (out / "group_FLAIR.tsv").exists()
