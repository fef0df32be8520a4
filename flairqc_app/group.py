"""Group level: gather the per-image TSVs that the participant level wrote, into one table and one report.

It reads only output_dir (never the images), and applies the same selection as the participant level.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bids.layout import Query

from flairqc_app import atomic, derivatives, tsv

log = logging.getLogger("flairqc")

# filter-file entity (pybids name) -> group-table column
FILTERABLE = {"subject": "participant_id", "session": "session_id", "acquisition": "acq_id",
              "reconstruction": "rec_id", "run": "run_id"}
PREFIXED = {"subject": "sub-", "session": "ses-"}


def collect_rows(output_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(output_dir.glob("sub-*/**/*_desc-flairqc_FLAIR.tsv")):
        try:
            rows += tsv.read_table(path)
        except (OSError, ValueError) as exc:
            log.error("%s: unreadable participant table, left out of the group: %s", path, exc)
    return rows


def selection(participant_labels: list[str] | None, session_ids: list[str] | None,
              run_ids: list[str] | None, filters: dict[str, Any] | None) -> dict[str, Any]:
    """The participant-level selection expressed on the group-table entities."""
    wanted: dict[str, Any] = dict(filters or {})
    if participant_labels:
        wanted["subject"] = participant_labels
    if session_ids:
        wanted["session"] = [s.removeprefix("ses-") for s in session_ids]
    if run_ids:
        wanted["run"] = [r.removeprefix("run-") for r in run_ids]
    unknown = sorted(set(wanted) - set(FILTERABLE))
    for entity in unknown:
        log.warning("group level: filter on %r cannot be applied to the QC tables, ignored", entity)
    return {k: v for k, v in wanted.items() if k in FILTERABLE}


def matches(row: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for entity, value in wanted.items():
        cell = row.get(FILTERABLE[entity])
        if value is Query.NONE:
            if cell is not None:
                return False
            continue
        if value is Query.ANY:
            if cell is None:
                return False
            continue
        accepted = {PREFIXED.get(entity, "") + _normal(entity, v) for v in (value if isinstance(value, list) else [value])}
        if cell is None or _normal(entity, str(cell)) not in {_normal(entity, a) for a in accepted}:
            return False
    return True


def _normal(entity: str, value: Any) -> str:
    """Compare run labels as numbers (run-01 == run 1), others as text."""
    text = str(value)
    return str(int(text)) if entity == "run" and text.isdigit() else text


def run_group(output_dir: Path, wanted: dict[str, Any]) -> list[dict[str, Any]]:
    """Write group_FLAIR.tsv (+ dictionary) and group_FLAIR.html; return the rows."""
    rows = [row for row in collect_rows(output_dir) if matches(row, wanted)]
    if not rows:
        return rows
    rows.sort(key=lambda r: r["bids_name"])
    tsv.write_table(output_dir / f"{derivatives.GROUP_STEM}.tsv", rows)
    from flairqc_app.report import render_group_report
    from flairqc_app.report.iqms import refresh_participant_reports

    refreshed = refresh_participant_reports(output_dir, rows)
    log.info("group level: the IQM percentiles within the run put into %d per-image report(s)", refreshed)

    atomic.write_text(output_dir / f"{derivatives.GROUP_STEM}.html", render_group_report(rows))
    return rows
