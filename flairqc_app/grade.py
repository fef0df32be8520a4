"""From model probabilities to grades and tiers (paper sections 2.3.1 and 2.4.2).

Grade per artefact: 2 when the severe model fires, else 1 when the moderate model fires, else 0.
Tier: 1 when every grade is 0, 3 when any grade is 2, 2 otherwise. A straight reject overrides the tier and the
grades (all n/a): grading an image that is not a usable 3D FLAIR would contradict the reject; the probabilities stay.
"""

from __future__ import annotations

from dataclasses import dataclass

from flairqc_app.config import ARTEFACTS


@dataclass(frozen=True)
class Verdict:
    straight_reject: int
    grades: dict[str, int | None]  # artefact -> 0/1/2; None for a straight reject
    tier: int | None  # None for a straight reject


def artefact_grade(p_moderate: float, p_severe: float, t_moderate: float, t_severe: float) -> int:
    if p_severe >= t_severe:
        return 2
    return 1 if p_moderate >= t_moderate else 0


def tier_from_grades(grades: dict[str, int | None]) -> int:
    values = list(grades.values())
    if any(g == 2 for g in values):
        return 3
    return 2 if any(g == 1 for g in values) else 1


def decide(probabilities: dict[str, float], thresholds: dict[str, float]) -> Verdict:
    if probabilities["straight_reject"] >= thresholds["straight_reject"]:
        return Verdict(straight_reject=1, grades=dict.fromkeys(ARTEFACTS), tier=None)
    grades: dict[str, int | None] = {
        a: artefact_grade(
            probabilities[f"{a}_moderate"],
            probabilities[f"{a}_severe"],
            thresholds[f"{a}_moderate"],
            thresholds[f"{a}_severe"],
        )
        for a in ARTEFACTS
    }
    return Verdict(straight_reject=0, grades=grades, tier=tier_from_grades(grades))
