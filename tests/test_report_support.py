"""Shared helpers of the report tests and benchmark: rows shaped like the pipeline's, an HTML parser
for the self-containment and escaping checks, headless chromium.

Named test_report_* so it sits with the report tests; it holds no tests itself.
"""

from __future__ import annotations

import base64
import io
import json
import random
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from flairqc_app.config import TASKS
from flairqc_app.iqm.definitions import IQMS
from flairqc_app.schema import COLUMN_NAMES

MALICIOUS = "</script><script>alert(1)</script><!--"
MANUFACTURERS = ("Siemens", "GE MEDICAL SYSTEMS", "Philips Medical Systems", MALICIOUS)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def make_row(**values: object) -> dict:
    """A complete row (every schema column, n/a by default) with the given values."""
    unknown = set(values) - set(COLUMN_NAMES)
    assert not unknown, f"not schema columns: {unknown}"
    return {name: values.get(name) for name in COLUMN_NAMES}


def tier_of(grades: dict[str, int]) -> int:
    return 3 if 2 in grades.values() else 2 if 1 in grades.values() else 1


def synthetic_rows(n: int, seed: int = 0, iqms: bool = False) -> list[dict]:
    """n rows with a realistic mix: mostly ok, some straight rejects, skipped and failed images; with `iqms`, the
    processed ones carry a value for every IQM (drawn apart, so the rest of the rows stay the same)."""
    rng = random.Random(seed)
    iqm_rng = random.Random(seed + 1)
    width = max(4, len(str(n)))
    rows = []
    for i in range(1, n + 1):
        status = rng.choices(("ok", "skipped", "failed"), weights=(90, 6, 4))[0]
        values: dict[str, object] = {
            "bids_name": f"sub-{i:0{width}d}_ses-1_FLAIR",
            "source_file": f"sub-{i:0{width}d}/ses-1/anat/sub-{i:0{width}d}_ses-1_FLAIR.nii.gz",
            "participant_id": f"sub-{i:0{width}d}",
            "session_id": "ses-1",
            "status": status,
            "manufacturer": rng.choice(MANUFACTURERS),
            "magnetic_field_strength": rng.choice((1.5, 3.0, "3", None)),
            "manufacturers_model_name": f"Model-{rng.randrange(40)}",
            "echo_time": 0.1,
            "repetition_time": 5.0,
            "inversion_time": 1.8,
            "mr_acquisition_type": "3D",
            "flairqc_version": "0.1.0",
        }
        if status == "ok":
            grades = {a: rng.choice((0, 0, 0, 1, 1, 2)) for a in ("motion", "noise", "contrast")}
            reject = int(rng.random() < 0.05)
            values.update(grades, straight_reject=reject, tier=None if reject else tier_of(grades),
                          reject_source="model" if reject else None, registration_ncc=rng.uniform(0.4, 0.95),
                          **{f"p_{t}": rng.random() for t in TASKS})
            if iqms:
                values.update({iqm.column: iqm_rng.uniform(0.05, 20.0) for iqm in IQMS})
        elif status == "skipped":
            values.update(straight_reject=1, reject_source="gate", reason="thick_slices",
                          reason_detail="2D acquisition")
        else:
            values.update(reason="read_error", reason_detail="cannot read the NIfTI header")
        rows.append(make_row(**values))
    return rows


class Page(HTMLParser):
    """Collects what self-containment and escaping checks need: tags, attributes, script bodies, text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._script: dict[str, str | None] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        else:
            self.text.append(data)

    def images(self) -> list[Image.Image]:
        uris = [attrs["src"] for tag, attrs in self.tags if tag == "img"]
        prefixes = ("data:image/png;base64,", "data:image/jpeg;base64,")
        assert all(uri.startswith(prefixes) for uri in uris)
        return [Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) for uri in uris]

    def json_scripts(self) -> list[object]:
        return [json.loads(body) for attrs, body in self.scripts if attrs.get("type") == "application/json"]


def assert_self_contained(page: Page) -> None:
    assert not [t for t, _ in page.tags if t in ("link", "iframe", "object", "embed")]
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http:", "https:", "//", "file:")), (tag, value)
        assert not (tag == "script" and "src" in attrs), "scripts must be inline"
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def dump_dom(page: Path, fragment: str = "") -> str:
    """The DOM of a page after its scripts ran, as headless chromium serialises it."""
    command = [
        browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
        "--dump-dom", page.resolve().as_uri() + fragment,
    ]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    except subprocess.TimeoutExpired as error:  # a modal dialog, e.g. an injected alert(), stalls the page
        raise AssertionError(f"chromium did not finish rendering {page.name}{fragment}") from error


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1366,900")


def chromium_driver(download_dir: Path | None = None):
    """Debian's chromium through chromium-driver (selenium): never a downloaded browser.

    The performance log records every network request, for the no-network check.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    if download_dir is not None:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def requested_urls(driver) -> list[str]:
    """URLs the page asked the network for, from the performance log (Network.requestWillBeSent)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
