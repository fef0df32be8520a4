"""The screenshots of docs/ (a per-image page, the group page, the rating mode), in Debian's headless chromium.

It reads an output directory of a real participant run (e.g. the real 3D FLAIR of realdata-dev) and adds
synthetic rows around it for the group page, so that the pages shown are the ones flairqc writes. Screenshots
are quantised to 128 colours to stay small (< 300 KB).

    python tools/report_screenshots.py OUT_DIR_OF_A_PARTICIPANT_RUN docs/
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
WIDTH = 1366
SCANNERS = ("Siemens", "GE MEDICAL SYSTEMS", "Philips Medical Systems")


def save_small(png: bytes, path: Path, height: int) -> None:
    """The top `height` pixels (at most the viewport), in 128 colours."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.crop((0, 0, WIDTH, min(height, image.height)))
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {path.stat().st_size / 1024:.0f} KB")


def group_rows(out: Path) -> list[dict]:
    from helpers import synthetic_rows

    from flairqc_app.group import collect_rows

    rows = collect_rows(out)
    for i, row in enumerate(synthetic_rows(400, seed=5)):
        rows.append(row | {"manufacturer": SCANNERS[i % 3], "reason_detail": row["reason_detail"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="output directory of a participant run")
    parser.add_argument("docs", type=Path)
    args = parser.parse_args()
    from helpers import chromium_driver, new_page, open_page
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from flairqc_app.report import render_group_report

    site = Path(tempfile.mkdtemp(prefix="flairqc-shots-"))
    real = sorted(args.out.glob("sub-*.html"))[0]
    shutil.copy(real, site / real.name)
    (site / "group_FLAIR.html").write_text(render_group_report(group_rows(args.out)), encoding="utf-8")
    driver = chromium_driver()
    try:
        driver.set_window_size(WIDTH, 1500)
        open_page(driver, site / real.name)
        save_small(driver.get_screenshot_as_png(), args.docs / "report-image.png", 1300)

        open_page(driver, site / "group_FLAIR.html")
        driver.find_element(By.CSS_SELECTOR, '.count[data-category="tier2"]').click()
        driver.find_element(By.CSS_SELECTOR, "#qc-table tbody tr td:nth-child(3)").click()  # the real image
        driver.execute_script(
            "document.querySelector('.table-wrap').scrollTop = 0;"
            "document.getElementById('images').scrollIntoView()"
        )
        save_small(driver.get_screenshot_as_png(), args.docs / "report-group-table.png", 1000)
        driver.execute_script("window.scrollTo(0, 0)")
        save_small(driver.get_screenshot_as_png(), args.docs / "report-group.png", 1200)

        with new_page(driver):
            driver.find_element(By.ID, "rate").click()
        driver.find_element(By.ID, "rater").send_keys("AB")
        driver.find_element(By.ID, "comment").send_keys("slight ringing, frontal")
        driver.find_element(By.TAG_NAME, "h1").click()
        ActionChains(driver).send_keys("110").perform()
        save_small(driver.get_screenshot_as_png(), args.docs / "report-rating.png", 900)
    finally:
        driver.quit()
        shutil.rmtree(site, ignore_errors=True)


if __name__ == "__main__":
    main()
