"""Export a run's selected F + C_T, or an ensemble of trained folds (train/ensemble.py), to ONNX and add its
entry to a models directory's models.json (docs/models-manifest.md), so that `flairqc --models-dir DIR` uses it
with no other step.

The ONNX graph is checked against torch on real cached inputs (validation and test volumes) with a batch
larger than one, which also proves the dynamic batch axis; the max absolute difference is stored in the
provenance and the export fails above `tolerance`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from flairqc_app.config import TASKS
from flairqc_app.manifest import new_entry, read_or_new_manifest, write_manifest
from flairqc_app.train.ensemble import load_trained

log = logging.getLogger(__name__)
INPUT_NAME, OUTPUT_NAME = "image", "logits"
OPSET = 17


def to_onnx(model: torch.nn.Module, example: np.ndarray, path: Path) -> None:
    """TorchScript-based export (no onnxscript dependency) with a dynamic batch axis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.9 prefers the dynamo exporter
        torch.onnx.export(
            model,
            (torch.from_numpy(example[:1]),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamo=False,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )


@torch.no_grad()
def onnx_max_abs_difference(model: torch.nn.Module, path: Path, inputs: np.ndarray) -> float:
    """Max |ONNX - torch| of the logits over a batch of real inputs, on CPU."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0]
    torch_out = model(torch.from_numpy(inputs)).numpy()
    if onnx_out.shape != torch_out.shape:
        raise RuntimeError(f"ONNX output shape {onnx_out.shape} != torch {torch_out.shape}")
    return float(np.max(np.abs(onnx_out - torch_out)))


def selection_provenance(record: dict[str, Any]) -> dict[str, Any]:
    """What made the model: a run's selected fold and epoch, or an ensemble's members."""
    if "members" in record:
        return {
            "ensemble": {
                "combine": record["combine"],
                "members": record["members"],
                "validation": record["validation"],
            },
            "settings": record["settings"],
        }
    return {
        "selected_fold": record["fold"],
        "selected_epoch": record["epoch"],
        "settings": record["settings"],
    }


def fold_metrics(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each trained fold's best validation figures (a run; an ensemble's members are in its provenance)."""
    return [
        {k: f[k] for k in ("fold", "best_val_loss", "best_epoch", "best_val_ba")}
        for f in record.get("folds", ())
    ]


def export_run(
    run_dir: Path,
    models_dir: Path,
    model_version: str = "1.0.0",
    check_inputs: int = 4,
    tolerance: float = 1e-4,
    metrics: dict[str, Any] | None = None,
    name: str = "flairqc-site",
    version: str | None = None,
    description: str = "trained with flairqc-train",
) -> dict[str, Any]:
    """Write <task>.onnx of a run (or an ensemble directory) into models_dir and merge its entry into
    models.json; returns the entry."""
    models_dir = Path(models_dir)
    trained = load_trained(run_dir, torch.device("cpu"))
    task, record, model = trained.task, trained.record, trained.model
    if task not in TASKS:
        raise ValueError(
            f"task {task!r} is not a BIDS-App task ({', '.join(TASKS)}); it is evaluated, not exported"
        )
    keys = (trained.validation.keys + trained.test.keys)[: max(2, check_inputs)]
    if len(keys) < 2:
        raise ValueError("export needs at least 2 cached target volumes to check the ONNX graph")
    inputs = trained.cache.batch(list(keys))
    onnx_path = models_dir / f"{task}.onnx"
    to_onnx(model, inputs, onnx_path)
    difference = onnx_max_abs_difference(model, onnx_path, inputs)
    log.info("%s: ONNX vs torch max |difference| %.3g on %d inputs", task, difference, len(keys))
    if difference > tolerance:
        onnx_path.unlink()
        raise RuntimeError(f"{task}: ONNX differs from torch by {difference:.3g} > {tolerance}")
    provenance = {
        "trained_by": "flairqc-train",
        "method": record["method"],
        "code_version": record["code_version"],
        "created": record["created"],
        "data_sha256": record["data_sha256"],
        "preprocessing_recipe": record["cache_recipe"],
        **selection_provenance(record),
        "metrics": {
            "validation_loss": record["val_loss"],
            "validation_ba": record["val_ba_at_threshold"],
            "folds": fold_metrics(record),
            **({"test": metrics} if metrics else {}),
        },
        "onnx_check": {"inputs": len(keys), "max_abs_difference": difference, "opset": OPSET},
    }
    entry = new_entry(
        onnx_path,
        model_version,
        INPUT_NAME,
        OUTPUT_NAME,
        [1, 1, *trained.cache.shape],
        float(record["threshold"]),
        provenance,
    )
    manifest = read_or_new_manifest(models_dir, name, version, description)
    manifest["models"][task] = entry
    write_manifest(models_dir, manifest)
    return entry
