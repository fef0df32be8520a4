"""The evaluation HTML page: metrics table, balanced accuracy with 95% CI, confusion matrices, training
curves (losses, lambda, learning rate, validation BA per epoch) and McNemar tests, with plotly."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from flairqc_app import tsv

CURVE_PANELS = (
    ("losses", ("loss", "loss_source", "loss_target", "loss_domain", "val_loss")),
    ("lambda", ("lambda",)),
    ("learning rate", ("lr",)),
    ("validation BA", ("val_ba",)),
)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def selected_curves(run_dir: Path) -> list[dict[str, str]]:
    """curves.tsv rows of a run's selected fold; none for an ensemble (its members have their own)."""
    selection = Path(run_dir) / "selection.json"
    if not selection.is_file():
        return []
    fold = json.loads(selection.read_text())["fold"]
    return tsv.read_rows(Path(run_dir) / f"fold-{fold}" / "curves.tsv", quoted=True)


def ba_figure(metrics: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    for approach in dict.fromkeys(str(m["approach"]) for m in metrics):
        rows = [m for m in metrics if str(m["approach"]) == approach]
        ba = np.array([_num(r["balanced_accuracy"]) for r in rows]) * 100
        low = np.array([_num(r["ci_low"]) for r in rows]) * 100
        high = np.array([_num(r["ci_high"]) for r in rows]) * 100
        fig.add_trace(
            go.Scatter(
                x=[str(r["task"]) for r in rows],
                y=ba,
                mode="markers",
                name=approach,
                error_y={"type": "data", "symmetric": False, "array": high - ba, "arrayminus": ba - low},
            )
        )
    fig.update_layout(
        title="Balanced accuracy (%) on the test split, 95% bootstrap CI", yaxis_range=[0, 100], height=420
    )
    return fig


def confusion_figure(name: str, matrix: np.ndarray) -> go.Figure:
    ticks = [str(i) for i in range(matrix.shape[0])]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=ticks,
            y=ticks,
            text=matrix,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
        )
    )
    fig.update_layout(
        title=name,
        xaxis_title="predicted",
        yaxis_title="true",
        height=300,
        width=330,
        yaxis_autorange="reversed",
    )
    return fig


def curves_figure(name: str, rows: list[dict[str, str]]) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(CURVE_PANELS), subplot_titles=[p for p, _ in CURVE_PANELS])
    x = list(range(len(rows)))
    labels = [f"{r['phase']} {r['epoch']}" for r in rows]
    for col, (_, columns) in enumerate(CURVE_PANELS, start=1):
        for column in columns:
            y = [_num(r.get(column)) for r in rows]
            if not np.all(np.isnan(y)):
                fig.add_trace(
                    go.Scatter(x=x, y=y, name=column, text=labels, mode="lines+markers"), row=1, col=col
                )
    fig.update_layout(
        title=f"Training curves: {name} (selected fold; x = epoch index over phases)", height=330
    )
    return fig


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)

    def cell(v: Any) -> str:
        number = _num(v)
        return (
            f"{number:.4g}"
            if isinstance(v, float) or (isinstance(v, str) and not np.isnan(number) and "." in v)
            else html.escape(str(v))
        )

    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_page(
    path: Path,
    title: str,
    metrics: list[dict[str, Any]],
    confusions: dict[str, np.ndarray],
    curves: dict[str, list[dict[str, str]]],
    comparison: list[dict[str, Any]] | None = None,
) -> None:
    """One self-contained HTML file (plotly.js embedded once)."""
    figures = [ba_figure(metrics)] + [confusion_figure(n, m) for n, m in confusions.items()]
    figures += [curves_figure(n, rows) for n, rows in curves.items() if rows]
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    comparison_html = (
        f"<h2>McNemar tests (Bonferroni-corrected over tasks)</h2>{_table(comparison)}" if comparison else ""
    )
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:3px 8px}}.grid{{display:flex;flex-wrap:wrap}}</style></head><body><h1>{html.escape(title)}</h1>
<h2>Metrics</h2>{_table(metrics)}{comparison_html}{parts[0]}
<h2>Confusion matrices</h2><div class="grid">{"".join(parts[1 : 1 + len(confusions)])}</div>
<h2>Training curves</h2>{"".join(parts[1 + len(confusions) :])}</body></html>"""
    Path(path).write_text(page, encoding="utf-8")
