"""Participant level: for each FLAIR, gate -> preprocess -> infer -> grade -> write TSV, report, transform.

One bad image never stops the run: a stage raises ImageFailed, process_image catches it once, and the image's
row says `failed` (or `skipped`) with a reason, and a crash file goes to logs/ (image_result.write_result).
The per-image TSV is written last, atomically, so an image with a TSV is complete; a re-run skips images
whose TSV has the same run key (same input bytes, sidecar, models, thresholds, settings and version)
unless it failed, and --force redoes everything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib

from flairqc_app import __version__, atomic, derivatives, memory, tsv
from flairqc_app.config import FLAIR_TEMPLATE, INFERENCE_THREADS, SIDECAR_FIELDS, RunSettings
from flairqc_app.discover import FlairImage
from flairqc_app.exceptions import ImageFailed
from flairqc_app.gate import check_image, describe_limits
from flairqc_app.grade import decide
from flairqc_app.grid import grid_affine
from flairqc_app.image_result import ImageResult, Outcome, write_result
from flairqc_app.infer import ModelSet, load_models
from flairqc_app.manifest import sha256_of
from flairqc_app.schema import SIDECAR_COLUMNS
from flairqc_app.workers import run_in_workers

if TYPE_CHECKING:
    from flairqc_app.preprocess import PreprocResult

log = logging.getLogger("flairqc")


def run_participants(
    images: list[FlairImage], settings: RunSettings, on_done: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """Process every image in worker processes (workers.py): a worker that dies fails only its own image;
    `on_done` hears of each image as it ends."""
    derivatives.prepare_output_dir(settings.output_dir, settings.bids_dir)
    # fail early, in the parent, which also writes the rows of images whose worker died
    models = load_models(settings.models_dir, settings.device, 1, settings.threshold_overrides)
    return run_in_workers(
        images,
        min(settings.nprocs, len(images)),
        partial(_process_in_worker, settings=settings),
        partial(worker_died, settings=settings, models=models),
        _init_worker,
        (settings,),
        on_done,
    )


_WORKER_MODELS: ModelSet | None = None


def _init_worker(settings: RunSettings) -> None:
    global _WORKER_MODELS
    _WORKER_MODELS = load_models(
        settings.models_dir, settings.device, INFERENCE_THREADS, settings.threshold_overrides
    )


def _process_in_worker(image: FlairImage, settings: RunSettings) -> Outcome:
    """process_image, then its outputs; one that cannot be written (a full disk) stops the run with a message
    naming the image and the file."""
    assert _WORKER_MODELS is not None
    try:
        return write_result(process_image(image, settings, _WORKER_MODELS), settings.output_dir)
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot write the outputs of {image.bids_name}: {exc.strerror or exc}", exc.filename
        ) from exc


def worker_died(image: FlairImage, how: str, settings: RunSettings, models: ModelSet) -> Outcome:
    """The row of an image whose worker process ended without answering (kill -9, the out-of-memory killer)."""
    result = ImageResult(image, base_row(image, models, settings), time.perf_counter())
    result.stop(ImageFailed("worker_died", f"the worker process processing {image.relpath} {how}"))
    return write_result(result, settings.output_dir)


def run_key(input_sha256: str, image: FlairImage, models: ModelSet, settings: RunSettings) -> str:
    payload = {
        "input": input_sha256,
        "sidecar": image.metadata,
        "models": models.hashes,
        "thresholds": models.thresholds,
        "recipe": asdict(settings.recipe),
        "gate": asdict(settings.gate_limits),
        "write_preproc": settings.write_preproc,
        "iqm_json": settings.write_iqm_json,
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def previous_row(path: Path) -> dict[str, Any] | None:
    try:
        rows = tsv.read_table(path)
    except (OSError, ValueError):
        return None
    return rows[0] if len(rows) == 1 else None


def base_row(image: FlairImage, models: ModelSet, settings: RunSettings) -> dict[str, Any]:
    row: dict[str, Any] = {
        "bids_name": image.bids_name,
        "source_file": image.relpath,
        **image.entity_columns(),
        "preproc_recipe": settings.recipe.name,
        "gate_limits": describe_limits(settings.gate_limits),
        "provider": models.provider,
        "model_hashes": models.hashes,
        "flairqc_version": __version__,
    }
    for key in SIDECAR_FIELDS:
        value = image.metadata.get(key)
        row[SIDECAR_COLUMNS[key]] = (
            value if isinstance(value, (int, float, str)) or value is None else json.dumps(value)
        )
    return row


def process_image(image: FlairImage, settings: RunSettings, models: ModelSet) -> ImageResult:
    """Run the stages on one image; the first that stops it (ImageFailed) leaves its reason in the result."""
    result = ImageResult(image, base_row(image, models, settings), time.perf_counter())
    try:
        run_stages(result, settings, models)
    except ImageFailed as failure:
        result.stop(failure)
    return result


def run_stages(result: ImageResult, settings: RunSettings, models: ModelSet) -> None:
    """checks -> reuse -> gate -> preprocess -> IQMs -> infer -> grade, filling `result` as they go."""
    image, row = result.image, result.row
    if image.bids_errors:
        raise ImageFailed("bids_invalid", "; ".join(image.bids_errors))
    try:
        row["input_sha256"] = sha256_of(image.path)
    except OSError as exc:
        raise ImageFailed("unreadable", f"cannot read {image.path}: {exc}") from exc
    if image.sidecar_error:
        raise ImageFailed("sidecar_invalid", image.sidecar_error)
    row["run_key"] = run_key(row["input_sha256"], image, models, settings)
    table = derivatives.qc_table(settings.output_dir, image)
    previous = previous_row(table) if table.exists() else None
    if (
        not settings.force
        and previous
        and previous.get("run_key") == row["run_key"]
        and previous.get("status") in ("ok", "skipped")
    ):
        log.debug(
            "%s: already done with the same inputs, models and version (run key %s), skipped",
            image.bids_name,
            row["run_key"][:8],
        )
        result.reused = previous
        return

    oversized = memory.too_large(image.path, settings.image_memory_bytes)
    if oversized:
        raise ImageFailed("too_large", oversized)
    original = gated_image(result, settings)
    from flairqc_app.preprocess import (
        preprocess_image,  # ANTs (250 MB) only for an image that passed the gate
    )

    work = Path(tempfile.mkdtemp(prefix=f"{image.bids_name}-", dir=settings.work_dir))
    try:
        try:
            prep = preprocess_image(original, FLAIR_TEMPLATE, settings.recipe, work)
        except Exception as exc:  # ANTs raises RuntimeError and others; all mean "this image failed"
            raise ImageFailed("preprocessing_error", describe(exc), traceback.format_exc()) from exc
        row["registration_ncc"] = round(prep.registration_ncc, 4)
        row.update(image_quality_metrics(image, original, prep))
        try:
            probabilities = models.predict(prep.volume)
        except Exception as exc:  # onnxruntime errors
            raise ImageFailed("inference_error", describe(exc), traceback.format_exc()) from exc
        verdict = decide(probabilities, models.thresholds)
        row.update({f"p_{task}": round(p, 6) for task, p in probabilities.items()})
        row.update(
            verdict.grades,
            straight_reject=verdict.straight_reject,
            tier=verdict.tier,
            reject_source="model" if verdict.straight_reject else None,
        )
        write_image_outputs(image, settings, prep, row)
        log.debug(
            "%s: stages %s",
            image.bids_name,
            ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in prep.timings.items()) or tsv.NA,
        )
        result.preprocessed, result.thresholds = prep.volume, models.thresholds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def gated_image(result: ImageResult, settings: RunSettings) -> nib.Nifti1Image:
    """The input gate's image; a skip is a straight reject by the gate, recorded in the row."""
    image = result.image
    gate = check_image(image.path, image.metadata, settings.gate_limits)
    result.row.update(gate.geometry)
    result.original = gate.image
    if gate.status == "skipped":
        log.debug("%s: straight reject by the input gate: %s (%s)", image.bids_name, gate.reason, gate.detail)
        result.row.update(straight_reject=1, reject_source="gate")
    if gate.status != "ok":
        assert gate.reason is not None and gate.detail is not None
        raise ImageFailed(gate.reason, gate.detail)
    assert gate.image is not None
    return gate.image


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:500]


