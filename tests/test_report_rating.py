"""The rating loop in a real browser (Debian's chromium through selenium): the group report's rating mode walks
the filtered images, ratings made with the keyboard persist in localStorage across reloads, export as a labels
TSV, and that TSV goes through `flairqc-train consensus`, `prepare` and `train` into a smoke model."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import browser, chromium_driver, make_row, new_page, open_page

from flairqc_app.config import TASKS
from flairqc_app.report import render_group_report, render_participant_report
from flairqc_app.train import cli as train_cli
from flairqc_app.train.labels import read_labels

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        browser() is None or shutil.which("chromedriver") is None, reason="no chromium or chromedriver"
    ),
]
SUBJECTS = [f"sub-{i:02d}" for i in range(1, 9)]
REJECTED = "sub-03"


def wanted(subject: str) -> tuple[int, int | None, int | None, int | None]:
    """The rating typed for each image: (straight_reject, motion, noise, contrast)."""
    if subject == REJECTED:
        return 1, None, None, None
    i = SUBJECTS.index(subject)
    return 0, i % 3, (i + 1) % 3, 0


def keys_for(subject: str) -> str:
    reject, *grades = wanted(subject)
    return "x" if reject else "".join(str(g) for g in grades)  # digits grade motion, noise, contrast in turn


def write_reports(out: Path) -> None:
    rows = []
    for i, subject in enumerate(SUBJECTS):
        row = make_row(
            bids_name=f"{subject}_FLAIR",
            source_file=f"{subject}/anat/{subject}_FLAIR.nii.gz",
            participant_id=subject,
            status="ok",
            straight_reject=0,
            tier=2,
            motion=1,
            noise=0,
            contrast=0,
            input_sha256=f"{i:064x}",
            **{f"p_{t}": 0.3 for t in TASKS},
        )
        (out / f"{subject}_FLAIR.html").write_text(
            render_participant_report(row, None, None, None), encoding="utf-8"
        )
        rows.append(row)
    (out / "group_FLAIR.html").write_text(render_group_report(rows), encoding="utf-8")


def write_datasets(root: Path) -> tuple[Path, Path]:
    """A labelled T1w source dataset and an unlabelled FLAIR target dataset of the rated images."""
    source, target = root / "source", root / "target"
    image = nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4))
    lines = ["filename\tparticipant_id\tmodality\tstraight_reject\tmotion\tnoise\tcontrast\n"]
    for i in range(8):
        relpath = f"sub-s{i}/anat/sub-s{i}_T1w.nii.gz"
        (source / relpath).parent.mkdir(parents=True)
        nib.save(image, str(source / relpath))
        lines.append(f"{relpath}\tsub-s{i}\tT1w\t0\t0\t{i % 2}\t0\n")
    (source / "labels.tsv").write_text("".join(lines))
    for subject in SUBJECTS:
        (target / subject / "anat").mkdir(parents=True)
        nib.save(image, str(target / subject / "anat" / f"{subject}_FLAIR.nii.gz"))
    return source, target


def current_subject(driver) -> str:
    return Path(driver.current_url).name.split("_")[0]


def radio_values(driver) -> dict[str, int | None]:
    out = {}
    for name in ("straight_reject", "motion", "noise", "contrast"):
        checked = driver.find_elements(By.CSS_SELECTOR, f'input[name="{name}"]:checked')
        out[name] = int(checked[0].get_attribute("value")) if checked else None
    return out


def wait_for_file(directory: Path, pattern: str) -> Path:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [p for p in directory.glob(pattern) if not p.name.endswith(".crdownload")]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {pattern} downloaded into {directory}")


def fake_preprocess(path, template, recipe):
    """The preprocessing stands in (it takes ~30 s an image): a smooth random volume per file."""
    rng = np.random.default_rng(len(str(path)))
    return rng.random((24, 24, 24)).astype(np.float32), 0.9, 0.0


# Records, from before the page's own scripts, when the page touches flairqc's localStorage entries (the length,
# key(i), or a "flairqc:" key; plotly's bundled `debug` module removes its own key while loading) and what the rating
# controls allow at `load`: the Chromium file:// bug (rating.js) needs every access to wait for load + 300 ms.
WATCH_STORAGE = """
window.__storage = [];
const proto = Storage.prototype;
for (const name of ["getItem", "setItem", "removeItem", "key"]) {
  const original = proto[name];
  proto[name] = function (...args) {
    if (name === "key" || String(args[0]).startsWith("flairqc:")) window.__storage.push(performance.now());
    return original.apply(this, args);
  };
}
const length = Object.getOwnPropertyDescriptor(proto, "length").get;
Object.defineProperty(proto, "length", {get() { window.__storage.push(performance.now()); return length.call(this); }});
window.addEventListener("load", () => {
  window.__loaded = performance.now();
  const rate = document.getElementById("rate"), widget = document.getElementById("rating");
  window.__atLoad = {rate_disabled: rate ? rate.disabled : null, widget_inert: widget ? widget.inert : null};
}, {once: true});
"""


def test_storage_waits_until_the_page_has_settled(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_reports(out)
    driver = chromium_driver()
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_STORAGE})
        seen = {}
        for page in ("group_FLAIR.html", "sub-01_FLAIR.html"):
            open_page(driver, out / page)
            seen[page] = driver.execute_script(
                "return {loaded: window.__loaded, storage: window.__storage, atLoad: window.__atLoad}"
            )
    finally:
        driver.quit()
    group, image = seen["group_FLAIR.html"], seen["sub-01_FLAIR.html"]
    assert group["atLoad"] == {"rate_disabled": True, "widget_inert": None}
    assert image["atLoad"] == {"rate_disabled": None, "widget_inert": True}
    for page in seen.values():
        assert page["storage"], "the page read no ratings"
        assert min(page["storage"]) >= page["loaded"] + 299  # rating.js SETTLE_MS, less rounding


def test_rate_reload_export_then_train(tmp_path: Path, monkeypatch) -> None:
    out, downloads = tmp_path / "out", tmp_path / "downloads"
    out.mkdir()
    downloads.mkdir()
    write_reports(out)
    driver = chromium_driver(downloads)
    try:
        open_page(driver, out / "group_FLAIR.html")
        with new_page(driver):
            driver.find_element(By.ID, "rate").click()
        assert driver.current_url.endswith("sub-01_FLAIR.html")
        driver.find_element(By.ID, "rater").send_keys("AB")
        for subject in SUBJECTS:
            assert current_subject(driver) == subject
            assert (
                f"image {SUBJECTS.index(subject) + 1} of {len(SUBJECTS)}"
                in driver.find_element(By.ID, "queue").text
            )
            driver.find_element(By.TAG_NAME, "h1").click()  # out of the text box: keys are shortcuts
            ActionChains(driver).send_keys(keys_for(subject)).perform()
            assert driver.find_element(By.ID, "rating-status").get_attribute("data-state") == "complete"
            if subject != SUBJECTS[-1]:
                with new_page(driver):
                    ActionChains(driver).send_keys("j").perform()

        # reloaded from localStorage, on another page load
        open_page(driver, out / "sub-02_FLAIR.html")
        reject, motion, noise, contrast = wanted("sub-02")
        assert radio_values(driver) == {
            "straight_reject": reject,
            "motion": motion,
            "noise": noise,
            "contrast": contrast,
        }
        assert driver.find_element(By.ID, "rater").get_attribute("value") == "AB"
        assert driver.find_element(By.ID, "rating-status").text.startswith("saved")
        assert driver.find_element(By.ID, "rating-count").text.startswith("8 image(s) rated")

        # the group report sees the ratings; its export button downloads them
        open_page(driver, out / "group_FLAIR.html")
        rated = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#qc-table td.rated")]
        assert rated == ["\u2713"] * len(SUBJECTS)
        driver.find_element(By.ID, "export-ratings").click()
        exported = wait_for_file(downloads, "ratings_AB_*.tsv")
    finally:
        driver.quit()

    labels = {row.filename: row for row in read_labels(exported)}
    assert len(labels) == len(SUBJECTS)
    for subject in SUBJECTS:
        row = labels[f"{subject}/anat/{subject}_FLAIR.nii.gz"]
        reject, motion, noise, contrast = wanted(subject)
        assert (row.straight_reject, row.grades) == (
            reject,
            {"motion": motion, "noise": noise, "contrast": contrast},
        )
        assert row.participant_id == subject and row.modality == "FLAIR"
    header, first = exported.read_text().splitlines()[:2]
    columns = dict(zip(header.split("\t"), first.split("\t")))
    assert (
        columns["rater"] == "AB"
        and columns["rated_at"].startswith("20")
        and columns["model_verdict"] == "Tier 2 (motion 1)"
    )

    # a second rater differs on one image; the consensus goes where flairqc-train prepare reads labels
    second = tmp_path / "ratings_CD.tsv"
    text = exported.read_text().replace("\tAB\t", "\tCD\t")
    second.write_text(
        text.replace("sub-01_FLAIR.nii.gz\tsub-01\tFLAIR\t0\t0", "sub-01_FLAIR.nii.gz\tsub-01\tFLAIR\t0\t2")
    )
    source, target = write_datasets(tmp_path)
    assert (
        train_cli.main(
            ["consensus", "--ratings", str(exported), str(second), "--out", str(target / "labels.tsv")]
        )
        == 0
    )
    assert "sub-01/anat/sub-01_FLAIR.nii.gz\tmotion" in (target / "labels_disagreements.tsv").read_text()

    from flairqc_app.train import cache as cache_mod

    monkeypatch.setattr(cache_mod, "_preprocess_one", fake_preprocess)
    cache = tmp_path / "cache"
    assert (
        train_cli.main(
            [
                "prepare",
                "--source",
                str(source),
                "--target",
                str(target),
                "--cache",
                str(cache),
                "--input-shape",
                "24",
                "24",
                "24",
                "--test-fraction",
                "0",
            ]
        )
        == 0
    )
    run = tmp_path / "run"
    assert (
        train_cli.main(
            [
                "train",
                "--cache",
                str(cache),
                "--run",
                str(run),
                "--task",
                "noise_moderate",
                "--method",
                "target-only",
                "--epochs",
                "1",
                "--pretrain-epochs",
                "0",
                "--folds",
                "2",
                "--batch-size",
                "2",
                "--channels",
                "4",
                "8",
                "8",
                "--hidden",
                "16",
                "8",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    models = tmp_path / "models"
    assert train_cli.main(["export", "--runs", str(run), "--models-dir", str(models)]) == 0
    assert (models / "models.json").is_file()
