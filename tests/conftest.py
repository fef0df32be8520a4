"""Shared fixtures: tiny BIDS datasets written on the fly and small ONNX models built by the tests.

Nothing here is shipped: the models compute a known function of the input so tests can predict their
output; the real default models come from flairqc-train.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from flairqc_app.config import FLAIR_TEMPLATE, TASKS

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata-dev"


def write_nifti(path: Path, data: np.ndarray, zooms=(1.0, 1.0, 1.0), affine: np.ndarray | None = None) -> Path:
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
    return nib.Nifti1Image((data * (1000 / data.max())).astype(np.int16), affine)  # int16 like scanners, no wrap


def make_dataset(root: Path, images: dict[str, nib.Nifti1Image | np.ndarray],
                 sidecars: dict[str, dict] | None = None) -> Path:
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


def build_models_dir(directory: Path, biases: dict[str, float] | None = None, weight: float = 0.0,
                     input_shape=(1, 1, 85, 104, 90), thresholds: dict[str, float] | None = None) -> Path:
    """A complete models directory; task probabilities are sigmoid(weight * mean + bias[task])."""
    import onnx

    directory.mkdir(parents=True, exist_ok=True)
    entries = {}
    for task in TASKS:
        path = directory / f"{task}.onnx"
        onnx.save(_affine_model(weight, (biases or {}).get(task, -4.0), list(input_shape)), str(path))
        entries[task] = {
            "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "version": "0.0.1-test",
            "input_name": "image", "output_name": "logits", "output_type": "logits", "positive_index": 1,
            "input_shape": list(input_shape), "normalisation": "clip_p2_p98_minmax",
            "space": "MNI152NLin2009aSym", "threshold": (thresholds or {}).get(task, 0.5),
            "provenance": {"trained_by": "tests/conftest.py (not a trained model)"},
        }
    manifest = {"format_version": 1, "name": "test-models", "version": "0", "models": entries}
    (directory / "models.json").write_text(json.dumps(manifest, indent=1))
    return directory


def sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return build_models_dir(tmp_path / "models")


@pytest.fixture(scope="session")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium binary on PATH (apt-get install chromium)")


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
