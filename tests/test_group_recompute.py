"""Group recompute: `flairqc BIDS OUT group --thresholds t.json` regrades from the stored probabilities, leaves
the participant outputs alone, records the thresholds and shows what changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from helpers import make_row

from flairqc_app import tsv
from flairqc_app.cli import main
from flairqc_app.config import DEFAULT_MODELS_DIR, TASKS
from flairqc_app.manifest import read_manifest

# sub-1: every probability 0.3 (a reject under 0.25); sub-2: motion moderate 0.45 (grade 1 under the shipped
# threshold, about 0.2, and 0 under 0.5)
PROBABILITIES = {
    "sub-1": dict.fromkeys(TASKS, 0.3),
    "sub-2": dict.fromkeys(TASKS, 0.05) | {"motion_moderate": 0.45},
}


def write_outputs(out: Path) -> list[Path]:
    """Participant TSVs as the participant level writes them, with the verdicts of the shipped thresholds."""
    _, specs = read_manifest(DEFAULT_MODELS_DIR)
    shipped = {t: s.threshold for t, s in specs.items()}
    from flairqc_app.grade import decide

    paths = []
    for subject, probabilities in PROBABILITIES.items():
        verdict = decide(probabilities, shipped)
        row = make_row(
            bids_name=f"{subject}_FLAIR",
            source_file=f"{subject}/anat/{subject}_FLAIR.nii.gz",
            participant_id=subject,
            status="ok",
            straight_reject=verdict.straight_reject,
            tier=verdict.tier,
            **verdict.grades,
            **{f"p_{t}": p for t, p in probabilities.items()},
        )
        path = out / subject / "anat" / f"{subject}_desc-flairqc_FLAIR.tsv"
        path.parent.mkdir(parents=True)
        tsv.write_table(path, [row])
        (out / f"{subject}_FLAIR.html").write_text("participant report", encoding="utf-8")
        paths += [path, out / f"{subject}_FLAIR.html"]
    return paths


def digests(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_group_thresholds_recompute_without_touching_participants(tmp_path: Path) -> None:
    bids, out = tmp_path / "bids", tmp_path / "out"
    bids.mkdir()
    participant_files = write_outputs(out)
    before = digests(participant_files)
    (tmp_path / "t.json").write_text(json.dumps({"motion_moderate": 0.5, "straight_reject": 0.25}))

    assert main([str(bids), str(out), "group", "--thresholds", str(tmp_path / "t.json")]) == 0

    assert digests(participant_files) == before  # the participant outputs are as they were
    rows = {r["bids_name"]: r for r in tsv.read_table(out / "group_FLAIR.tsv")}
    assert rows["sub-1_FLAIR"]["straight_reject"] == 1 and rows["sub-1_FLAIR"]["tier"] is None
    assert rows["sub-1_FLAIR"]["motion"] is None  # a reject is not graded
    assert rows["sub-2_FLAIR"]["motion"] == 0 and rows["sub-2_FLAIR"]["tier"] == 1
    record = json.loads((out / "group_FLAIR_thresholds.json").read_text())
    assert record["thresholds"]["motion_moderate"] == 0.5 and record["thresholds"]["straight_reject"] == 0.25
    _, specs = read_manifest(DEFAULT_MODELS_DIR)
    # the rest from the manifest
    assert record["thresholds"]["noise_severe"] == specs["noise_severe"].threshold
    assert {c["bids_name"]: c["after"] for c in record["changed"]} == {
        "sub-1_FLAIR": "Straight reject",
        "sub-2_FLAIR": "Tier 1",
    }
    page = (out / "group_FLAIR.html").read_text()
    assert 'id="recompute"' in page and "2 verdict(s) changed" in page
    assert "<td>Tier 2 (motion 1)</td><td>Tier 1</td>" in page  # the changed images, before and after

    # a plain group run goes back to the participant verdicts and drops the record
    assert main([str(bids), str(out), "group"]) == 0
    assert not (out / "group_FLAIR_thresholds.json").exists()
    assert [r["tier"] for r in tsv.read_table(out / "group_FLAIR.tsv")] == [3, 2]
    assert 'id="recompute"' not in (out / "group_FLAIR.html").read_text()


def test_a_bad_thresholds_file_at_group_level_is_a_usage_error(tmp_path: Path, capsys) -> None:
    bids, out = tmp_path / "bids", tmp_path / "out"
    bids.mkdir()
    write_outputs(out)
    (tmp_path / "t.json").write_text(json.dumps({"motion": 0.4}))
    assert main([str(bids), str(out), "group", "--thresholds", str(tmp_path / "t.json")]) == 64
    assert "unknown task(s) motion" in capsys.readouterr().err
    assert not (out / "group_FLAIR.tsv").exists()
