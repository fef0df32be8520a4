"""Helpers of the tests, benchmarks and tools (fixtures are in conftest.py): tiny BIDS datasets written on the
fly, small ONNX models that compute a known function of their input (so tests can predict their output; the real
default models come from flairqc-train), process inspection for the fault tests, report rows shaped like the
pipeline's, an HTML parser for the self-containment and escaping checks, and headless Chromium.

Import them as `from helpers import ...` (pytest puts tests/ on sys.path; benchmarks and tools add it).
"""

from __future__ import annotations

import base64
import io
import json
import random
import shutil
import subprocess
import sys
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from flairqc_app.config import ARTEFACTS, FLAIR_TEMPLATE, TASKS
from flairqc_app.grade import tier_from_grades
from flairqc_app.iqm.definitions import IQMS
from flairqc_app.manifest import SUPPORTED_FORMAT, new_entry, write_manifest
from flairqc_app.schema import COLUMN_NAMES

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata-dev"


def write_nifti(
    path: Path, data: np.ndarray, zooms=(1.0, 1.0, 1.0), affine: np.ndarray | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if affine is None:
        affine = np.diag([*zooms, 1.0])
        affine[:3, 3] = -np.array(data.shape[:3]) * np.array(zooms) / 2
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def template_head(shift_mm=(0.0, 0.0, 0.0)) -> nib.Nifti1Image:
    """The shipped FLAIR template as a quick synthetic 'head' (brain only), optionally shifted."""
    img = nib.load(str(FLAIR_TEMPLATE))
    affine = img.affine.copy()
    affine[:3, 3] += np.asarray(shift_mm)
    data = np.asarray(img.dataobj, dtype=np.float32)
    # int16 like scanners, no wrap
    return nib.Nifti1Image((data * (1000 / data.max())).astype(np.int16), affine)


def make_dataset(
    root: Path, images: dict[str, nib.Nifti1Image | np.ndarray], sidecars: dict[str, dict] | None = None
) -> Path:
    """A BIDS dataset with the given images (relative path -> image or array at 1 mm)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "test", "BIDSVersion": "1.10.0"}))
    (root / "README").write_text("test dataset\n")
    subjects = sorted({rel.split("/")[0] for rel in images})
    (root / "participants.tsv").write_text("participant_id\n" + "\n".join(subjects) + "\n")
    for rel, image in images.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(image, np.ndarray):
            write_nifti(path, image)
        else:
            nib.save(image, str(path))
    for rel, payload in (sidecars or {}).items():
        (root / rel).write_text(json.dumps(payload))
    return root


def _affine_model(weight: float, bias: float, input_shape: list[int]):
    """logits = [0, weight * mean(image) + bias]: P(positive) = sigmoid(weight * mean + bias)."""
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, *input_shape[2:]])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3, 4], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "axis1"], ["mean2"]),
        helper.make_node("Mul", ["mean2", "w"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["positive"]),
        helper.make_node("Mul", ["positive", "zero"], ["negative"]),
        helper.make_node("Concat", ["negative", "positive"], ["logits"], axis=1),
    ]
    inits = [
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("w", TensorProto.FLOAT, [], [weight]),
        helper.make_tensor("b", TensorProto.FLOAT, [], [bias]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    graph = helper.make_graph(nodes, "mean_logit", [image], [logits], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


CONSOLE_SCRIPT = ("flairqc",)
IN_TREE = (sys.executable, "-m", "flairqc_app")  # the flairqc_app on PYTHONPATH (a benchmark's other tree)


def participant_command(
    bids: Path,
    out: Path,
    models: Path,
    *extra: str,
    launcher: tuple[str, ...] = CONSOLE_SCRIPT,
    validate: bool = False,
) -> list[str]:
    """The argv of `flairqc BIDS OUT participant --models-dir MODELS ...`, BIDS validation skipped unless
    `validate`: what the tests and benchmarks that run the app as a process start."""
    skip = () if validate else ("--skip-bids-validation",)
    return [*launcher, str(bids), str(out), "participant", "--models-dir", str(models), *skip, *extra]


def build_models_dir(
    directory: Path,
    biases: dict[str, float] | None = None,
    weight: float = 0.0,
    input_shape=(1, 1, 85, 104, 90),
    thresholds: dict[str, float] | None = None,
) -> Path:
    """A complete models directory; task probabilities are sigmoid(weight * mean + bias[task])."""
    import onnx

    directory.mkdir(parents=True, exist_ok=True)
    entries = {}
    for task in TASKS:
        path = directory / f"{task}.onnx"
        onnx.save(_affine_model(weight, (biases or {}).get(task, -4.0), list(input_shape)), str(path))
        entries[task] = new_entry(
            path,
            "0.0.1-test",
            "image",
            "logits",
            list(input_shape),
            (thresholds or {}).get(task, 0.5),
            {"trained_by": "tests/helpers.py (not a trained model)"},
        )
    write_manifest(
        directory,
        {"format_version": SUPPORTED_FORMAT, "name": "test-models", "version": "0", "models": entries},
    )
    return directory


def sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def process_tree(pid: int) -> list[int]:
    """`pid` then its descendants, from /proc (no psutil needed)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop(0))
        todo += parents.get(found[-1], [])
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def write_claimed_grid(path: Path, shape: tuple[int, int, int], full: bool = False) -> Path:
    """A uint8 .nii.gz whose header claims `shape`; with `full`, its zero voxels too (4.6 MB for 1024^3), else the
    header alone (the data are missing: nibabel finds it truncated when it reads them)."""
    import gzip

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.uint8)
    header.set_qform(np.eye(4), code=1)
    header.set_sform(np.eye(4), code=1)
    header["vox_offset"] = 352
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(header.binaryblock + b"\0" * 4)
        if full:
            plane = bytes(shape[0] * shape[1])
            for _ in range(shape[2]):
                handle.write(plane)
    return path


