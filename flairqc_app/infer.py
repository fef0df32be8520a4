"""Load the ONNX models named by a `models.json` manifest and run them on a preprocessed volume.

The manifest format is documented in docs/models-manifest.md. Hashes are checked at load time, so a
corrupted or swapped model is an error naming the file, never a silent wrong verdict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from flairqc_app.config import GRID_SHAPE, TASKS, TEMPLATE_SPACE
from flairqc_app.exceptions import ModelError
from flairqc_app.resample import resize_to

MANIFEST_NAME = "models.json"
SUPPORTED_FORMAT = 1
NORMALISATION = "clip_p2_p98_minmax"
REQUIRED_FIELDS = ("file", "sha256", "version", "input_name", "output_name", "output_type",
                   "input_shape", "normalisation", "threshold")


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
        raise ModelError(f"{manifest_path}: format_version {manifest.get('format_version')!r}, expected {SUPPORTED_FORMAT}")
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
        raise ModelError(f"{where}: normalisation {entry['normalisation']!r} unsupported (only {NORMALISATION})")
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
        raise ModelError(f"{where}: {path.name} sha256 is {actual}, the manifest says {entry['sha256']}: "
                         "the file is corrupted or not the model the manifest describes")
    return ModelSpec(task=task, path=path, sha256=actual, version=str(entry["version"]),
                     input_name=entry["input_name"], output_name=entry["output_name"],
                     output_type=entry["output_type"], input_shape=shape,
                     threshold=check_threshold(where, entry["threshold"]),
                     positive_index=int(entry.get("positive_index", 1)), provenance=entry.get("provenance", {}))


def check_threshold(where: str, value: Any) -> float:
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


def select_providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise ModelError("--device cuda: onnxruntime has no CUDA provider here "
                         f"(available: {', '.join(available)}); install onnxruntime-gpu or use --device auto")
    return ["CPUExecutionProvider"]


class ModelSet:
    """The seven task models, loaded once per process and run one image at a time."""

    def __init__(self, models_dir: Path, device: str = "auto", threads: int = 1,
                 threshold_overrides: dict[str, float] | None = None):
        self.directory = Path(models_dir)
        self.manifest, self.specs = read_manifest(self.directory)
        self.thresholds = {t: s.threshold for t, s in self.specs.items()} | dict(threshold_overrides or {})
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.use_deterministic_compute = True
        # idle pool threads would spin between the seven small runs, stealing the CPU from the next image's N4
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = select_providers(device)
        try:
            self.sessions = {t: ort.InferenceSession(str(s.path), options, providers=providers)
                             for t, s in self.specs.items()}
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load an ONNX model from {self.directory}: {exc}") from exc
        self.provider = self.sessions[TASKS[0]].get_providers()[0]
        for task, session in self.sessions.items():
            check_io(self.specs[task], session)

    @property
    def hashes(self) -> str:
        return ";".join(f"{t}={self.specs[t].sha256[:16]}" for t in TASKS)

    def predict(self, volume: np.ndarray) -> dict[str, float]:
        """Positive-class probability per task for one volume on the preprocessing grid."""
        if volume.shape != GRID_SHAPE:
            raise ValueError(f"volume shape {volume.shape} is not the preprocessing grid {GRID_SHAPE}")
        inputs: dict[tuple[int, ...], np.ndarray] = {}
        probabilities = {}
        for task in TASKS:
            shape = self.specs[task].spatial_shape
            if shape not in inputs:
                inputs[shape] = volume if shape == GRID_SHAPE else resize_to(volume, shape)
            probabilities[task] = self.probability(task, inputs[shape])
        return probabilities

    def probability(self, task: str, model_input: np.ndarray) -> float:
        """Positive-class probability of one task for a volume already on that model's input grid."""
        spec = self.specs[task]
        batch = np.asarray(model_input, dtype=np.float32)[np.newaxis, np.newaxis]
        output = self.sessions[task].run([spec.output_name], {spec.input_name: batch})[0]
        return positive_probability(spec, np.asarray(output, dtype=np.float64))


def check_io(spec: ModelSpec, session: ort.InferenceSession) -> None:
    inputs = {i.name for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if spec.input_name not in inputs or spec.output_name not in outputs:
        raise ModelError(f"{spec.path.name}: the manifest names input {spec.input_name!r} and output "
                         f"{spec.output_name!r}, the model has inputs {sorted(inputs)} and outputs {sorted(outputs)}")


def positive_probability(spec: ModelSpec, output: np.ndarray) -> float:
    row = output.reshape(output.shape[0], -1)[0]
    if spec.output_type == "logits":
        shifted = np.exp(row - row.max())
        return float(shifted[spec.positive_index] / shifted.sum())
    return float(row[0] if row.size == 1 else row[spec.positive_index])


def load_models(models_dir: Path, device: str = "auto", threads: int = 1,
                threshold_overrides: dict[str, float] | None = None) -> ModelSet:
    return ModelSet(models_dir, device, threads, threshold_overrides)
