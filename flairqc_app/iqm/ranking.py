"""Where an image's IQMs sit within its run, and a "second opinion" where they disagree strongly with a model.

Computed at group level, from the run's rows: a percentile needs the whole run, and the group level sees it
whole and in a fixed order, so the figure does not depend on which image finished first (at participant
level the first images would have no peers). The group level then refreshes the IQM section of each
per-image report (report.iqms). The second opinion only flags an image for a rater; it never changes a grade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from flairqc_app.iqm.definitions import IQM_COLUMNS, IQMS_BY_COLUMN

MIN_RUN_SIZE = 20  # below this, "the run's worst 5 %" means one image or none: no second opinion
TAIL_PERCENT = 5.0


@dataclass(frozen=True)
class Rule:
    artefact: str  # grade column of the models
    iqm: str
    caveat_iqm: str | None = None  # an IQM whose extreme explains the disagreement (lesions: contrast)


RULES = (
    Rule("noise", "iqm_snr_wm"),
    Rule("noise", "iqm_noise_tissue"),
    Rule("contrast", "iqm_cnr", caveat_iqm="iqm_wmh_fraction"),
    Rule("motion", "iqm_efc"),
    Rule("motion", "iqm_qi1"),
)


def number(value: object) -> float | None:
    """A finite number from a typed row (pipeline or tsv.read_table); None for n/a or text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def percentiles(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """bids_name -> {IQM column: mid-rank percentile (0-100) of its value among the run's values}.

    >>> rows = [{"bids_name": n, "iqm_cnr": v} for n, v in (("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0))]
    >>> percentiles(rows)["a"]["iqm_cnr"], percentiles(rows)["d"]["iqm_cnr"]
    (12.5, 87.5)
    """
    out: dict[str, dict[str, float]] = {str(row["bids_name"]): {} for row in rows}
    for column in IQM_COLUMNS:
        pairs = [(str(row["bids_name"]), number(row.get(column))) for row in rows]
        pairs = [(name, value) for name, value in pairs if value is not None]
        if not pairs:
            continue
        ordered = np.sort([value for _, value in pairs])
        for name, value in pairs:
            below = np.searchsorted(ordered, value, side="left")
            equal = np.searchsorted(ordered, value, side="right") - below
            out[name][column] = round(100.0 * float(below + 0.5 * equal) / len(ordered), 1)
    return out


def in_worst_tail(column: str, percentile: float) -> bool:
    """True when the value is among the run's worst TAIL_PERCENT for quality (low SNR, high EFC ...)."""
    return in_best_tail(column, 100 - percentile)


def in_best_tail(column: str, percentile: float) -> bool:
    better = IQMS_BY_COLUMN[column].better
    if better == "neither":
        return False
    return percentile >= 100 - TAIL_PERCENT if better == "higher" else percentile <= TAIL_PERCENT


def second_opinion(row: dict[str, Any], ranks: dict[str, float], run_size: int) -> list[str]:
    """Lines for a rater where an IQM and a model disagree strongly: a grade of none with the IQM in the
    run's worst 5 %, or a severe grade with the IQM in the run's best 5 %.

    >>> row = {"status": "ok", "noise": 0, "motion": 2, "contrast": 0}
    >>> second_opinion(row, {"iqm_snr_wm": 2.0, "iqm_efc": 99.0}, 100)
    ["noise models say none, but SNR in white matter is in the run's worst 5 % (percentile 2)"]
    """
    if run_size < MIN_RUN_SIZE or row.get("status") != "ok" or number(row.get("straight_reject")) == 1:
        return []
    lines = []
    for rule in RULES:
        grade, rank = number(row.get(rule.artefact)), ranks.get(rule.iqm)
        if grade is None or rank is None:
            continue
        name = IQMS_BY_COLUMN[rule.iqm].long_name
        if grade == 0 and in_worst_tail(rule.iqm, rank):
            line = (
                f"{rule.artefact} models say none, but {name} is in the run's worst 5 % (percentile {rank:g})"
            )
        elif grade == 2 and in_best_tail(rule.iqm, rank):
            line = f"{rule.artefact} models say severe, but {name} is in the run's best 5 % (percentile {rank:g})"
        else:
            continue
        caveat = ranks.get(rule.caveat_iqm) if rule.caveat_iqm else None
        if caveat is not None and caveat >= 100 - TAIL_PERCENT:
            line += (
                f"; lesion load is high ({IQMS_BY_COLUMN[rule.caveat_iqm].long_name}, percentile {caveat:g})"
            )
        lines.append(line)
    return lines
