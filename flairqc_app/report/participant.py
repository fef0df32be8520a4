"""The per-image HTML report: verdict, slices of the original and preprocessed images, probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np

from flairqc_app.config import GRID_SPACING_MM, SIDECAR_FIELDS, TASKS
from flairqc_app.report.figures import (
    VIEWS,
    canonical_volume,
    central_planes,
    central_slices,
    overlay_outline,
    png_data_uri,
)
from flairqc_app.report.iqms import render_section, section
from flairqc_app.report.page import render
from flairqc_app.report.verdict import CATEGORIES, as_number, text, verdict
from flairqc_app.schema import COLUMNS_BY_NAME, ENTITY_COLUMNS, SIDECAR_COLUMNS

IDENTITY_FIELDS = ("bids_name", "source_file", *(c.name for c in ENTITY_COLUMNS))
METADATA_FIELDS = (
    *(SIDECAR_COLUMNS[k] for k in SIDECAR_FIELDS),
    "voxel_size_x", "voxel_size_y", "voxel_size_z", "dim_x", "dim_y", "dim_z",
)
PROVENANCE_FIELDS = (
    "input_sha256", "flairqc_version", "model_hashes", "provider", "preproc_recipe",
    "registration_ncc", "seconds", "run_key",
)
BELOW_THRESHOLD_COLOUR = "#5b7fa6"


@dataclass(frozen=True)
class TableRow:
    label: str
    description: str
    value: str


@dataclass(frozen=True)
class Figure:
    caption: str
    uri: str


def table(row: dict, fields: tuple[str, ...]) -> list[TableRow]:
    """Schema long name, description and shown value (with units) of each field."""
    out = []
    for name in fields:
        column = COLUMNS_BY_NAME[name]
        value = text(row.get(name))
        if column.units and value != "n/a":
            value = f"{value} {column.units}"
        out.append(TableRow(column.long_name, column.description, value))
    return out


def probability_figure(row: dict, thresholds: dict[str, float] | None) -> dict:
    """Plotly bar chart, one bar per task; the decision threshold is a black dash across the bar."""
    labels = [task.replace("_", " ") for task in TASKS]
    probabilities = [as_number(row.get(f"p_{task}")) for task in TASKS]
    limits = [as_number((thresholds or {}).get(task)) for task in TASKS]
    above = CATEGORIES["tier3"][1]
    colours = [
        above if p is not None and t is not None and p >= t else BELOW_THRESHOLD_COLOUR
        for p, t in zip(probabilities, limits)
    ]
    data: list[dict] = [{
        "type": "bar", "name": "probability", "x": labels, "y": probabilities, "marker": {"color": colours},
        "text": [f"{p:.3f}" if p is not None else "n/a" for p in probabilities], "textposition": "outside",
        "hovertemplate": "%{x}: %{y:.3f}<extra></extra>",
    }]
    if any(t is not None for t in limits):
        data.append({
            "type": "scatter", "mode": "markers", "name": "decision threshold", "x": labels, "y": limits,
            "marker": {"symbol": "line-ew", "size": 48, "line": {"width": 3, "color": "#000"}},
            "hovertemplate": "threshold %{y:.3f}<extra></extra>",
        })
    layout = {
        "height": 340, "margin": {"l": 60, "r": 20, "t": 20, "b": 60},
        "yaxis": {"range": [0, 1.1], "title": {"text": "probability"}},
        "legend": {"orientation": "h", "y": -0.25}, "showlegend": len(data) > 1,
    }
    return {"data": data, "layout": layout}


def original_figures(image: nib.Nifti1Image) -> list[Figure]:
    volume, zooms = canonical_volume(image)
    return [Figure(view, png_data_uri(s)) for view, s in zip(VIEWS, central_slices(volume, zooms))]


def preprocessed_figures(volume: np.ndarray) -> tuple[list[Figure], list[Figure]]:
    """Central slices of the model input, and the same with the template brain-mask outline."""
    # Imported here: antspyx is slow to import and the group report never needs it.
    from flairqc_app.preprocess import template_brain_mask

    mask = template_brain_mask()
    zooms = (GRID_SPACING_MM,) * 3
    slices = central_slices(volume, zooms)
    outlined = [overlay_outline(s, m > 0) for s, m in zip(slices, central_planes(mask))]
    return (
        [Figure(view, png_data_uri(s)) for view, s in zip(VIEWS, slices)],
        [Figure(view, png_data_uri(s)) for view, s in zip(VIEWS, outlined)],
    )


def render_participant_report(
    row: dict,
    original: nib.Nifti1Image | None,
    preprocessed: np.ndarray | None,
    thresholds: dict[str, float] | None,
) -> str:
    """The self-contained HTML report of one image (figures as data URIs, plotly.js inlined once)."""
    processed, outlined = preprocessed_figures(preprocessed) if preprocessed is not None else ([], [])
    return render(
        "participant.html.j2",
        bids_name=text(row.get("bids_name")),
        verdict=verdict(row),
        identity=table(row, IDENTITY_FIELDS),
        metadata=table(row, METADATA_FIELDS),
        provenance=table(row, PROVENANCE_FIELDS),
        probabilities=probability_figure(row, thresholds) if row.get("status") == "ok" else None,
        thresholds_given=bool(thresholds),
        iqms=render_section(section(row)),
        original=original_figures(original) if original is not None else [],
        processed=processed,
        outlined=outlined,
    )
