"""The labels table: fixed column order (paper section 2.3.1 labels first, then every generation parameter).

Columns are fixed whatever cases a dataset happens to contain, so tables from different runs concatenate.
"""

from __future__ import annotations

from collections.abc import Iterable

from flairqc_app.config import ARTEFACTS
from flairqc_app.tsv import NA, format_cell, rows_text

ID_COLUMNS = ("filename", "participant_id", "session_id", "run_id", "acq_id")
LABEL_COLUMNS = ("modality", "straight_reject", "reject_reason", *ARTEFACTS)
GEN_PARAMETERS = (
    "seed",
    "subject_seed",
    "sequence",
    "grid",
    "plane",
    "voxel_mm",
    "shape",
    "mr_acquisition_type",
    "orientation",
    "rot_x_deg",
    "rot_y_deg",
    "rot_z_deg",
    "scale_x",
    "scale_y",
    "scale_z",
    "trans_x_mm",
    "trans_y_mm",
    "trans_z_mm",
    "elastic_mm",
    "ventricle_mm",
    "lesion_count",
    "lesion_ml",
    "sharpness",
    "fine_elastic_mm",
    "texture",
    "layer_edge_mm",
    "csf_rim_mm",
    "inner_table_mm",
    "diploe_mm",
    "outer_table_mm",
    "skin_mm",
    "subcutaneous_fat_mm",
    "level_csf",
    "level_gm",
    "level_wm",
    "level_lesion",
    "level_fat",
    "bias_amplitude",
    "snr",
    "noise_sigma",
    "motion_poses",
    "motion_switches",
    "motion_times",
    "motion_max_rot_deg",
    "motion_max_trans_mm",
    "motion_visible",
    "contrast_mode",
    "contrast_residual",
    "contrast_region_fraction",
    "contrast_outside_residual",
    "csf_to_wm",
    "truncation_axis",
    "truncation_fraction",
    "segmentation_kind",
    "phantom_diameter_mm",
    "phantom_length_mm",
    "phantom_rods",
    "phantom_spheres",
    "near_empty_spots",
    "zero_background",
    "dtype",
    "intensity_max",
    "manufacturer",
    "model",
    "field_strength_t",
    "presentation",
    "pathology",
    "intensity_gamma",  # domain randomisation (randomise.py), n/a without it
)
GEN_COLUMNS = tuple(f"gen_{name}" for name in GEN_PARAMETERS)
COLUMNS = ID_COLUMNS + LABEL_COLUMNS + GEN_COLUMNS
MISSING = NA  # the cell of an absent label or parameter (case.py, bids.py)


def gen_fields(parameters: dict[str, object]) -> dict[str, object]:
    """Prefix generation parameters with gen_, refusing unknown names (the column list is the contract)."""
    unknown = set(parameters) - set(GEN_PARAMETERS)
    if unknown:
        raise KeyError(f"generation parameters without a labels column: {sorted(unknown)}")
    return {f"gen_{name}": value for name, value in parameters.items()}


def _cell(value: object) -> str:
    return MISSING if value == "" else format_cell(value, keep_nan=True)


def to_tsv(rows: Iterable[dict[str, object]]) -> str:
    """Tab-separated text, `n/a` for missing cells, COLUMNS order."""
    return rows_text(COLUMNS, rows, _cell, quoted=True)


COLUMN_DESCRIPTIONS = {
    "filename": "Image path relative to the dataset root.",
    "participant_id": "BIDS participant label with the sub- prefix.",
    "session_id": "BIDS session label, n/a when there is none.",
    "run_id": "BIDS run index, n/a when there is none.",
    "acq_id": "BIDS acq label, n/a when there is none.",
    "modality": "File suffix: T1w or FLAIR.",
    "straight_reject": "1 when the image is not a 3D FLAIR (or T1w) of the whole brain.",
    "reject_reason": "Why the image is a straight reject (code), n/a otherwise.",
    "motion": "Motion grade 0/1/2 (paper section 2.3).",
    "noise": "Noise grade 0/1/2 (paper section 2.3).",
    "contrast": "Poor-contrast grade 0/1/2 (paper section 2.3).",
}


def data_dictionary() -> dict[str, dict[str, str]]:
    """labels.json: description of every column (generation parameters point to docs/synthetic-data.md)."""
    generated = {
        column: {"Description": "Generation parameter, see docs/synthetic-data.md."} for column in GEN_COLUMNS
    }
    return {**{k: {"Description": v} for k, v in COLUMN_DESCRIPTIONS.items()}, **generated}
