"""Group level: gather the per-image TSVs that the participant level wrote, into one table and one report.

It reads only output_dir (never the images), and applies the same selection as the participant level. A selection
writes its own table and report (`group_desc-sel<hash>_FLAIR.*`, named by a hash of the selection), never
group_FLAIR.*: two group runs with different selections, at the same time or one after the other, never overwrite
each other's files, and group_FLAIR.tsv always holds the whole output directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from bids.layout import Query

from flairqc_app import atomic, derivatives, recompute, tsv
from flairqc_app.entities import ENTITIES_BY_NAME, Selection

log = logging.getLogger("flairqc")


def collect_rows(output_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(output_dir.glob("sub-*/**/*_desc-flairqc_FLAIR.tsv")):
        try:
            rows += tsv.read_table(path)
        except (OSError, ValueError) as exc:
            log.error("%s: unreadable participant table, left out of the group: %s", path, exc)
    return rows


def table_selection(selection: Selection) -> dict[str, Any]:
    """The participant-level selection on the entities the per-image rows hold (the others are ignored)."""
    wanted = selection.entities()
    for entity in sorted(set(wanted) - set(ENTITIES_BY_NAME)):
        log.warning("group level: filter on %r cannot be applied to the QC tables, ignored", entity)
    return {k: v for k, v in wanted.items() if k in ENTITIES_BY_NAME}


def matches(row: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for entity, value in wanted.items():
        cell = row.get(ENTITIES_BY_NAME[entity].column)
        if value is Query.NONE:
            if cell is not None:
                return False
            continue
        if value is Query.ANY:
            if cell is None:
                return False
            continue
        values = value if isinstance(value, list) else [value]
        accepted = {ENTITIES_BY_NAME[entity].cell(_normal(entity, v)) for v in values}
        if cell is None or _normal(entity, str(cell)) not in {_normal(entity, a) for a in accepted}:
            return False
    return True


def _normal(entity: str, value: Any) -> str:
    """Compare run labels as numbers (run-01 == run 1), others as text."""
    text = str(value)
    return str(int(text)) if entity == "run" and text.isdigit() else text


def group_stem(wanted: dict[str, Any]) -> str:
    """File stem of the group outputs of a selection: group_FLAIR for all, else named by the selection's hash.

    >>> group_stem({})
    'group_FLAIR'
    >>> both, one = group_stem({"subject": ["01", "02"]}), group_stem({"subject": ["01"]})
    >>> both == group_stem({"subject": ["02", "01"]}) != one
    True
    """
    if not wanted:
        return derivatives.GROUP_STEM
    digest = hashlib.sha256(json.dumps(describe(wanted), sort_keys=True).encode()).hexdigest()[:8]
    return derivatives.GROUP_STEM.replace("_FLAIR", f"_desc-sel{digest}_FLAIR")


def describe(wanted: dict[str, Any]) -> dict[str, Any]:
    """The selection as plain JSON values, lists sorted (for its hash and the log).

    >>> describe({"session": Query.NONE, "subject": ["02", "01"]})
    {'session': None, 'subject': ['01', '02']}
    """
    return {
        entity: sorted(map(_label, value)) if isinstance(value, list) else _label(value)
        for entity, value in sorted(wanted.items())
    }


def _label(value: Any) -> str | None:
    """A filter value as text: None for 'entity absent' (Query.NONE), '*' for 'any value' (Query.ANY)."""
    return None if value is Query.NONE else "*" if value is Query.ANY else str(value)


def run_group(
    output_dir: Path,
    wanted: dict[str, Any],
    models_dir: Path | None = None,
    thresholds_file: Path | None = None,
) -> list[dict[str, Any]]:
    """Write the group TSV (+ dictionary) and HTML of the selection (group_stem names them); return the rows.

    With a thresholds file, grades and tiers are recomputed from the stored probabilities (recompute.py);
    without one, a record of an earlier recompute is removed, since the table no longer follows it. Only a plain
    group run of the whole dataset puts the IQM percentiles within the run into the per-image reports.
    """
    rows = [row for row in collect_rows(output_dir) if matches(row, wanted)]
    if not rows:
        return rows
    rows.sort(key=lambda r: r["bids_name"])
    stem = group_stem(wanted)
    record = output_dir / f"{stem}_thresholds.json"
    recomputed = None
    if thresholds_file is not None:
        assert models_dir is not None
        recomputed = recompute.recompute(rows, recompute.thresholds_used(models_dir, thresholds_file))
        rows = recomputed.rows
        recompute.write_record(record, recomputed, models_dir, thresholds_file)
        log.info(
            "group level: verdicts recomputed from the stored probabilities, %d changed (%s)",
            len(recomputed.changes),
            record.name,
        )
    else:
        record.unlink(missing_ok=True)
    from flairqc_app.report import render_group_report

    if not wanted and thresholds_file is None:
        # the per-image pages get the percentiles of the whole run only: a selection's or a recompute's group run
        # leaves the participant outputs as they are (and concurrent selections cannot race on them)
        from flairqc_app.report.iqms import refresh_participant_reports

        refreshed = refresh_participant_reports(output_dir, rows)
        log.info("group level: the IQM percentiles within the run put into %d per-image report(s)", refreshed)

    html = render_group_report(rows, recomputed=recomputed).encode("utf-8")
    # one write for the three files: a full disk leaves the previous table and report, never a new table beside
    # a stale report
    atomic.write_files(
        {**tsv.table_files(output_dir / f"{stem}.tsv", rows), output_dir / f"{stem}.html": html}
    )
    return rows
