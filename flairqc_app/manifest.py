"""The one home of `models.json` (docs/models-manifest.md): its spec, its validation, thresholds and hashes.

The BIDS-App reads it (`read_manifest`, then infer.py runs the models), flairqc-train writes it
(`new_entry`, `read_or_new_manifest`, `write_manifest`): both sides share this module, not a set of
constants. Hashes are checked at load time, so a corrupted or swapped model is an error naming the file,
never a silent wrong verdict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flairqc_app import atomic
from flairqc_app.config import TASKS, TEMPLATE_SPACE
from flairqc_app.exceptions import ModelError

MANIFEST_NAME = "models.json"
SUPPORTED_FORMAT = 1
NORMALISATION = "clip_p2_p98_minmax"
REQUIRED_FIELDS = (
    "file",
    "sha256",
    "version",
    "input_name",
    "output_name",
    "output_type",
    "input_shape",
    "normalisation",
    "threshold",
)


@dataclass(frozen=True)
class ModelSpec:
    task: str
    path: Path
    sha256: str
    version: str
    input_name: str
    output_name: str
    output_type: str  # logits | probabilities
    input_shape: tuple[int, ...]
    threshold: float
    positive_index: int = 1
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return tuple(self.input_shape[2:])  # type: ignore[return-value]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(models_dir: Path) -> tuple[dict[str, Any], dict[str, ModelSpec]]:
    """Parse and check models.json; every task must be present and every file must match its hash."""
    manifest_path = Path(models_dir) / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelError(f"{manifest_path}: no models manifest (see docs/models-manifest.md)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{manifest_path}: not valid JSON ({exc})") from exc
    if manifest.get("format_version") != SUPPORTED_FORMAT:
        raise ModelError(
            f"{manifest_path}: format_version {manifest.get('format_version')!r}, expected {SUPPORTED_FORMAT}"
        )
    entries = manifest.get("models") or {}
    missing = [t for t in TASKS if t not in entries]
    if missing:
        raise ModelError(f"{manifest_path}: no entry for task(s) {', '.join(missing)}")
    specs = {task: parse_entry(manifest_path, task, entries[task]) for task in TASKS}
    return manifest, specs


def parse_entry(manifest_path: Path, task: str, entry: dict[str, Any]) -> ModelSpec:
    where = f"{manifest_path} [{task}]"
    absent = [k for k in REQUIRED_FIELDS if k not in entry]
    if absent:
        raise ModelError(f"{where}: missing field(s) {', '.join(absent)}")
    if entry["normalisation"] != NORMALISATION:
        raise ModelError(
            f"{where}: normalisation {entry['normalisation']!r} unsupported (only {NORMALISATION})"
        )
    if entry["output_type"] not in ("logits", "probabilities"):
        raise ModelError(f"{where}: output_type must be 'logits' or 'probabilities'")
    if entry.get("space", TEMPLATE_SPACE) != TEMPLATE_SPACE:
        raise ModelError(f"{where}: space {entry['space']!r}, flairqc preprocesses into {TEMPLATE_SPACE}")
    shape = tuple(int(n) for n in entry["input_shape"])
    if len(shape) != 5 or shape[1] != 1:
        raise ModelError(f"{where}: input_shape {list(shape)} must be [N, 1, X, Y, Z]")
    path = (manifest_path.parent / entry["file"]).resolve()
    if not path.is_file():
        raise ModelError(f"{where}: model file {path} not found")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise ModelError(
            f"{where}: {path.name} sha256 is {actual}, the manifest says {entry['sha256']}: "
            "the file is corrupted or not the model the manifest describes"
        )
    return ModelSpec(
        task=task,
        path=path,
        sha256=actual,
        version=str(entry["version"]),
        input_name=entry["input_name"],
        output_name=entry["output_name"],
        output_type=entry["output_type"],
        input_shape=shape,
        threshold=check_threshold(where, entry["threshold"]),
        positive_index=int(entry.get("positive_index", 1)),
        provenance=entry.get("provenance", {}),
    )


def check_threshold(where: str, value: Any) -> float:
    """A decision threshold: a number in [0, 1] (a bool is not one).

    >>> check_threshold("t", 1)
    1.0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ModelError(f"{where}: threshold {value!r} must be a number in [0, 1]")
    return float(value)


def read_thresholds(path: Path) -> dict[str, float]:
    """`--thresholds FILE.json`: {task: threshold} overriding the manifest."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read thresholds file {path}: {exc}") from exc
    if not isinstance(payload, dict):
        raise ModelError(f"{path}: expected a JSON object {{task: threshold}}")
    unknown = sorted(set(payload) - set(TASKS))
    if unknown:
        raise ModelError(f"{path}: unknown task(s) {', '.join(unknown)}; tasks are {', '.join(TASKS)}")
    return {task: check_threshold(f"{path} [{task}]", value) for task, value in payload.items()}


def new_entry(
    onnx_path: Path,
    version: str,
    input_name: str,
    output_name: str,
    input_shape: list[int],
    threshold: float,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The entry of an exported logits model, in the field order of docs/models-manifest.md."""
    return {
        "file": onnx_path.name,
        "sha256": sha256_of(onnx_path),
        "version": version,
        "input_name": input_name,
        "output_name": output_name,
        "output_type": "logits",
        "positive_index": 1,
        "input_shape": input_shape,
        "normalisation": NORMALISATION,
        "space": TEMPLATE_SPACE,
        "threshold": threshold,
        "provenance": provenance,
    }


def read_or_new_manifest(
    models_dir: Path, name: str, version: str | None, description: str
) -> dict[str, Any]:
    """The set's manifest, or a new one (version 1.0.0 unless given). A version given for an existing manifest
    replaces its own: a set whose models are replaced one by one is a new version of the set."""
    path = models_dir / MANIFEST_NAME
    if path.is_file():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format_version") != SUPPORTED_FORMAT:
            raise ValueError(
                f"{path}: format_version {manifest.get('format_version')}, expected {SUPPORTED_FORMAT}"
            )
        return manifest | ({"version": version} if version else {})
    return {
        "format_version": SUPPORTED_FORMAT,
        "name": name,
        "version": version or "1.0.0",
        "description": description,
        "models": {},
    }


def write_manifest(models_dir: Path, manifest: dict[str, Any]) -> None:
    """Replace the directory's models.json atomically: a reader never sees half a manifest."""
    atomic.write_json(Path(models_dir) / MANIFEST_NAME, manifest)
