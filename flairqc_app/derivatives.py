"""Where flairqc writes what in the output directory (BIDS derivatives), and the dataset-level files.

Per-image file names are the source name with a `desc-flairqc` entity, never a name valid for raw data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flairqc_app import __version__, atomic
from flairqc_app.config import CODE_URL, TEMPLATE_SPACE
from flairqc_app.discover import FlairImage

BIDS_VERSION = "1.10.0"
BIDSIGNORE = [
    "*.html",
    "logs/",
    "figures",
    "group_*",
    "*_desc-flairqc_FLAIR.tsv",
    "*_desc-flairqc_FLAIR.json",
    "*_xfm.mat",
    "*_desc-iqms_FLAIR.json",
]
LOGS = "logs"
GROUP_STEM = "group_FLAIR"


def _stem_without_suffix(image: FlairImage) -> str:
    return image.bids_name[: -len("_FLAIR")]


def image_dir(output_dir: Path, image: FlairImage) -> Path:
    """sub-X[/ses-Y]/anat under the output directory, mirroring the source layout."""
    return output_dir / Path(image.relpath).parent


def qc_table(output_dir: Path, image: FlairImage) -> Path:
    return image_dir(output_dir, image) / f"{_stem_without_suffix(image)}_desc-flairqc_FLAIR.tsv"


def transform_file(output_dir: Path, image: FlairImage) -> Path:
    return (
        image_dir(output_dir, image)
        / f"{_stem_without_suffix(image)}_from-FLAIR_to-{TEMPLATE_SPACE}_mode-image_xfm.mat"
    )


def iqm_json(output_dir: Path, image: FlairImage) -> Path:
    """The image's IQMs in MRIQC's JSON layout (--iqm-json)."""
    return image_dir(output_dir, image) / f"{_stem_without_suffix(image)}_desc-iqms_FLAIR.json"


def preproc_image(output_dir: Path, image: FlairImage) -> Path:
    return (
        image_dir(output_dir, image)
        / f"{_stem_without_suffix(image)}_space-{TEMPLATE_SPACE}_desc-preproc_FLAIR.nii.gz"
    )


def report_file(output_dir: Path, bids_name: str) -> Path:
    return output_dir / f"{bids_name}.html"


def crash_file(output_dir: Path, bids_name: str) -> Path:
    return output_dir / LOGS / f"crash-{bids_name}.txt"


def container_info() -> dict[str, str] | None:
    """Set by the Dockerfile / Singularity.def (FLAIRQC_CONTAINER_TYPE, FLAIRQC_CONTAINER_TAG)."""
    kind = os.environ.get("FLAIRQC_CONTAINER_TYPE")
    if not kind:
        return None
    return {"Type": kind, "Tag": os.environ.get("FLAIRQC_CONTAINER_TAG", f"flairqc:{__version__}")}


def dataset_description(bids_dir: Path) -> dict:
    generated = {
        "Name": "flairqc",
        "Version": __version__,
        "CodeURL": CODE_URL,
        "Description": "Automatic quality control of 3D FLAIR (Loizillon et al. 2025)",
    }
    container = container_info()
    if container:
        generated["Container"] = container
    description = {
        "Name": "flairqc quality control",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [{"URL": Path(bids_dir).resolve().as_uri()}],
    }
    source = source_description(bids_dir)
    if source.get("DatasetDOI"):
        description["SourceDatasets"][0]["DOI"] = source["DatasetDOI"]
    return description


def source_description(bids_dir: Path) -> dict:
    try:
        return json.loads((Path(bids_dir) / "dataset_description.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def prepare_output_dir(output_dir: Path, bids_dir: Path) -> None:
    """Dataset-level files, rewritten atomically each run (parallel jobs write the same content)."""
    (output_dir / LOGS).mkdir(parents=True, exist_ok=True)
    atomic.write_json(output_dir / "dataset_description.json", dataset_description(bids_dir))
    atomic.write_text(output_dir / ".bidsignore", "\n".join(BIDSIGNORE) + "\n")
