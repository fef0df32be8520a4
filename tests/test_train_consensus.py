"""flairqc-train consensus: majority labels, ties to the more severe value, kappa, balanced accuracy, the
disagreements, and a labels.tsv that read_labels takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flairqc_app.train.cli import main
from flairqc_app.train.labels import read_labels

HEADER = (
    "filename\tparticipant_id\tmodality\tstraight_reject\tmotion\tnoise\tcontrast\trater\trated_at\tcomment\n"
)
# image -> rater -> (straight_reject, motion, noise, contrast)
RATED = {
    "sub-1/anat/sub-1_FLAIR.nii.gz": {"A": (0, 0, 0, 0), "B": (0, 0, 0, 0), "C": (0, 1, 0, 0)},
    "sub-2/anat/sub-2_FLAIR.nii.gz": {"A": (0, 2, 1, 0), "B": (0, 1, 1, 0), "C": (0, 2, 1, 0)},
    "sub-3/anat/sub-3_FLAIR.nii.gz": {
        "A": (1, None, None, None),
        "B": (1, None, None, None),
        "C": (0, 0, 0, 1),
    },
    "sub-4/anat/sub-4_FLAIR.nii.gz": {"A": (0, 1, 0, 0), "B": (0, 2, 0, 0)},  # a tie: the more severe
}


def write_rater(path: Path, rater: str) -> Path:
    lines = [HEADER]
    for filename, by_rater in RATED.items():
        if rater in by_rater:
            values = ["n/a" if v is None else str(v) for v in by_rater[rater]]
            lines.append(
                "\t".join(
                    [
                        filename,
                        filename.split("/")[0],
                        "FLAIR",
                        *values,
                        rater,
                        "2026-12-06T20:00:00Z",
                        "looked twice",
                    ]
                )
                + "\n"
            )
    path.write_text("".join(lines), encoding="utf-8")
    return path


def kappa(x: list[int], y: list[int]) -> float:
    """Cohen's kappa written out: (observed - chance agreement) / (1 - chance)."""
    n = len(x)
    observed = sum(a == b for a, b in zip(x, y)) / n
    chance = sum((x.count(v) / n) * (y.count(v) / n) for v in set(x) | set(y))
    return (observed - chance) / (1 - chance)


@pytest.fixture
def ratings(tmp_path: Path) -> list[Path]:
    return [write_rater(tmp_path / f"ratings_{r}.tsv", r) for r in "ABC"]


def test_consensus_labels_agreement_and_disagreements(ratings: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "labels.tsv"
    assert main(["consensus", "--ratings", *map(str, ratings), "--out", str(out)]) == 0
    labels = {row.filename: row for row in read_labels(out)}
    assert [labels[f].straight_reject for f in RATED] == [0, 0, 1, 0]
    assert labels["sub-1/anat/sub-1_FLAIR.nii.gz"].grades == {"motion": 0, "noise": 0, "contrast": 0}
    assert labels["sub-2/anat/sub-2_FLAIR.nii.gz"].grades["motion"] == 2  # two of three
    assert labels["sub-3/anat/sub-3_FLAIR.nii.gz"].grades == {"motion": None, "noise": None, "contrast": None}
    assert labels["sub-4/anat/sub-4_FLAIR.nii.gz"].grades["motion"] == 2  # 1 against 2: the more severe

    disputed = (tmp_path / "labels_disagreements.tsv").read_text().splitlines()
    assert disputed[0] == "filename\tlabel\tconsensus\trater_A\trater_B\trater_C"
    assert "sub-3/anat/sub-3_FLAIR.nii.gz\tstraight_reject\t1\t1\t1\t0" in disputed
    assert "sub-4/anat/sub-4_FLAIR.nii.gz\tmotion\t2\t1\t2\tn/a" in disputed
    assert len(disputed) == 1 + 4  # sub-1 motion, sub-2 motion, sub-3 reject, sub-4 motion

    agreement = json.loads((tmp_path / "labels_agreement.json").read_text())
    # A and B on motion, images both kept: sub-1, sub-2, sub-4
    assert agreement["cohen_kappa"]["A~B"]["motion"] == pytest.approx(kappa([0, 2, 1], [0, 1, 2]), abs=1e-4)
    assert agreement["cohen_kappa"]["A~C"]["straight_reject"] == pytest.approx(
        kappa([0, 0, 1], [0, 0, 0]), abs=1e-4
    )
    assert agreement["cohen_kappa"]["A~B"]["straight_reject"] == 1.0
    # C vs consensus on reject: truth (0, 0, 1), C said (0, 0, 0): recall 1 for class 0, 0 for class 1
    assert agreement["balanced_accuracy"]["C"]["straight_reject"] == 0.5
    printed = capsys.readouterr().out
    assert "4 image(s), 4 with a disagreement" in printed and "Cohen's kappa A~B" in printed


def test_the_latest_rating_of_a_rater_counts(tmp_path: Path) -> None:
    first = write_rater(tmp_path / "a1.tsv", "A")
    again = tmp_path / "a2.tsv"
    again.write_text(
        HEADER + "sub-1/anat/sub-1_FLAIR.nii.gz\tsub-1\tFLAIR\t0\t2\t0\t0\tA\t2026-12-06T21:00:00Z\t\n"
    )
    out = tmp_path / "labels.tsv"
    assert main(["consensus", "--ratings", str(again), str(first), "--out", str(out)]) == 0
    labels = {row.filename: row for row in read_labels(out)}
    assert labels["sub-1/anat/sub-1_FLAIR.nii.gz"].grades["motion"] == 2


def test_a_bad_ratings_file_is_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("filename\tmodality\nx\tFLAIR\n")
    assert main(["consensus", "--ratings", str(bad), "--out", str(tmp_path / "labels.tsv")]) == 2
    assert "missing column(s)" in capsys.readouterr().err and not (tmp_path / "labels.tsv").exists()
