"""Load the ONNX models named by a `models.json` manifest (read and checked by manifest.py) and run them on a
preprocessed volume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from flairqc_app.config import GRID_SHAPE, TASKS
from flairqc_app.exceptions import ModelError
from flairqc_app.grid import resize_to
from flairqc_app.manifest import ModelSpec, read_manifest


def select_providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise ModelError(
            "--device cuda: onnxruntime has no CUDA provider here "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use --device auto"
        )
    return ["CPUExecutionProvider"]


class ModelSet:
    """The seven task models, loaded once per process and run one image at a time."""

    def __init__(
        self,
        models_dir: Path,
        device: str = "auto",
        threads: int = 1,
        threshold_overrides: dict[str, float] | None = None,
    ):
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
            self.sessions = {
                t: ort.InferenceSession(str(s.path), options, providers=providers)
                for t, s in self.specs.items()
            }
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
        raise ModelError(
            f"{spec.path.name}: the manifest names input {spec.input_name!r} and output "
            f"{spec.output_name!r}, the model has inputs {sorted(inputs)} and outputs {sorted(outputs)}"
        )


def positive_probability(spec: ModelSpec, output: np.ndarray) -> float:
    row = output.reshape(output.shape[0], -1)[0]
    if spec.output_type == "logits":
        shifted = np.exp(row - row.max())
        return float(shifted[spec.positive_index] / shifted.sum())
    return float(row[0] if row.size == 1 else row[spec.positive_index])


def load_models(
    models_dir: Path,
    device: str = "auto",
    threads: int = 1,
    threshold_overrides: dict[str, float] | None = None,
) -> ModelSet:
    return ModelSet(models_dir, device, threads, threshold_overrides)