# ---------------------------------------------------------------- reports
MALICIOUS = "</script><script>alert(1)</script><!--"
MANUFACTURERS = ("Siemens", "GE MEDICAL SYSTEMS", "Philips Medical Systems", MALICIOUS)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def make_row(**values: object) -> dict:
    """A complete row (every schema column, n/a by default) with the given values."""
    unknown = set(values) - set(COLUMN_NAMES)
    assert not unknown, f"not schema columns: {unknown}"
    return {name: values.get(name) for name in COLUMN_NAMES}


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
            grades = {a: rng.choice((0, 0, 0, 1, 1, 2)) for a in ARTEFACTS}
            reject = int(rng.random() < 0.05)
            values.update(
                grades,
                straight_reject=reject,
                tier=None if reject else tier_from_grades(grades),
                reject_source="model" if reject else None,
                registration_ncc=rng.uniform(0.4, 0.95),
                **{f"p_{t}": rng.random() for t in TASKS},
            )
            if iqms:
                values.update({iqm.column: iqm_rng.uniform(0.05, 20.0) for iqm in IQMS})
        elif status == "skipped":
            values.update(
                straight_reject=1, reject_source="gate", reason="thick_slices", reason_detail="2D acquisition"
            )
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


def assert_self_contained(page: Page) -> None:
    assert not [t for t, _ in page.tags if t in ("link", "iframe", "object", "embed")]
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http:", "https:", "//", "file:")), (tag, value)
        assert not (tag == "script" and "src" in attrs), "scripts must be inline"
    csp = [
        a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp and "default-src 'none'" in csp[0]


def browser() -> str | None:
    """The first headless-capable Chromium on PATH (Debian's), or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def dump_dom(page: Path, fragment: str = "") -> str:
    """The DOM of a page after its scripts ran, as headless chromium serialises it."""
    command = [
        browser(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.resolve().as_uri() + fragment,
    ]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    except subprocess.TimeoutExpired as error:  # a modal dialog, e.g. an injected alert(), stalls the page
        raise AssertionError(f"chromium did not finish rendering {page.name}{fragment}") from error


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1366,900",
)


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
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
        )
    return driver


def rating_ready(driver) -> None:
    """Wait until the page has read the ratings: it does so only once its storage has settled (rating.js)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.body.dataset.ratingReady") == "1"
    )


def open_page(driver, path: Path) -> None:
    """Open a report page and wait until it has read the ratings."""
    driver.get(path.as_uri())
    rating_ready(driver)


@contextmanager
def new_page(driver):
    """Wait until what the block does has replaced the page and the new one has read the ratings: the URL
    changes before the old document goes, and keys sent in between would still reach the old page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    yield
    WebDriverWait(driver, 10).until(staleness_of(old))
    rating_ready(driver)


def requested_urls(driver) -> list[str]:
    """URLs the page asked the network for, from the performance log (Network.requestWillBeSent)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
