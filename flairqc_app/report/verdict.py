"""The verdict of one row (tier, straight reject, skipped, failed), shared by both reports.

Rows may come straight from the pipeline (numbers) or from a TSV read back at group level (strings with
"n/a"), so every numeric field goes through `as_number`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flairqc_app.config import ARTEFACTS
from flairqc_app.schema import COLUMNS_BY_NAME, GRADE_LEVELS, TIER_LEVELS
from flairqc_app.tsv import NA, format_cell

# Category key -> (label, colour). One source for the CSS variables of the pages and the plot colours.
CATEGORIES: dict[str, tuple[str, str]] = {
    "tier1": ("Tier 1", "#2e7d32"),
    "tier2": ("Tier 2", "#e69500"),
    "tier3": ("Tier 3", "#d84315"),
    "reject": ("Straight reject", "#8e1b3b"),
    "skipped": ("Skipped", "#6a5acd"),
    "failed": ("Failed", "#616161"),
    "unknown": ("No verdict", "#9e9e9e"),
}


@dataclass(frozen=True)
class Badge:
    """How a row's verdict is shown: its category (the colour), a headline and detail lines. Not grade.Verdict,
    the decision itself: a badge is drawn from any row, including a TSV row read back at group level."""

    category: str  # a key of CATEGORIES
    headline: str
    details: tuple[str, ...]

    @property
    def colour(self) -> str:
        return CATEGORIES[self.category][1]


def as_number(value: object) -> float | None:
    """A finite float from a number or a numeric string; None for "n/a", empty, NaN or text."""
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_int(value: object) -> int | None:
    number = as_number(value)
    return None if number is None else int(round(number))


def text(value: object) -> str:
    """How a cell is shown: "n/a" for missing values, numbers without a trailing ".0"."""
    return NA if value == "" else format_cell(value)


def category(row: dict) -> str:
    status = str(row.get("status") or "")
    if status in ("failed", "skipped"):
        return status
    if as_int(row.get("straight_reject")) == 1:
        return "reject"
    tier = as_int(row.get("tier"))
    return f"tier{tier}" if tier in (1, 2, 3) else "unknown"


def _reason(row: dict) -> tuple[str, ...]:
    code, detail = text(row.get("reason")), text(row.get("reason_detail"))
    lines = [f"Reason: {code}"] if code != NA else []
    return tuple(lines + ([detail] if detail != NA else []))


def grades(row: dict) -> tuple[str, ...]:
    """E.g. ("motion: moderate", "noise: none", "contrast: n/a")."""
    out = []
    for artefact in ARTEFACTS:
        grade = as_int(row.get(artefact))
        out.append(f"{artefact}: {GRADE_LEVELS.get(str(grade), NA)}")
    return tuple(out)


def badge(row: dict) -> Badge:
    key = category(row)
    if key == "failed":
        return Badge(key, "Failed: not processed", _reason(row))
    if key == "skipped":
        return Badge(key, "Skipped: straight reject by the input gate", _reason(row))
    if key == "reject":
        source = text(row.get("reject_source"))
        source_text = COLUMNS_BY_NAME["reject_source"].levels.get(source, source)
        return Badge(key, "Straight reject", (f"Rejected by: {source_text}", *_reason(row)))
    if key == "unknown":
        return Badge(key, "No verdict", ("The row has neither a tier nor a straight reject.",))
    tier = key[-1]
    return Badge(key, f"Tier {tier}", (TIER_LEVELS[tier], *grades(row)))
