"""The per-image HTML report: verdict, montages of the original and preprocessed images, probabilities.

No plotly here: the probability bars are inline SVG drawn by the template and the montages JPEG data URIs,
so a page weighs about 300 KB instead of 5 MB (benchmarks/bench_reports.py), and works from file:// offline.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np

from flairqc_app.config import GRID_SPACING_MM, SIDECAR_FIELDS, TASKS
from flairqc_app.grid import template_brain_mask
from flairqc_app.report.figures import (
    VIEWS,
    canonical_volume,
    data_uri,
    montage_strips,
    outline_strips,
)
from flairqc_app.report.iqms import render_section, section
from flairqc_app.report.page import render
from flairqc_app.report.rating import rating_context
from flairqc_app.report.verdict import as_number, badge, category, text
from flairqc_app.schema import COLUMNS_BY_NAME, ENTITY_COLUMNS, SIDECAR_COLUMNS
from flairqc_app.tsv import NA

IDENTITY_FIELDS = ("bids_name", "source_file", *(c.name for c in ENTITY_COLUMNS))
METADATA_FIELDS = (
    *(SIDECAR_COLUMNS[k] for k in SIDECAR_FIELDS),
    "voxel_size_x",
    "voxel_size_y",
    "voxel_size_z",
    "dim_x",
    "dim_y",
    "dim_z",
)
PROVENANCE_FIELDS = (
    "input_sha256",
    "flairqc_version",
    "model_hashes",
    "provider",
    "preproc_recipe",
    "registration_ncc",
    "seconds",
    "run_key",
)
# Successful registrations measure >= 0.4 on real images (the good real 3D FLAIR of realdata-dev: 0.45),
# failures about 0.1 (bench_preprocess); below this, where the fast recipe retries, the page warns, because the
# models then read an image that is not where they expect the brain. (0.5 would warn on that good FLAIR.)
LOW_NCC = 0.3
AIR_VIEWS = ("axial", "sagittal")  # ghosts run along the phase-encoding direction: these two show both


@dataclass(frozen=True)
class TableRow:
    label: str
    description: str
    value: str


@dataclass(frozen=True)
class Strip:
    """One montage strip: a view, its image and (for the registration check) a transparent outline layer."""

    view: str
    uri: str
    overlay: str | None = None


@dataclass(frozen=True)
class Bar:
    label: str
    probability: float | None
    threshold: float | None

    @property
    def above(self) -> bool:
        return (
            self.probability is not None and self.threshold is not None and self.probability >= self.threshold
        )


def table(row: dict, fields: tuple[str, ...]) -> list[TableRow]:
    """Schema long name, description and shown value (with units) of each field."""
    out = []
    for name in fields:
        column = COLUMNS_BY_NAME[name]
        value = text(row.get(name))
        if column.units and value != NA:
            value = f"{value} {column.units}"
        out.append(TableRow(column.long_name, column.description, value))
    return out


def probability_bars(row: dict, thresholds: dict[str, float] | None) -> list[Bar]:
    """One bar per model read; a straight reject shows its reject model alone (its artefacts are not graded)."""
    tasks = ("straight_reject",) if category(row) == "reject" else TASKS
    return [
        Bar(task.replace("_", " "), as_number(row.get(f"p_{task}")), as_number((thresholds or {}).get(task)))
        for task in tasks
    ]


def registration_warning(row: dict) -> str | None:
    """The warning shown when the registration to the template looks poor, else None."""
    ncc = as_number(row.get("registration_ncc"))
    if ncc is None or ncc >= LOW_NCC:
        return None
    return (
        f"Low registration similarity: NCC {ncc:.2f} < {LOW_NCC}. The preprocessed image may be misaligned "
        "with the template, and the model verdicts then unreliable: check the outline below."
    )


def original_strips(image: nib.Nifti1Image) -> tuple[list[Strip], list[Strip]]:
    """The original image's montage (tissue window) and its background view (air window)."""
    volume, zooms = canonical_volume(image)
    tissue = montage_strips(volume, zooms)
    air = montage_strips(volume, zooms, air=True)
    return (
        [Strip(v, data_uri(s, "JPEG")) for v, s in zip(VIEWS, tissue)],
        [Strip(v, data_uri(s, "JPEG")) for v, s in zip(VIEWS, air) if v in AIR_VIEWS],
    )


def preprocessed_strips(volume: np.ndarray) -> list[Strip]:
    """The model input's montage, each strip with the template brain-mask outline as a layer over it."""
    zooms = (GRID_SPACING_MM,) * 3
    outlines = outline_strips(template_brain_mask(), volume, zooms)
    return [
        Strip(v, data_uri(s, "JPEG"), data_uri(o))
        for v, s, o in zip(VIEWS, montage_strips(volume, zooms), outlines)
    ]


def render_participant_report(
    row: dict,
    original: nib.Nifti1Image | None,
    preprocessed: np.ndarray | None,
    thresholds: dict[str, float] | None,
) -> str:
    """The self-contained HTML report of one image (figures as data URIs and inline SVG, no plotly)."""
    tissue, air = original_strips(original) if original is not None else ([], [])
    return render(
        "participant.html.j2",
        bids_name=text(row.get("bids_name")),
        verdict=badge(row),
        warning=registration_warning(row),
        identity=table(row, IDENTITY_FIELDS),
        metadata=table(row, METADATA_FIELDS),
        provenance=table(row, PROVENANCE_FIELDS),
        bars=probability_bars(row, thresholds) if row.get("status") == "ok" else [],
        thresholds_given=bool(thresholds),
        iqms=render_section(section(row)),
        original=tissue,
        background=air,
        processed=preprocessed_strips(preprocessed) if preprocessed is not None else [],
        rating=rating_context(row),
    )
