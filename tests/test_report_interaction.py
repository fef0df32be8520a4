"""The reports driven in a real browser (Debian's chromium through selenium): card filters, search, column
filters and the column chooser of the group report give the right rows; the per-image page asks the network
for nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from helpers import browser, chromium_driver, make_row, requested_urls, synthetic_rows

from flairqc_app.config import TASKS
from flairqc_app.report import render_group_report, render_participant_report
from flairqc_app.report.verdict import category

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser() is None, reason="no chromium binary on PATH"),
]
N_ROWS = 300


@pytest.fixture
def driver():
    chromium = chromium_driver()
    yield chromium
    chromium.quit()


@pytest.fixture
def rows() -> list[dict]:
    return synthetic_rows(N_ROWS, seed=3)


@pytest.fixture
def group_url(tmp_path: Path, rows: list[dict]) -> str:
    path = tmp_path / "group_FLAIR.html"
    path.write_text(render_group_report(rows), encoding="utf-8")
    return path.as_uri()


def pager(driver) -> str:
    return driver.find_element(By.ID, "pager").text


def wait_for_pager(driver, text: str) -> None:
    WebDriverWait(driver, 10).until(lambda d: pager(d) == text, message=f"pager never showed {text!r}")


def all_rows_shown(driver) -> list[str]:
    """Names of every row of the filtered set (page size 500 holds them all)."""
    Select(driver.find_element(By.ID, "page-size")).select_by_visible_text("500")
    return [
        tr.get_attribute("data-name") for tr in driver.find_elements(By.CSS_SELECTOR, "#qc-table tbody tr")
    ]


def expected_pager(n: int) -> str:
    return f"1–{min(n, 50)} of {n} (filtered from {N_ROWS})" if n < N_ROWS else f"1–50 of {N_ROWS}"


def test_verdict_cards_filter_the_table(driver, group_url: str, rows: list[dict]) -> None:
    driver.get(group_url)
    counts = Counter(category(r) for r in rows)
    driver.find_element(By.CSS_SELECTOR, '.count[data-category="tier3"]').click()
    wait_for_pager(driver, expected_pager(counts["tier3"]))
    driver.find_element(By.CSS_SELECTOR, '.count[data-category="skipped"]').click()
    wait_for_pager(driver, expected_pager(counts["tier3"] + counts["skipped"]))
    wanted = {r["bids_name"] for r in rows if category(r) in ("tier3", "skipped")}
    assert set(all_rows_shown(driver)) == wanted
    driver.find_element(By.CSS_SELECTOR, '.count[data-category="tier3"]').click()  # a second click clears it
    wait_for_pager(driver, expected_pager(counts["skipped"]))


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("Tier 3", lambda r: category(r) == "tier3"),
        ("straight reject", lambda r: category(r) == "reject"),
        ("thick_slices", lambda r: r["reason"] == "thick_slices"),
        ("philips", lambda r: "Philips" in (r["manufacturer"] or "")),
        ("model-7", lambda r: r["manufacturers_model_name"] in ("Model-7",)),
    ],
)
def test_search_covers_verdict_reason_and_scanner(
    driver, group_url: str, rows: list[dict], query, wanted
) -> None:
    driver.get(group_url)
    box = driver.find_element(By.ID, "search")
    box.send_keys(query)
    expected = {r["bids_name"] for r in rows if wanted(r)}
    assert expected, query
    wait_for_pager(driver, expected_pager(len(expected)))
    assert set(all_rows_shown(driver)) == expected


def test_grade_and_probability_filters_and_sort(driver, group_url: str, rows: list[dict]) -> None:
    driver.get(group_url)
    Select(driver.find_element(By.CSS_SELECTOR, 'select[data-filter="motion"]')).select_by_visible_text("2")
    driver.find_element(By.CSS_SELECTOR, 'input[data-filter="p_noise_moderate"]').send_keys("0.25-0.75")
    expected = [
        r
        for r in rows
        if r["motion"] == 2
        and r["p_noise_moderate"] is not None
        and 0.25 <= round(r["p_noise_moderate"], 3) <= 0.75
    ]
    wait_for_pager(driver, expected_pager(len(expected)))
    driver.find_element(By.CSS_SELECTOR, 'th[data-field="p_contrast_severe"]').click()
    driver.find_element(By.CSS_SELECTOR, 'th[data-field="p_contrast_severe"]').click()  # descending
    order = sorted(expected, key=lambda r: -r["p_contrast_severe"])
    assert all_rows_shown(driver) == [r["bids_name"] for r in order]


def test_column_chooser_and_width(driver, group_url: str) -> None:
    driver.get(group_url)

    def headers() -> list[str]:
        return [
            th.get_attribute("data-field")
            for th in driver.find_elements(By.CSS_SELECTOR, "#qc-table thead th")
            if th.is_displayed()
        ]

    assert "manufacturers_model_name" not in headers() and "p_motion_severe" in headers()
    driver.find_element(By.CSS_SELECTOR, "#column-chooser summary").click()
    driver.find_element(By.CSS_SELECTOR, '#column-chooser input[value="manufacturers_model_name"]').click()
    driver.find_element(By.CSS_SELECTOR, '#column-chooser input[value="p_motion_severe"]').click()
    assert "manufacturers_model_name" in headers() and "p_motion_severe" not in headers()
    first = driver.find_element(By.CSS_SELECTOR, "#qc-table tbody tr")
    assert len(first.find_elements(By.TAG_NAME, "td")) == len(headers())
    driver.find_element(By.CSS_SELECTOR, "#column-chooser summary").click()
    driver.set_window_size(1366, 900)
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 1366  # the page fits a 1,366 px screen; the table scrolls inside its own box if need be


def test_selection_walks_the_filtered_set(driver, group_url: str, rows: list[dict]) -> None:
    driver.get(group_url)
    driver.find_element(By.CSS_SELECTOR, '.count[data-category="tier1"]').click()
    tier1 = sorted(r["bids_name"] for r in rows if category(r) == "tier1")
    wait_for_pager(driver, expected_pager(len(tier1)))
    driver.find_element(By.CSS_SELECTOR, "#qc-table tbody tr td:nth-child(3)").click()

    def selected() -> str:
        return driver.find_element(By.CSS_SELECTOR, "#qc-table tbody tr.selected").get_attribute("data-name")

    assert selected() == tier1[0]
    driver.find_element(By.ID, "select-next").click()
    driver.find_element(By.TAG_NAME, "body").send_keys("j")
    assert selected() == tier1[2]
    driver.find_element(By.TAG_NAME, "body").send_keys("k")
    assert selected() == tier1[1]
    link = driver.find_element(By.CSS_SELECTOR, "#selection a")
    assert link.get_attribute("href").endswith(f"/{tier1[1]}.html")


def test_per_image_page_makes_no_network_request(driver, tmp_path: Path) -> None:
    import nibabel as nib
    import numpy as np

    row = make_row(
        bids_name="sub-01_FLAIR",
        status="ok",
        straight_reject=0,
        tier=1,
        motion=0,
        noise=0,
        contrast=0,
        input_sha256="ab" * 32,
        registration_ncc=0.12,
        **{f"p_{t}": 0.2 for t in TASKS},
    )
    image = nib.Nifti1Image(np.random.default_rng(0).random((40, 48, 36)).astype(np.float32), np.eye(4))
    path = tmp_path / "sub-01_FLAIR.html"
    path.write_text(render_participant_report(row, image, None, {t: 0.5 for t in TASKS}), encoding="utf-8")
    driver.get(path.as_uri())
    assert driver.find_element(By.ID, "registration-warning").is_displayed()
    assert len(driver.find_elements(By.CSS_SELECTOR, "#original img")) == 3
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
    urls = requested_urls(driver)
    assert urls and all(u.startswith(("file://", "data:")) for u in urls), urls
    assert [u for u in urls if u.startswith("file://")] == [path.as_uri()]
