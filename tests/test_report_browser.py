"""The reports in a real browser (headless chromium --dump-dom): scripts run, plots draw, the table fills."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import MALICIOUS, Page, browser, dump_dom, make_row, synthetic_rows

from flairqc_app.config import TASKS
from flairqc_app.report import render_group_report, render_participant_report

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        browser() is None, reason="no chromium, chromium-browser or google-chrome binary on PATH"
    ),
]


@pytest.fixture(scope="module")
def group_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reports") / "group_FLAIR.html"
    path.write_text(render_group_report(synthetic_rows(100)), encoding="utf-8")
    return path


def table_rows(dom: str) -> list[str]:
    return re.findall(r'<tr data-name="([^"]*)"', dom)


def injected_scripts(dom: str) -> list[str]:
    """Script elements made of the malicious sidecar value: they exist only if it broke out of the JSON."""
    return [body for _, body in Page(dom).scripts if body.strip() == "alert(1)"]


def test_participant_report_renders(tmp_path: Path) -> None:
    row = make_row(
        bids_name="sub-07_FLAIR",
        status="ok",
        straight_reject=0,
        tier=3,
        motion=2,
        noise=0,
        contrast=1,
        manufacturer=MALICIOUS,
        **{f"p_{t}": 0.3 for t in TASKS},
    )
    path = tmp_path / "sub-07_FLAIR.html"
    path.write_text(render_participant_report(row, None, None, {t: 0.5 for t in TASKS}), encoding="utf-8")
    dom = dump_dom(path)
    assert re.search(r'<p class="headline">\s*Tier 3\s*</p>', dom)
    assert dom.count('<g class="bar') == len(TASKS)  # the inline SVG probability bars
    # its script ran
    assert '<small id="rating-status" aria-live="polite" data-state="none">not rated</small>' in dom
    assert not injected_scripts(dom)


def test_group_table_is_filled_and_paginated(group_page: Path) -> None:
    dom = dump_dom(group_page)
    assert table_rows(dom) == [f"sub-{i:04d}_ses-1_FLAIR" for i in range(1, 51)]
    assert "1–50 of 100" in dom
    assert dom.count('class="main-svg"') >= 5  # three stacked bars and two distribution plots
    assert not injected_scripts(dom)


def test_group_search_from_url_highlights_one_image(group_page: Path) -> None:
    dom = dump_dom(group_page, "#q=sub-0042")
    assert table_rows(dom) == ["sub-0042_ses-1_FLAIR"]
    assert '<tr data-name="sub-0042_ses-1_FLAIR" class="selected">' in dom
    assert "1–1 of 1 (filtered from 100)" in dom
    selection = dom[dom.index('id="selection"') :]
    # no longer hidden
    assert selection.startswith('id="selection">') and "sub-0042_ses-1_FLAIR" in selection[:500]
    assert 'href="sub-0042_ses-1_FLAIR.html"' in dom  # relative link to the per-image report