def image_quality_metrics(image: FlairImage, img: nib.Nifti1Image, result: PreprocResult) -> dict[str, Any]:
    """The IQM columns; an unexpected failure of the whole computation leaves them n/a, never the image."""
    from flairqc_app.iqm.compute import compute_iqms, failed_row

    started = time.perf_counter()
    try:
        cells = compute_iqms(img, result.bias_field, result.transform, image.metadata).row()
    except Exception as exc:  # whatever breaks, the IQMs are n/a and the verdict stands
        log.warning("%s: image-quality metrics not computed: %s", image.bids_name, describe(exc))
        cells = failed_row(describe(exc))
    result.timings["iqms"] = round(time.perf_counter() - started, 3)
    return cells


def write_image_outputs(
    image: FlairImage, settings: RunSettings, result: PreprocResult, row: dict[str, Any]
) -> None:
    atomic.write_bytes(derivatives.transform_file(settings.output_dir, image), result.transform.read_bytes())
    if settings.write_iqm_json:
        from flairqc_app.iqm.export import md5_of, mriqc_json

        document = mriqc_json(row, image.metadata, md5_of(image.path))
        atomic.write_json(derivatives.iqm_json(settings.output_dir, image), document)
    if settings.write_preproc:
        affine = grid_affine()
        img = nib.Nifti1Image(result.volume, affine)
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_qform(affine, code=4)  # MNI
        img.header.set_sform(affine, code=4)
        path = derivatives.preproc_image(settings.output_dir, image)
        atomic.write_nifti(path, img)
        atomic.write_json(
            path.with_name(path.name.replace(".nii.gz", ".json")),
            {
                "SkullStripped": False,
                "Sources": [f"bids:raw:{image.relpath}"],
                "Description": "N4-corrected, affine to MNI, clipped to [2, 98] percentiles, scaled to [0, 1]",
            },
        )
