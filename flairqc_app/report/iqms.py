"""The IQM parts of both reports, kept apart from the page layouts: a section of the per-image report (values,
units, percentile within the run, second opinion) and a section of the group report (distributions, scatter
against the model probabilities, the images with a second opinion).

The per-image section sits between two HTML comments; the group level, which knows the whole run, renders it
again with percentiles and second opinions and puts it in place (refresh_participant_reports), leaving the
rest of the page as the participant level wrote it.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from flairqc_app import atomic, derivatives
from flairqc_app.iqm.definitions import DIMENSIONLESS, FAMILIES, IQMS, NOTES_COLUMN
from flairqc_app.iqm.ranking import percentiles, second_opinion
from flairqc_app.report.page import environment
from flairqc_app.report.verdict import as_number, text
from flairqc_app.tsv import NA

log = logging.getLogger("flairqc")
START, END = "<!-- flairqc:iqms -->", "<!-- /flairqc:iqms -->"
START_BYTES, END_BYTES = START.encode(), END.encode()
SCATTER_PAIRS = (
    ("iqm_snr_wm", "p_noise_moderate"),
    ("iqm_noise_tissue", "p_noise_moderate"),
    ("iqm_cnr", "p_contrast_moderate"),
    ("iqm_cjv", "p_contrast_moderate"),
    ("iqm_wmh_fraction", "p_contrast_moderate"),
    ("iqm_efc", "p_motion_moderate"),
    ("iqm_qi1", "p_motion_moderate"),
    ("iqm_fwhm_avg", "p_motion_moderate"),
)
SIGNIFICANT = 4
ARROWS = {"higher": "↑", "lower": "↓", "neither": ""}
MARKER = {"size": 6, "opacity": 0.6, "color": "#3b6ea5"}


@dataclass(frozen=True)
class IqmLine:
    column: str
    family: str
    label: str
    description: str
    value: str
    percentile: str
    better: str


@dataclass(frozen=True)
class IqmSection:
    lines: tuple[IqmLine, ...]
    ranked: bool  # percentiles known (group level has run)
    run_size: int
    opinions: tuple[str, ...]
    notes: str


def section(
    row: dict, ranks: dict[str, float] | None = None, run_size: int = 0, opinions: tuple[str, ...] = ()
) -> IqmSection | None:
    """The IQM table of one row; None when the row has no IQM at all (skipped or failed images)."""
    if row.get("status") != "ok" or all(as_number(row.get(i.column)) is None for i in IQMS):
        return None
    lines = []
    for iqm in IQMS:
        value = text(as_number(row.get(iqm.column)))
        if value != NA and iqm.units != DIMENSIONLESS:
            value = f"{value} {iqm.units}"
        rank = (ranks or {}).get(iqm.column)
        lines.append(
            IqmLine(
                iqm.column,
                iqm.family,
                iqm.long_name,
                iqm.description,
                value,
                NA if rank is None else f"{rank:g}",
                ARROWS[iqm.better],
            )
        )
    lines.sort(key=lambda line: FAMILIES.index(line.family))
    return IqmSection(tuple(lines), ranks is not None, run_size, opinions, text(row.get(NOTES_COLUMN)))


def render_section(iqms: IqmSection | None) -> Markup:
    return Markup(environment().get_template("_iqms.html.j2").module.iqm_section(iqms))


def replace_section(page: bytes, new_section: bytes) -> bytes | None:
    """The page with its IQM section replaced; None when the page has none (written by another version).
    Bytes, not text: a page is ~5 MB (plotly.js inlined) and decoding it would cost more than the rest."""
    # the section is near the end, after plotly.js
    start, end = (
        page.rfind(START_BYTES),
        page.rfind(END_BYTES),
    )
    if start < 0 or end < start:
        return None
    return page[:start] + new_section.strip() + page[end + len(END_BYTES) :]


def refresh_participant_reports(output_dir: Path, rows: list[dict]) -> int:
    """Put each processed image's percentiles within the run and its second opinion into its report."""
    ranks = percentiles(rows)
    refreshed = 0
    for row in rows:
        name = str(row["bids_name"])
        path = derivatives.report_file(output_dir, name)
        updated_section = section(
            row, ranks[name], len(rows), tuple(second_opinion(row, ranks[name], len(rows)))
        )
        if updated_section is None or not path.is_file():
            continue
        try:
            page = path.read_bytes()
        except OSError as exc:
            log.warning("%s: report not refreshed with the run's IQM percentiles: %s", path, exc)
            continue
        new_page = replace_section(page, str(render_section(updated_section)).encode("utf-8"))
        if new_page is not None and new_page != page:
            atomic.write_bytes(path, new_page)
            refreshed += 1
    return refreshed


