"""The tier rule (paper section 2.3.1, Table 2), as tables."""

import pytest

from flairqc_app.config import ARTEFACTS, TASKS
from flairqc_app.grade import artefact_grade, decide, tier_from_grades

HALF = {t: 0.5 for t in TASKS}


@pytest.mark.parametrize(
    "p_moderate, p_severe, grade",
    [(0.1, 0.1, 0), (0.6, 0.1, 1), (0.6, 0.7, 2), (0.1, 0.7, 2), (0.5, 0.49, 1), (0.49, 0.5, 2)],
)
def test_artefact_grade_takes_severe_first_then_moderate(p_moderate, p_severe, grade):
    assert artefact_grade(p_moderate, p_severe, 0.5, 0.5) == grade


@pytest.mark.parametrize(
    "grades, tier",
    [
        ((0, 0, 0), 1),
        ((1, 0, 0), 2),
        ((0, 1, 0), 2),
        ((0, 0, 1), 2),
        ((1, 1, 1), 2),
        ((2, 0, 0), 3),
        ((0, 2, 1), 3),
        ((1, 1, 2), 3),
        ((2, 2, 2), 3),
    ],
)
def test_tier_rule(grades, tier):
    assert tier_from_grades(dict(zip(ARTEFACTS, grades))) == tier


def probabilities(**overrides):
    p = {t: 0.1 for t in TASKS}
    p.update(overrides)
    return p


def test_straight_reject_overrides_the_tier_and_the_grades():
    verdict = decide(probabilities(straight_reject=0.9, motion_severe=0.9), HALF)
    assert verdict.straight_reject == 1 and verdict.tier is None
    assert verdict.grades == {"motion": None, "noise": None, "contrast": None}


def test_thresholds_are_per_task():
    p = probabilities(noise_moderate=0.3)
    assert decide(p, HALF).grades["noise"] == 0
    assert decide(p, HALF | {"noise_moderate": 0.25}).grades["noise"] == 1
    assert decide(p, HALF | {"noise_moderate": 0.25}).tier == 2


def test_clean_image_is_tier_one():
    verdict = decide(probabilities(), HALF)
    assert (verdict.straight_reject, verdict.tier, set(verdict.grades.values())) == (0, 1, {0})


def test_a_model_reject_reads_n_a_in_the_table_and_renders(tmp_path):
    """The row participant.py builds from a reject: grades and tier n/a in the TSV, the p_* columns kept."""
    from flairqc_app import tsv
    from flairqc_app.report import render_participant_report

    p = probabilities(straight_reject=0.9, motion_severe=0.9, contrast_moderate=0.8)
    verdict = decide(p, HALF)
    row = {
        "bids_name": "sub-01_FLAIR",
        "status": "ok",
        **{f"p_{t}": v for t, v in p.items()},
        **verdict.grades,
        "straight_reject": verdict.straight_reject,
        "tier": verdict.tier,
        "reject_source": "model",
    }
    tsv.write_table(tmp_path / "qc.tsv", [row])
    (back,) = tsv.read_table(tmp_path / "qc.tsv")
    assert [back[c] for c in ("motion", "noise", "contrast", "tier")] == [None] * 4
    assert (back["p_straight_reject"], back["p_motion_severe"], back["straight_reject"]) == (0.9, 0.9, 1)
    assert "\tn/a\tn/a\tn/a\tn/a\t" in (tmp_path / "qc.tsv").read_text()
    html = render_participant_report(back, None, None, HALF)
    assert "Straight reject" in html and "motion: none" not in html
