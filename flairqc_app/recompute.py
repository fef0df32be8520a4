"""Group recompute: grades and tiers again from the stored probabilities, under other thresholds.

`flairqc BIDS OUT group --thresholds t.json` changes only the group table and report: the participant TSVs and
reports stay as the participant level wrote them. The thresholds used (the manifest's, overridden by t.json)
and every verdict that changed go to group_FLAIR_thresholds.json, and the group report shows the changes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flairqc_app import __version__, atomic
from flairqc_app.config import ARTEFACTS, TASKS
from flairqc_app.grade import decide
from flairqc_app.manifest import read_manifest, read_thresholds
from flairqc_app.report.rating import model_verdict_text
from flairqc_app.report.verdict import as_number, category


@dataclass(frozen=True)
class Change:
    bids_name: str
    before: str  # category key (tier1..3, reject)
    after: str
    before_text: str  # e.g. "Tier 2 (motion 1)"
    after_text: str


@dataclass(frozen=True)
class Recomputed:
    rows: list[dict[str, Any]]
    thresholds: dict[str, float]
    changes: list[Change]
    not_recomputed: int  # processed rows without all seven probabilities

    def transitions(self) -> list[tuple[str, str, int]]:
        """(before, after, count), most frequent first."""
        counts = Counter((c.before, c.after) for c in self.changes)
        return [(b, a, n) for (b, a), n in counts.most_common()]


def thresholds_used(models_dir: Path, thresholds_file: Path) -> dict[str, float]:
    """The manifest's thresholds overridden by the file's (which may name only some tasks)."""
    _, specs = read_manifest(models_dir)
    return {task: spec.threshold for task, spec in specs.items()} | read_thresholds(thresholds_file)


def regraded(row: dict[str, Any], thresholds: dict[str, float]) -> dict[str, Any] | None:
    """The row with its verdict decided again, or None when it has no full set of probabilities.

    >>> row = {"status": "ok", **{f"p_{t}": 0.3 for t in TASKS}}
    >>> regraded(row, {t: 0.5 for t in TASKS})["tier"], regraded(row, {t: 0.2 for t in TASKS})["straight_reject"]
    (1, 1)
    """
    probabilities = {task: as_number(row.get(f"p_{task}")) for task in TASKS}
    if row.get("status") != "ok" or any(p is None for p in probabilities.values()):
        return None
    verdict = decide(probabilities, thresholds)  # type: ignore[arg-type]
    reject = bool(verdict.straight_reject)
    return {
        **row,
        "straight_reject": verdict.straight_reject,
        "tier": verdict.tier,
        "reject_source": "model" if reject else None,
        **{a: None if reject else verdict.grades[a] for a in ARTEFACTS},
    }


def recompute(rows: list[dict[str, Any]], thresholds: dict[str, float]) -> Recomputed:
    out, changes, missing = [], [], 0
    for row in rows:
        new = regraded(row, thresholds)
        if new is None:
            missing += row.get("status") == "ok"
            out.append(row)
            continue
        before, after = model_verdict_text(row), model_verdict_text(new)
        if before != after:
            changes.append(Change(str(row["bids_name"]), category(row), category(new), before, after))
        out.append(new)
    return Recomputed(out, thresholds, changes, missing)


def write_record(path: Path, result: Recomputed, models_dir: Path, thresholds_file: Path) -> None:
    atomic.write_json(
        path,
        {
            "thresholds": result.thresholds,
            "thresholds_file": str(thresholds_file.resolve()),
            "models_dir": str(models_dir.resolve()),
            "recomputed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "flairqc_version": __version__,
            "images": len(result.rows),
            "not_recomputed": result.not_recomputed,
            "changed": [
                {"bids_name": c.bids_name, "before": c.before_text, "after": c.after_text}
                for c in result.changes
            ],
        },
    )