def rounded(value: object) -> float | None:
    number = as_number(value)
    return None if number is None else float(f"{number:.{SIGNIFICANT}g}")


def with_menu(traces: list[dict], labels: list[str], layout: dict) -> dict:
    """A plotly figure showing one trace at a time, chosen from a dropdown."""
    for index, trace in enumerate(traces):
        trace["visible"] = index == 0
    buttons = [
        {
            "label": label,
            "method": "update",
            "args": [{"visible": [i == index for i in range(len(traces))]}, {"xaxis.title.text": label}],
        }
        for index, label in enumerate(labels)
    ]
    layout = {
        **layout,
        "updatemenus": [{"buttons": buttons, "x": 0.0, "xanchor": "left", "y": 1.18, "yanchor": "top"}],
        "xaxis": {**layout.get("xaxis", {}), "title": {"text": labels[0] if labels else ""}},
    }
    return {"data": traces, "layout": layout}


def distribution_figure(rows: list[dict]) -> dict:
    traces, labels = [], []
    for iqm in IQMS:
        values = [v for v in (rounded(row.get(iqm.column)) for row in rows) if v is not None]
        if values:
            traces.append(
                {"type": "histogram", "x": values, "name": iqm.long_name, "marker": {"color": "#3b6ea5"}}
            )
            labels.append(f"{iqm.long_name} ({iqm.column})")
    return with_menu(
        traces,
        labels,
        {
            "height": 380,
            "margin": {"l": 50, "r": 10, "t": 70, "b": 50},
            "yaxis": {"title": {"text": "images"}},
            "bargap": 0.05,
        },
    )


def scatter_figure(rows: list[dict]) -> dict:
    traces, labels = [], []
    for column, probability in SCATTER_PAIRS:
        points = [
            (rounded(row.get(column)), rounded(row.get(probability)), html.escape(str(row["bids_name"])))
            for row in rows
        ]
        points = [p for p in points if p[0] is not None and p[1] is not None]
        if not points:
            continue
        xs, ys, names = (list(axis) for axis in zip(*points))
        # SVG "scatter", not "scattergl": WebGL is missing in some browsers (headless, remote desktops)
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "x": xs,
                "y": ys,
                "text": names,
                "name": f"{column} vs {probability}",
                "marker": MARKER,
                "hovertemplate": "%{text}<br>%{x} / %{y}<extra></extra>",
            }
        )
        labels.append(f"{column} vs {probability}")
    return with_menu(
        traces,
        labels,
        {
            "height": 380,
            "margin": {"l": 60, "r": 10, "t": 70, "b": 50},
            "yaxis": {"title": {"text": "model probability"}, "range": [0, 1.02]},
        },
    )


def group_section(rows: list[dict]) -> dict:
    """Context of the group report's IQM section: two figures and the images with a second opinion."""
    ranks = percentiles(rows)
    opinions = [
        (str(row["bids_name"]), line)
        for row in rows
        for line in second_opinion(row, ranks[str(row["bids_name"])], len(rows))
    ]
    has_iqms = any(as_number(row.get(i.column)) is not None for row in rows for i in IQMS)
    return {
        "shown": has_iqms,
        "distribution": distribution_figure(rows),
        "scatter": scatter_figure(rows),
        "opinions": opinions,
        "run_size": len(rows),
    }
