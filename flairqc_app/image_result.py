"""What one image of the participant level ends with, and the one writer of its outputs.

The crash file (if failed) and the report are written first, the per-image TSV last and atomically: a TSV on
disk means the image is complete (a re-run skips it when its run key is the same).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from flairqc_app import __version__, atomic, derivatives, tsv
from flairqc_app.discover import FlairImage
from flairqc_app.exceptions import ImageFailed
from flairqc_app.schema import REASONS

log = logging.getLogger("flairqc")


@dataclass
class ImageResult:
    """One image's row, its status and what its report shows; `reused` is the row of an earlier run with the
    same run key, which leaves nothing to write."""

    image: FlairImage
    row: dict[str, Any]
    started: float  # time.perf_counter() when the image began
    status: str = "ok"
    reason: str | None = None
    detail: str | None = None
    trace: str | None = None
    original: nib.Nifti1Image | None = None
    preprocessed: np.ndarray | None = None
    thresholds: dict[str, float] | None = None
    reused: dict[str, Any] | None = None

    def stop(self, failure: ImageFailed) -> None:
        """The stage that raised `failure` ended the image: its status follows the reason code."""
        self.status = REASONS[failure.reason][0]
        self.reason, self.detail, self.trace = failure.reason, failure.detail, failure.trace


@dataclass
class Outcome:
    bids_name: str
    status: str
    reused: bool = False
    category: str = "unknown"  # report.verdict.CATEGORIES key
    verdict: str = ""  # e.g. "Tier 2 (contrast 1)", for the terminal
    seconds: float | None = None

    @classmethod
    def of(cls, row: dict[str, Any], reused: bool = False) -> Outcome:
        from flairqc_app.report.rating import model_verdict_text
        from flairqc_app.report.verdict import as_number, category

        verdict = model_verdict_text(row)
        if row.get("status") != "ok" and row.get("reason"):
            verdict += f" ({row['reason']})"
        return cls(
            str(row["bids_name"]),
            str(row["status"]),
            reused,
            category(row),
            verdict,
            as_number(row.get("seconds")),
        )


def write_result(result: ImageResult, output_dir: Path) -> Outcome:
    """Write the crash file (if failed), the report, then the TSV last: a TSV on disk means complete."""
    if result.reused is not None:
        return Outcome.of(result.reused, reused=True)
    image, row = result.image, result.row
    if result.status == "failed":
        assert result.reason is not None and result.detail is not None
        log.error("%s: failed: %s: %s", image.bids_name, result.reason, result.detail)
        write_crash_file(output_dir, image, result.reason, result.detail, result.trace)
    else:
        derivatives.crash_file(output_dir, image.bids_name).unlink(missing_ok=True)
    row["status"], row["reason"], row["reason_detail"] = result.status, result.reason, result.detail
    row["seconds"] = round(time.perf_counter() - result.started, 2)
    from flairqc_app.report import render_participant_report  # jinja2/plotly only where reports are written

    html = render_participant_report(row, result.original, result.preprocessed, result.thresholds)
    atomic.write_text(derivatives.report_file(output_dir, image.bids_name), html)
    tsv.write_table(derivatives.qc_table(output_dir, image), [row])
    return Outcome.of(row)


def write_crash_file(
    output_dir: Path, image: FlairImage, reason: str, detail: str, trace: str | None
) -> None:
    lines = [
        f"image: {image.relpath}",
        f"reason: {reason} ({REASONS.get(reason, ('', ''))[1]})",
        f"detail: {detail}",
        f"flairqc: {__version__}",
        f"time: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
    ]
    if trace:
        lines += ["", trace]
    atomic.write_text(derivatives.crash_file(output_dir, image.bids_name), "\n".join(lines) + "\n")
