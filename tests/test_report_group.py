"""Group report: counts match the rows, all rows embedded once, escaping, size with 10,000 rows."""

from __future__ import annotations

import html as html_lib
import json
import re
from collections import Counter

import pytest
from helpers import MALICIOUS, Page, assert_self_contained, make_row, synthetic_rows

from flairqc_app.report import render_group_report
from flairqc_app.report.group import MAX_BAR_GROUPS, stacked_figure
from flairqc_app.report.verdict import category


def shown_counts(page: str) -> dict[str, int]:
    pattern = (
        r'<button type="button" class="count" data-category="(\w+)"[^>]*>\s*<span class="n">(\d+)</span>'
    )
    return {key: int(n) for key, n in re.findall(pattern, page)}


def embedded(page: str, element_id: str) -> object:
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    assert match, element_id
    return json.loads(match.group(1))


def figure(page: str, plot_id: str) -> dict:
    match = re.search(rf'data-plot-for="{plot_id}">(.*?)</script>', page, re.S)
    assert match, plot_id
    return json.loads(match.group(1))


def expected_counts(rows: list[dict]) -> dict[str, int]:
    """Counted from the raw fields, independently of the report's own category()."""
    counts = Counter()
    for row in rows:
        if row["status"] != "ok":
            counts[row["status"]] += 1
        elif row["straight_reject"] == 1:
            counts["reject"] += 1
        else:
            counts[f"tier{row['tier']}"] += 1
    return counts


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return synthetic_rows(100)


@pytest.fixture(scope="module")
def page(rows: list[dict]) -> str:
    return render_group_report(rows, title="QC <of> site A")


def test_counts_match_the_rows(rows: list[dict], page: str) -> None:
    expected = expected_counts(rows)
    keys = ("tier1", "tier2", "tier3", "reject", "skipped", "failed")
    assert shown_counts(page) == {key: expected[key] for key in keys}
    assert sum(shown_counts(page).values()) == len(rows)
    assert f"{len(rows)} images" in page


def test_table_data_holds_every_row_once(rows: list[dict], page: str) -> None:
    payload = embedded(page, "qc-rows")
    names = [r[payload["columns"].index("bids_name")] for r in payload["rows"]]
    assert names == [row["bids_name"] for row in rows]
    index = {name: i for i, name in enumerate(payload["columns"])}
    for row, cells in zip(rows, payload["rows"]):
        assert cells[index["category"]] == category(row)
        probability = row["p_motion_severe"]
        assert cells[index["p_motion_severe"]] == (None if probability is None else round(probability, 3))
    assert page.count('id="qc-rows"') == 1


def test_untrusted_text_stays_data(rows: list[dict], page: str) -> None:
    assert MALICIOUS not in page and "<of>" not in page
    assert "QC &lt;of&gt; site A" in page
    payload = embedded(page, "qc-rows")
    manufacturers = {r[payload["columns"].index("manufacturer")] for r in payload["rows"]}
    assert MALICIOUS in manufacturers  # round-trips exactly through the escaped JSON
    # Script bodies never contain a literal "</script" or "<!--" coming from a value.
    for body in re.findall(r"<script[^>]*>(.*?)</script>", page, re.S):
        assert "<!--" not in body or len(body) > 4_000_000  # plotly.js itself is exempt
    labels = figure(page, "by-manufacturer")["data"][0]["x"]
    assert html_lib.escape(MALICIOUS) in labels  # plotly reads tags in labels: they are escaped too


def test_self_contained(page: str) -> None:
    parsed = Page(page)
    assert_self_contained(parsed)
    assert sum(not attrs for attrs, _ in parsed.scripts) == 2  # plotly.js; plots.js, rating.js and group.js
    assert sum(len(body) > 4_000_000 for _, body in parsed.scripts) == 1  # plotly.js inlined once


def test_stacked_bars_add_up(rows: list[dict], page: str) -> None:
    for plot_id in ("by-manufacturer", "by-field", "by-model"):
        data = figure(page, plot_id)["data"]
        assert sum(sum(trace["y"]) for trace in data) == len(rows)
    by_field = figure(page, "by-field")["data"]
    assert set(by_field[0]["x"]) == {"1.5 T", "3 T", "n/a"}  # 3.0 and "3" are the same field strength


def test_many_scanner_models_are_pooled() -> None:
    rows = [
        make_row(status="ok", tier=1, straight_reject=0, manufacturers_model_name=f"M{i % 40}")
        for i in range(400)
    ]
    data = stacked_figure(rows, lambda row: row["manufacturers_model_name"], "models")["data"]
    (tier1,) = data
    assert len(tier1["x"]) == MAX_BAR_GROUPS and tier1["x"][-1] == "other (16 groups)"
    assert sum(tier1["y"]) == 400 and tier1["y"][-1] == 160


def test_rows_read_back_from_tsv_strings() -> None:
    rows = [
        make_row(
            bids_name="sub-1_FLAIR", status="ok", tier="3", straight_reject="0", p_noise_severe="0.91234"
        ),
        make_row(bids_name="sub-2_FLAIR", status="ok", tier="n/a", straight_reject="1", p_noise_severe="n/a"),
    ]
    page = render_group_report(rows)
    assert shown_counts(page)["tier3"] == 1 and shown_counts(page)["reject"] == 1
    payload = embedded(page, "qc-rows")
    column = payload["columns"].index("p_noise_severe")
    assert [r[column] for r in payload["rows"]] == [0.912, None]


def test_empty_dataset() -> None:
    page = render_group_report([])
    assert "0 images" in page and embedded(page, "qc-rows")["rows"] == []


def test_ten_thousand_rows_stay_small() -> None:
    """Its time is measured by benchmarks/bench_pipeline.py (group level), not here: timings flake in CI."""
    page = render_group_report(synthetic_rows(10_000, iqms=True))
    assert len(page.encode()) < 15_000_000  # with the IQM figures: 10.4 MB
    assert len(embedded(page, "qc-rows")["rows"]) == 10_000


def test_no_chart_of_one_na_bar() -> None:
    """Sidecars without scanner metadata: no chart of a single "n/a" bar, a note instead."""
    rows = [make_row(bids_name=f"sub-{i}_FLAIR", status="ok", tier=1, straight_reject=0) for i in range(5)]
    page = render_group_report(rows)
    assert 'data-plot-for="by-' not in page and 'id="no-scanner-charts"' in page
    rows[0]["manufacturer"] = "Siemens"
    page = render_group_report(rows)
    assert 'data-plot-for="by-manufacturer"' in page and 'data-plot-for="by-model"' not in page
    assert set(figure(page, "by-manufacturer")["data"][0]["x"]) == {"Siemens", "n/a"}
