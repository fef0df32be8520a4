"""What the rating widget of a per-image page needs to know about its image, and the export's columns.

Ratings live in the browser's localStorage only (never sent anywhere); rating.js exports them as a labels
TSV that `flairqc-train` reads (train/labels.py): its first seven columns are labels.tsv's, then who rated,
when, and what the model said, so that disagreements with the model can be looked at later.
"""

from __future__ import annotations

from flairqc_app.config import ARTEFACTS
from flairqc_app.report.verdict import as_int, badge, text

LABEL_COLUMNS = ("filename", "participant_id", "modality", "straight_reject", *ARTEFACTS)
EXTRA_COLUMNS = (
    "rater",
    "rated_at",
    "comment",
    "bids_name",
    "input_sha256",
    "model_verdict",
    "model_straight_reject",
    *(f"model_{a}" for a in ARTEFACTS),
)
EXPORT_COLUMNS = LABEL_COLUMNS + EXTRA_COLUMNS
MODALITY = "FLAIR"


def model_verdict_text(row: dict) -> str:
    """One line: the verdict's headline and its non-zero grades, e.g. "Tier 2 (motion 1)".

    >>> model_verdict_text({"status": "ok", "tier": 2, "straight_reject": 0, "motion": 1, "noise": 0})
    'Tier 2 (motion 1)'
    """
    graded = [f"{a} {g}" for a in ARTEFACTS if (g := as_int(row.get(a)))]
    shown = badge(row)
    return shown.headline + (
        f" ({', '.join(graded)})" if graded and shown.category.startswith("tier") else ""
    )


def rating_context(row: dict) -> dict:
    """The image's identity (the storage key is bids_name + input_sha256) and the model's verdict."""
    reject = as_int(row.get("straight_reject"))
    return {
        "bids_name": text(row.get("bids_name")),
        "input_sha256": text(row.get("input_sha256")),
        "filename": text(row.get("source_file")),
        "participant_id": text(row.get("participant_id")),
        "modality": MODALITY,
        "model": {
            "model_verdict": model_verdict_text(row),
            "model_straight_reject": reject,
            **{f"model_{a}": None if reject else as_int(row.get(a)) for a in ARTEFACTS},
        },
        "columns": list(EXPORT_COLUMNS),
    }
