"""The group HTML report: verdict cards that filter, tiers per scanner, probability distributions, a table.

Built to stay light with 10,000 images: no per-image figure; the table (search, sort, per-column filters,
column chooser, paging, rating mode) and the distribution plots are drawn in the browser (group.js) from one
compact JSON array of the rows embedded once. Each row links to its per-image report.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from flairqc_app.config import ARTEFACTS, TASKS
from flairqc_app.report.iqms import group_section
from flairqc_app.report.page import plotly_js, render
from flairqc_app.report.verdict import CATEGORIES, as_number, category, text
from flairqc_app.schema import COLUMNS_BY_NAME
from flairqc_app.tsv import NA

if TYPE_CHECKING:  # recompute imports the report's verdict helpers
    from flairqc_app.recompute import Recomputed

PROBABILITY_FIELDS = tuple(f"p_{task}" for task in TASKS)
NUMERIC_FIELDS = frozenset({"straight_reject", "tier", *ARTEFACTS, "registration_ncc", *PROBABILITY_FIELDS})
# (row field, table header); headers stay short, the schema description is their tooltip.
TABLE_COLUMNS = (
    ("bids_name", "BIDS name"),
    ("status", "status"),
    ("reason", "reason"),
    ("straight_reject", "reject"),
    ("tier", "tier"),
    *((a, a) for a in ARTEFACTS),
    *(
        (
            f"p_{t}",
            "p "
            + t.replace("_moderate", "≥1")
            .replace("_severe", "2")
            .replace("straight_reject", "reject")
            .replace("motion", "mot")
            .replace("contrast", "con")
            .replace("_", " "),
        )
        for t in TASKS
    ),
    ("registration_ncc", "NCC"),
    ("manufacturer", "manufacturer"),
    ("magnetic_field_strength", "field (T)"),
    ("manufacturers_model_name", "model"),
)
VERDICT_HEADER = (
    "category",
    "verdict",
    "Tier 1-3, straight reject by the model, skipped by the input gate, or failed.",
)
PREVIOUS_HEADER = (
    "previous",
    "was",
    "The verdict before the group level recomputed it with other thresholds.",
)
# Shown when the page opens; the column chooser shows the others (status and reject are in the verdict badge).
HIDDEN_COLUMNS = ("status", "straight_reject", "magnetic_field_strength", "manufacturers_model_name")
GRADE_FIELDS = ("straight_reject", "tier", *ARTEFACTS)
DECIMALS = 3
MAX_BAR_GROUPS = 25  # scanner models beyond the 25 most frequent are pooled into one bar
# the record (group_FLAIR_thresholds.json) and the table's "changed" search have them all
MAX_CHANGES_LISTED = 200


def cell(row: dict, field: str) -> str | float | None:
    """A compact JSON value: rounded number, text, or None for n/a."""
    if field in NUMERIC_FIELDS:
        number = as_number(row.get(field))
        return None if number is None else round(number, DECIMALS)
    shown = text(row.get(field))
    return None if shown == NA else shown


def table_payload(rows: list[dict], previous: dict[str, str] | None = None) -> dict:
    """Rows as arrays (no repeated keys) plus computed category columns, for group.js.

    `previous` maps the images whose verdict a recompute changed to their former category.
    """
    fields = [field for field, _ in TABLE_COLUMNS]
    previous = previous or {}
    return {
        "columns": [*fields, "category", "previous"],
        "rows": [
            [cell(row, f) for f in fields] + [category(row), previous.get(str(row.get("bids_name")))]
            for row in rows
        ],
        "tasks": [{"field": f"p_{t}", "label": t.replace("_", " ")} for t in TASKS],
        "categories": {key: label for key, (label, _) in CATEGORIES.items()},
        "hidden": list(HIDDEN_COLUMNS),
        "grades": list(GRADE_FIELDS),
        "numeric": sorted(NUMERIC_FIELDS - set(GRADE_FIELDS)),
    }


def field_strength(row: dict) -> str:
    tesla = as_number(row.get("magnetic_field_strength"))
    return f"{tesla:g} T" if tesla is not None else text(row.get("magnetic_field_strength")).strip() or NA


def field_text(name: str) -> Callable[[dict], str]:
    return lambda row: text(row.get(name)).strip() or NA


# the plotly toolbar takes the top-left corner of each plot: the title goes below it
TITLE_BELOW_TOOLBAR = {
    "x": 0.02,
    "xanchor": "left",
    "yref": "container",
    "y": 1,
    "yanchor": "top",
    "pad": {"t": 34},
}


def stacked_figure(rows: list[dict], group_of: Callable[[dict], str], title: str) -> dict:
    """Bars of images per group (largest first), stacked by category, as a plotly figure."""
    per_group: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        per_group[group_of(row)][category(row)] += 1
    order = sorted(per_group, key=lambda g: (-per_group[g].total(), g))
    if len(order) > MAX_BAR_GROUPS:
        pooled = f"other ({len(order) - MAX_BAR_GROUPS + 1} groups)"
        for group in order[MAX_BAR_GROUPS - 1 :]:
            per_group[pooled].update(per_group.pop(group))
        order = order[: MAX_BAR_GROUPS - 1] + [pooled]
    # Plotly reads tags such as <b> or <a> in labels: escape untrusted sidecar text.
    labels = [html.escape(group) for group in order]
    data = [
        {
            "type": "bar",
            "name": label,
            "x": labels,
            "y": [per_group[g][key] for g in order],
            "marker": {"color": colour},
        }
        for key, (label, colour) in CATEGORIES.items()
        if any(per_group[g][key] for g in order)
    ]
    layout = {
        "barmode": "stack",
        "title": {"text": title, **TITLE_BELOW_TOOLBAR},
        "height": 380,
        "margin": {"l": 50, "r": 10, "t": 70, "b": 90},
        "xaxis": {"type": "category", "automargin": True},
        "yaxis": {"title": {"text": "images"}},
        "legend": {"orientation": "h", "y": -0.35},
    }
    return {"data": data, "layout": layout}


def informative(figure: dict) -> bool:
    """False for a chart with one group only, "n/a" (no sidecar had the field): it would be one empty bar."""
    groups = {x for trace in figure["data"] for x, y in zip(trace["x"], trace["y"]) if y}
    return groups != {NA} and bool(groups)


def table_headers(recomputed: bool = False) -> list[tuple[str, str, str]]:
    """(field, header, tooltip) of the table columns: the name, the verdict badge (and the verdict before a
    recompute), then TABLE_COLUMNS."""
    described = [(field, header, COLUMNS_BY_NAME[field].description) for field, header in TABLE_COLUMNS]
    return [described[0], VERDICT_HEADER, *([PREVIOUS_HEADER] if recomputed else []), *described[1:]]


def changes_context(recomputed: Recomputed | None) -> dict | None:
    """What the report says about a recompute: the thresholds, the transitions and the changed images."""
    if recomputed is None:
        return None
    labels = {key: label for key, (label, _) in CATEGORIES.items()}
    return {
        "thresholds": [(task.replace("_", " "), value) for task, value in recomputed.thresholds.items()],
        "transitions": [(labels[b], labels[a], n) for b, a, n in recomputed.transitions()],
        "changes": recomputed.changes[:MAX_CHANGES_LISTED],
        "n_changes": len(recomputed.changes),
        "not_recomputed": recomputed.not_recomputed,
    }


def render_group_report(
    rows: list[dict], title: str = "flairqc group report", recomputed: Recomputed | None = None
) -> str:
    """The self-contained HTML group report (plotly.js inlined once, rows embedded once as JSON)."""
    counts = Counter(category(row) for row in rows)
    previous = {c.bids_name: c.before for c in recomputed.changes} if recomputed else {}
    return render(
        "group.html.j2",
        title=title,
        total=len(rows),
        counts=[
            (key, label, counts[key])
            for key, (label, _) in CATEGORIES.items()
            if key != "unknown" or counts[key]
        ],
        figures=[
            (plot_id, figure)
            for plot_id, figure in (
                (
                    "by-manufacturer",
                    stacked_figure(rows, field_text("manufacturer"), "Verdicts by manufacturer"),
                ),
                ("by-field", stacked_figure(rows, field_strength, "Verdicts by magnetic field strength")),
                (
                    "by-model",
                    stacked_figure(rows, field_text("manufacturers_model_name"), "Verdicts by scanner model"),
                ),
            )
            if informative(figure)
        ],
        headers=table_headers(recomputed is not None),
        payload=table_payload(rows, previous),
        recompute=changes_context(recomputed),
        plotly_js=plotly_js(),
        iqm_context=group_section(rows),
    )
