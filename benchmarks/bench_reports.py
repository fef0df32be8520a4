"""Report benchmark: the group report at warehouse scale and the per-image report's size on real images.

Group: 10,000 synthetic rows written as per-image TSVs, then the real group level (bench_pipeline.bench_group:
read, group TSV, group HTML); then the page in Debian's headless chromium (selenium + chromium-driver):
time from navigation to the table shown (first render, marked by group.js), to the charts drawn (plotly, just
after) and to the load event,
a verdict-card filter (the click handler's own time, synchronous) and a search (wall time until the pager
changes, with the 150 ms typing debounce). Targets (issue 33): opens in <= 5 s, <= 25 MB.
Per image: the four images of ../shared/realdata-dev through the real participant level (the shipped models),
each in one BIDS dataset as a FLAIR, in a subprocess with an address-space cap; the per-image HTML sizes
(target <= 400 KB), and the montage bytes of the real 3D FLAIR as JPEG (chosen) and as PNG.

    python benchmarks/bench_reports.py [--rows 10000] [--loads 5] [--skip-real]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata-dev"
REAL_IMAGES = ("flair3d_head_1mm", "t1w3d_head", "flair2d_6mm_tumour", "t2w2d_head")
MEMORY_CAP_BYTES = 6 * 1024**3
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]


def bench_browser(page: Path, loads: int) -> None:
    from helpers import chromium_driver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    table, loaded, plots, card, search = [], [], [], [], []
    for _ in range(loads):
        driver = chromium_driver()
        try:
            driver.get(page.as_uri())
            WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#qc-table tbody tr"))
            body = driver.find_element(By.TAG_NAME, "body")
            WebDriverWait(driver, 60).until(lambda d, body=body: body.get_attribute("data-plots-drawn-ms"))
            table.append(int(body.get_attribute("data-table-shown-ms")) / 1000)
            plots.append(int(body.get_attribute("data-plots-drawn-ms")) / 1000)
            loaded.append(
                driver.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd")
                / 1000
            )
            card.append(
                driver.execute_script(
                    "const t = performance.now(); document.querySelector('.count[data-category=\"tier3\"]').click();"
                    "return performance.now() - t;"
                )
                / 1000
            )
            before = driver.find_element(By.ID, "pager").text
            tic = time.perf_counter()
            driver.find_element(By.ID, "search").send_keys("siemens")
            WebDriverWait(driver, 30).until(
                lambda d, before=before: d.find_element(By.ID, "pager").text != before
            )
            search.append(time.perf_counter() - tic)
        finally:
            driver.quit()
    print(
        f"headless chromium, median of {loads} loads, seconds since navigation: table shown "
        f"{statistics.median(table):.2f} (max {max(table):.2f}), charts drawn {statistics.median(plots):.2f} "
        f"(max {max(plots):.2f}), load event end {statistics.median(loaded):.2f}; "
        f"card filter {1000 * statistics.median(card):.0f} ms, "
        f"search {1000 * statistics.median(search):.0f} ms incl. the 150 ms debounce (target: open <= 5 s)"
    )


def limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))


def bench_real_reports(scratch: Path) -> None:
    bids = scratch / "real-bids"
    (bids / "dataset_description.json").parent.mkdir(parents=True)
    (bids / "dataset_description.json").write_text('{"Name": "realdata-dev", "BIDSVersion": "1.10.0"}')
    for name in REAL_IMAGES:
        subject = "sub-" + name.replace("_", "")
        anat = bids / subject / "anat"
        anat.mkdir(parents=True)
        (anat / f"{subject}_FLAIR.nii.gz").symlink_to(REALDATA / f"{name}.nii.gz")  # never a copy
    out = scratch / "real-out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    tic = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "flairqc_app", str(bids), str(out), "participant", "--skip-bids-validation"],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=limit_memory,
    )
    print(
        f"\nparticipant level on the {len(REAL_IMAGES)} realdata-dev images: {time.perf_counter() - tic:.0f} s, "
        f"exit {proc.returncode}"
    )
    print("\n".join(line for line in proc.stderr.splitlines() if line.startswith("[")))
    for name in REAL_IMAGES:
        subject = "sub-" + name.replace("_", "")
        size = (out / f"{subject}_FLAIR.html").stat().st_size
        print(f"per-image HTML {name}: {size / 1024:.0f} KB (target <= 400 KB)")
    montage_formats()


def montage_formats() -> None:
    import nibabel as nib

    from flairqc_app.report import figures

    volume, zooms = figures.canonical_volume(nib.load(str(REALDATA / "flair3d_head_1mm.nii.gz")))
    strips = figures.montage_strips(volume, zooms)
    for fmt in ("JPEG", "PNG"):
        size = sum(len(figures.encoded(s.convert("L") if fmt == "PNG" else s, fmt)) for s in strips)
        print(f"montage of the real 3D FLAIR (17 slices) as {fmt}: {size / 1024:.0f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--skip-real", action="store_true", help="no per-image reports of realdata-dev")
    args = parser.parse_args()
    print(
        f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
        f"{os.cpu_count()} CPUs"
    )
    from bench_pipeline import bench_group

    scratch = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    try:
        bench_group(args.rows, scratch)
        bench_browser(scratch / "group" / "group_FLAIR.html", args.loads)
        if not args.skip_real and REALDATA.is_dir():
            bench_real_reports(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
