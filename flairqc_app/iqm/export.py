"""The IQMs of one image in MRIQC's JSON layout (a flat dict of metrics, plus bids_meta and provenance), so
that tools reading MRIQC's per-image JSON (mriqc-learn, the MRIQC-web API format) can read FLAIR IQMs.

Keys are MRIQC's names where the measure is the same (cnr, cjv, efc, fber, qi_1, snr_wm, ...); FLAIR-only
measures carry a flair_ prefix. A metric that is n/a is left out; its reason is in provenance.warnings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flairqc_app.iqm.definitions import IQMS, NOTES_COLUMN

MODALITY = "FLAIR"
BIDS_META_COLUMNS = {
    "participant_id": "subject_id",
    "session_id": "session_id",
    "acq_id": "acq_id",
    "rec_id": "rec_id",
    "run_id": "run_id",
}


def md5_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def mriqc_json(row: dict[str, Any], sidecar: dict[str, Any], input_md5: str) -> dict[str, Any]:
    """The MRIQC-layout document of one processed row (its IQM columns) and the image's sidecar."""
    document: dict[str, Any] = {
        iqm.mriqc_key: row[iqm.column] for iqm in IQMS if row.get(iqm.column) is not None
    }
    bids_meta = {key: value for key, value in sidecar.items() if isinstance(value, (str, int, float, bool))}
    for column, key in BIDS_META_COLUMNS.items():
        if row.get(column) is not None:
            bids_meta[key] = str(row[column]).removeprefix("sub-") if key == "subject_id" else row[column]
    bids_meta["modality"] = MODALITY
    notes = row.get(NOTES_COLUMN) or ""
    by_column = {iqm.column: iqm.mriqc_key for iqm in IQMS}
    warnings = {
        by_column.get(column, column): reason
        for column, reason in (part.split(": ", 1) for part in notes.split("; ") if ": " in part)
    }
    document["bids_meta"] = bids_meta
    document["provenance"] = {
        "md5sum": input_md5,
        "software": "flairqc",
        "version": row.get("flairqc_version"),
        "settings": {"preproc_recipe": row.get("preproc_recipe")},
        "warnings": warnings,
    }
    return document
