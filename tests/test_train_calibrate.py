"""Thresholds on the real-proxy set and the issue's criteria (flairqc_app/train/calibrate.py), on tables whose
probabilities are set by hand so that the right thresholds are known."""

import json

import pytest

from flairqc_app.config import ARTEFACTS, TASKS
from flairqc_app.manifest import read_thresholds
from flairqc_app.train import calibrate
from flairqc_app.train.cli import main as train_main


def row(variant: str, artefact: str = "none", level: int = 0, status: str = "ok", **p: float) -> dict:
    """One image of the table; every probability 0.05 unless given (p_<task> as keyword without the prefix)."""
    probabilities = {f"p_{t}": p.get(t, 0.05) for t in TASKS}
    return {
        "case": f"{variant}{artefact}{level}",
        "variant": variant,
        "artefact": artefact,
        "level": level,
        "status": status,
        "straight_reject": 0,
        "reject_source": None,
        **probabilities,
    }


def table() -> list[dict]:
    """Three variants; motion probabilities graded with the level, one reject, one degraded image that the reject
    model dislikes (0.6) but that must not be rejected."""
    rows = []
    for i, variant in enumerate(("native", "cropped", "uint8_export")):
        rows.append(row(variant, motion_moderate=0.10 + 0.05 * i, motion_severe=0.05))
        rows.append(row(variant, "motion", 1, motion_moderate=0.40 + 0.05 * i, motion_severe=0.20))
        rows.append(row(variant, "motion", 2, motion_moderate=0.90, motion_severe=0.60 + 0.05 * i))
        rows.append(
            row(
                variant,
                "noise",
                2,
                noise_moderate=0.9,
                noise_severe=0.9,
                straight_reject=0.6 if i == 0 else 0.05,
            )
        )
    rows.append(row("reject_t1w", straight_reject=0.95))
    return rows


def test_thresholds_keep_every_clean_variant_under_and_cross_in_order():
    records = {r.task: r for r in calibrate.calibrate(table())}
    assert 0.20 < records["motion_moderate"].threshold <= 0.40  # above clean (max 0.20), under every level 1
    assert 0.20 < records["motion_severe"].threshold <= 0.60  # above level 1's 0.20, under every level 2
    assert records["motion_severe"].positives_at_or_above == records["motion_severe"].positives == 3
    assert records["motion_severe"].negatives_below == records["motion_severe"].negatives
    assert 0.6 < records["straight_reject"].threshold <= 0.95  # no proxy image rejected, the T1w is
    scored = calibrate.criteria(table(), calibrate.thresholds_of(records.values()))
    assert (scored.clean_tier1, scored.clean) == (3, 3)
    assert scored.graded["motion"] == (6, 6) and scored.graded["noise"] == (3, 3)
    assert (scored.straight_rejected, scored.rejects_rejected) == (0, 1)


def test_criteria_under_the_wrong_thresholds_count_what_fails():
    thresholds = {t: 0.5 for t in TASKS} | {"motion_moderate": 0.12, "straight_reject": 0.55}
    scored = calibrate.criteria(table(), thresholds)
    assert (scored.clean_tier1, scored.clean) == (1, 3)  # cropped (0.15) and uint8 (0.20) read as motion 1
    assert scored.straight_rejected == 1  # native + noise 2 (0.6)
    assert scored.graded["noise"] == (2, 3)  # the rejected one is not graded
    assert scored.graded["all"] == (8, 9) and scored.graded_fraction == pytest.approx(8 / 9)


def test_a_degradation_that_reads_as_clean_is_left_uncaught_and_reported():
    rows = table() + [row("native", "motion", 1, motion_moderate=0.12)]
    record = next(r for r in calibrate.calibrate(rows) if r.task == "motion_moderate")
    assert record.threshold > record.hard_bound == pytest.approx(0.20)
    assert (record.positives_at_or_above, record.positives) == (6, 7)


