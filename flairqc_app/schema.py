"""The columns flairqc writes, with their BIDS data dictionary.

One definition serves the per-image TSV, the group TSV, their JSON sidecars, the reports and the README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flairqc_app.config import SIDECAR_FIELDS, TASKS
from flairqc_app.entities import ENTITIES
from flairqc_app.iqm.definitions import IQMS, NOTES_COLUMN, NOTES_DESCRIPTION, Iqm


@dataclass(frozen=True)
class Column:
    name: str
    long_name: str
    description: str
    levels: dict[str, str] = field(default_factory=dict)
    units: str | None = None
    dtype: type = str  # how the TSV text is parsed back (group level, reports)
    term_url: str | None = None  # the reference that defines the column (IQMs)

    def dictionary_entry(self) -> dict:
        entry: dict = {"LongName": self.long_name, "Description": self.description}
        if self.levels:
            entry["Levels"] = dict(self.levels)
        if self.units:
            entry["Units"] = self.units
        if self.term_url:
            entry["TermURL"] = self.term_url
        return entry


STATUS_LEVELS = {
    "ok": "processed; the verdict columns hold the result",
    "skipped": "the input gate found the file is not a 3D FLAIR of the whole brain; straight reject, no model was run",
    "failed": "the file could not be read or processing broke; see reason and the crash file in logs/",
}

# reason code -> (status, one-line meaning); README.md lists the same table
GATE_REASONS: dict[str, tuple[str, str]] = {  # the input gate's (gate.py)
    "unreadable": ("failed", "the file cannot be opened as NIfTI or its data are truncated"),
    "degenerate_affine": ("failed", "the voxel-to-world affine is singular or not finite"),
    "non_finite": ("failed", "the image contains NaN or infinite values"),
    "not_3d": ("skipped", "not a 3D volume (2D, or 4D with more than one volume)"),
    "constant_intensity": ("skipped", "all voxels have (nearly) the same value: no image content"),
    "too_few_slices": ("skipped", "fewer voxels than a whole-brain 3D acquisition has along some axis"),
    "voxel_size_out_of_range": (
        "skipped",
        "a voxel size is outside the range of brain MRI (or the header's is wrong)",
    ),
    "acquisition_2d": (
        "skipped",
        "slices thicker than a 3D FLAIR has, or gaps between slices: a 2D acquisition",
    ),
    "voxels_too_coarse": (
        "skipped",
        "voxels too coarse in every direction (e.g. 3 mm isotropic) to grade the image",
    ),
    "sidecar_2d": ("skipped", "the sidecar says MRAcquisitionType is 2D"),
    "small_field_of_view": ("skipped", "the field of view is too small to hold the whole brain"),
}
PIPELINE_REASONS: dict[str, tuple[str, str]] = {  # the other stages' (participant.py)
    "bids_invalid": (
        "failed",
        "the BIDS validator found an error in this file or its sidecar (code and message in "
        "reason_detail); the other images are processed",
    ),
    "preprocessing_error": ("failed", "N4, registration or resampling raised an error (see the crash file)"),
    "inference_error": ("failed", "a model could not be run on the image (see the crash file)"),
    "too_large": (
        "failed",
        "processing the image would need more memory than allowed (--mem); checked from its header",
    ),
    "sidecar_invalid": ("failed", "a JSON sidecar of the image is not a JSON object in UTF-8"),
    "worker_died": ("failed", "the worker process ended while processing the image (killed, out of memory)"),
}
REASONS = {**GATE_REASONS, **PIPELINE_REASONS}
GRADE_LEVELS = {"0": "none", "1": "moderate", "2": "severe"}
TIER_LEVELS = {
    "1": "good: no artefact graded",
    "2": "medium: at least one moderate artefact, none severe",
    "3": "bad: at least one severe artefact",
}


def _probability(task: str) -> Column:
    return Column(
        f"p_{task}",
        f"Probability of {task.replace('_', ' ')}",
        f"Output of the {task} model (positive class probability, 0 to 1).",
        dtype=float,
    )


SIDECAR_UNITS = {"MagneticFieldStrength": "T", "EchoTime": "s", "InversionTime": "s", "RepetitionTime": "s"}


def _sidecar(key: str) -> Column:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", key).lower()
    unit = SIDECAR_UNITS.get(key)
    return Column(
        snake,
        key,
        f"Sidecar field {key} (BIDS inheritance applied); n/a when absent.",
        units=unit,
        dtype=float if unit else str,
    )


def _iqm(iqm: Iqm) -> Column:
    return Column(iqm.column, iqm.long_name, iqm.description, units=iqm.units, dtype=float, term_url=iqm.url)


IQM_COLUMNS = (*(_iqm(i) for i in IQMS), Column(NOTES_COLUMN, "IQM notes", NOTES_DESCRIPTION))

ENTITY_COLUMNS = tuple(Column(e.column, e.long_name, e.description) for e in ENTITIES)

COLUMNS: tuple[Column, ...] = (
    Column("bids_name", "BIDS name", "File name of the input image without extension; unique key of a row."),
    Column("source_file", "Source file", "Input image path relative to the BIDS root."),
    *ENTITY_COLUMNS,
    Column("status", "Processing status", "Whether the image was processed.", STATUS_LEVELS),
    Column(
        "reason",
        "Reason code",
        "Why the image was skipped or failed, as a code documented in README.md (input gate or pipeline).",
    ),
    Column("reason_detail", "Reason detail", "Human-readable explanation of the reason."),
    Column(
        "straight_reject",
        "Straight reject",
        "1 when the image is not a proper 3D FLAIR of the whole brain; overrides the tier.",
        {"0": "kept", "1": "straight reject"},
        dtype=int,
    ),
    Column(
        "reject_source",
        "Reject source",
        "What rejected the image.",
        {"gate": "input gate (geometry, metadata or intensities)", "model": "straight_reject model"},
    ),
    *(_probability(t) for t in TASKS),
    Column(
        "motion",
        "Motion grade",
        "Motion artefact grade from the moderate and severe models; n/a for a straight reject.",
        GRADE_LEVELS,
        dtype=int,
    ),
    Column(
        "noise",
        "Noise grade",
        "Noise grade from the moderate and severe models; n/a for a straight reject.",
        GRADE_LEVELS,
        dtype=int,
    ),
    Column(
        "contrast",
        "Contrast grade",
        "Poor grey/white contrast grade; n/a for a straight reject.",
        GRADE_LEVELS,
        dtype=int,
    ),
    Column(
        "tier",
        "Quality tier",
        "Indirect tier from the three grades; n/a for a straight reject.",
        TIER_LEVELS,
        dtype=int,
    ),
    *(_sidecar(k) for k in SIDECAR_FIELDS),
    Column("voxel_size_x", "Voxel size x", "Voxel size along the first array axis.", units="mm", dtype=float),
    Column(
        "voxel_size_y", "Voxel size y", "Voxel size along the second array axis.", units="mm", dtype=float
    ),
    Column("voxel_size_z", "Voxel size z", "Voxel size along the third array axis.", units="mm", dtype=float),
    Column("dim_x", "Size x", "Number of voxels along the first array axis.", dtype=int),
    Column("dim_y", "Size y", "Number of voxels along the second array axis.", dtype=int),
    Column("dim_z", "Size z", "Number of voxels along the third array axis.", dtype=int),
    Column(
        "registration_ncc",
        "Registration similarity",
        "Normalised cross-correlation of the preprocessed image with the template inside the template brain "
        "mask; below 0.5 the registration deserves a look.",
        dtype=float,
    ),
    *IQM_COLUMNS,
    Column(
        "preproc_recipe",
        "Preprocessing recipe",
        "Preprocessing settings used.",
        {"fast": "default", "paper": "Clinica flair-linear"},
    ),
    Column(
        "gate_limits",
        "Input gate limits",
        "Limits the input gate applied (name=value, ';'-separated; the defaults or a --gate-config file).",
    ),
    Column("provider", "Inference provider", "onnxruntime execution provider that ran the models."),
    Column("input_sha256", "Input hash", "SHA-256 of the input image file."),
    Column(
        "model_hashes",
        "Model hashes",
        "task=sha256 prefix (16 hex digits) of each model used, ';'-separated.",
    ),
    Column("flairqc_version", "flairqc version", "Version of flairqc that wrote the row."),
    Column(
        "run_key",
        "Run key",
        "Hash of inputs, models, thresholds, settings and version; a re-run with the same key is skipped.",
    ),
    Column("seconds", "Processing time", "Wall time spent on this image.", units="s", dtype=float),
)

COLUMN_NAMES = tuple(c.name for c in COLUMNS)
COLUMNS_BY_NAME = {c.name: c for c in COLUMNS}
SIDECAR_COLUMNS = {key: _sidecar(key).name for key in SIDECAR_FIELDS}
