"""models.json manifest checks, hash verification, threshold overrides and ONNX inference."""

import json

import numpy as np
import pytest
from helpers import build_models_dir, sigmoid

from flairqc_app.config import GRID_SHAPE, TASKS
from flairqc_app.exceptions import ModelError
from flairqc_app.infer import load_models, select_providers
from flairqc_app.manifest import read_thresholds


def manifest(directory):
    return json.loads((directory / "models.json").read_text())


def rewrite(directory, payload):
    (directory / "models.json").write_text(json.dumps(payload))


def test_probabilities_are_the_models_outputs(tmp_path):
    biases = {t: b for t, b in zip(TASKS, (-3.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0))}
    models = load_models(build_models_dir(tmp_path, biases=biases, weight=2.0))
    volume = np.full(GRID_SHAPE, 0.25, np.float32)
    got = models.predict(volume)
    for task in TASKS:  # sigmoid(2 * mean + bias), mean preserved by the resize to the model's grid
        assert got[task] == pytest.approx(sigmoid(2.0 * 0.25 + biases[task]), abs=1e-5)
    assert models.provider == "CPUExecutionProvider"
    assert models.hashes.count("=") == len(TASKS)


def test_full_grid_models_need_no_resize(tmp_path):
    models = load_models(build_models_dir(tmp_path, weight=4.0, input_shape=(1, 1, *GRID_SHAPE)))
    volume = np.zeros(GRID_SHAPE, np.float32)
    volume[:84] = 1.0  # mean 84/169
    assert models.predict(volume)["straight_reject"] == pytest.approx(sigmoid(4.0 * 84 / 169 - 4.0), abs=1e-5)


def test_wrong_hash_is_an_error_naming_the_file(tmp_path):
    directory = build_models_dir(tmp_path)
    (directory / "noise_severe.onnx").write_bytes((directory / "noise_severe.onnx").read_bytes() + b"\0")
    with pytest.raises(ModelError, match="noise_severe.onnx sha256"):
        load_models(directory)


def test_missing_task_and_missing_file(tmp_path):
    directory = build_models_dir(tmp_path)
    payload = manifest(directory)
    del payload["models"]["contrast_severe"]
    rewrite(directory, payload)
    with pytest.raises(ModelError, match="no entry for task.*contrast_severe"):
        load_models(directory)
    directory = build_models_dir(tmp_path / "b")
    (directory / "motion_moderate.onnx").unlink()
    with pytest.raises(ModelError, match="motion_moderate.onnx not found"):
        load_models(directory)


def test_no_manifest_and_bad_fields(tmp_path):
    with pytest.raises(ModelError, match="no models manifest"):
        load_models(tmp_path)
    directory = build_models_dir(tmp_path / "m")
    original = manifest(directory)
    for field, value, message in [
        ("threshold", 1.5, "threshold"),
        ("normalisation", "zscore", "normalisation"),
        ("input_shape", [1, 3, 10, 10, 10], "input_shape"),
        ("output_name", "nope", "output 'nope'"),
    ]:
        payload = json.loads(json.dumps(original))
        payload["models"]["straight_reject"][field] = value
        rewrite(directory, payload)
        with pytest.raises(ModelError, match=message):
            load_models(directory)


def test_threshold_file_overrides_and_rejects_unknown_tasks(tmp_path):
    directory = build_models_dir(tmp_path / "m")
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"motion_moderate": 0.3}))
    models = load_models(directory, threshold_overrides=read_thresholds(path))
    assert models.thresholds["motion_moderate"] == 0.3 and models.thresholds["noise_severe"] == 0.5
    path.write_text(json.dumps({"motion": 0.3}))
    with pytest.raises(ModelError, match="unknown task"):
        read_thresholds(path)


def test_device_choice(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert select_providers("auto") == ["CPUExecutionProvider"]
    with pytest.raises(ModelError, match="no CUDA provider"):
        select_providers("cuda")
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert select_providers("auto")[0] == "CUDAExecutionProvider"
    assert select_providers("cpu") == ["CPUExecutionProvider"]