def test_a_variant_held_out_of_its_calibration_can_fail_where_in_sample_passes():
    rows = table()
    rows[8]["p_motion_moderate"] = 0.35  # uint8 clean: the highest clean reading, alone above the others
    in_sample = calibrate.criteria(rows, calibrate.thresholds_of(calibrate.calibrate(rows)))
    held_out = calibrate.leave_one_variant_out(rows)
    assert in_sample.clean_tier1 == 3
    assert held_out.clean_tier1 == 2 and held_out.clean == 3


def test_gate_skipped_images_keep_the_app_verdict_and_set_no_threshold():
    rows = table() + [
        row("reject_flair2d", status="skipped") | {"straight_reject": 1, "p_straight_reject": None}
    ]
    assert calibrate.calibrate(rows) == calibrate.calibrate(table())
    assert calibrate.criteria(rows, {t: 0.5 for t in TASKS}).rejects_rejected == 2
    with pytest.raises(ValueError, match="no clean proxy image"):
        calibrate.calibrate([r for r in table() if r["level"] > 0])


def test_flairqc_train_calibrate_writes_thresholds_the_app_reads(tmp_path, capsys):
    path = tmp_path / "proxy-cases.tsv"
    calibrate.write_cases(path, table())
    assert calibrate.read_cases(path) == table()
    assert train_main(["calibrate", "--proxy", str(path), "--out", str(tmp_path / "cal")]) == 0
    thresholds = read_thresholds(tmp_path / "cal" / "thresholds.json")
    assert set(thresholds) == set(TASKS)
    assert thresholds == calibrate.thresholds_of(calibrate.calibrate(table()))
    how = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert {r["task"] for r in how} == set(TASKS) and all(r["rule"] for r in how)
    out = capsys.readouterr().out
    assert (
        "in-sample: clean tier 1 3/3, graded at or above their level 9/9, proxy straight-rejected 0/12" in out
    )
    assert set(ARTEFACTS) <= {t.split("_")[0] for t in thresholds}


def test_assemble_keeps_the_preferred_candidate_unless_another_is_measurably_better(tmp_path, capsys):
    from helpers import build_models_dir

    from flairqc_app.infer import load_models
    from flairqc_app.manifest import read_manifest

    single = build_models_dir(tmp_path / "single", biases={t: -4.0 for t in TASKS})
    ensemble = build_models_dir(tmp_path / "ensemble", biases={t: -3.0 for t in TASKS})
    worse_motion = table()
    # the single runs miss the level-2 motion as severe; the ensemble (table()) does not
    for r in worse_motion:
        if r["artefact"] == "motion" and r["level"] == 2:
            r["p_motion_severe"] = 0.04
    calibrate.write_cases(tmp_path / "single.tsv", worse_motion)
    calibrate.write_cases(tmp_path / "ensemble.tsv", table())
    out = tmp_path / "chosen"
    assert (
        train_main(
            [
                "assemble",
                "--candidate",
                f"single={single}:{tmp_path / 'single.tsv'}",
                "--candidate",
                f"ensemble={ensemble}:{tmp_path / 'ensemble.tsv'}",
                "--prefer",
                "single",
                "--out",
                str(out),
                "--manifest-version",
                "2.0.0",
            ]
        )
        == 0
    )
    manifest, specs = read_manifest(out)
    assert manifest["version"] == "2.0.0"
    chosen = {t: manifest["models"][t]["provenance"]["threshold_set_on"]["candidate"] for t in TASKS}
    assert chosen == {t: "ensemble" if t == "motion_severe" else "single" for t in TASKS}
    source = {"single": read_manifest(single)[1], "ensemble": read_manifest(ensemble)[1]}
    assert all(specs[t].sha256 == source[chosen[t]][t].sha256 for t in TASKS)
    expected = calibrate.thresholds_of(calibrate.calibrate(table()))["motion_severe"]
    assert load_models(out, "cpu", threads=1).thresholds["motion_severe"] == expected
    assert "motion_severe: ensemble" in capsys.readouterr().out
