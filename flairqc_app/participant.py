"""Participant level: for each FLAIR, gate -> preprocess -> infer -> grade -> write TSV, report, transform.

One bad image never stops the run: its row says `failed` with a reason and a crash file goes to logs/.
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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from flairqc_app import __version__, atomic, derivatives, memory, tsv
from flairqc_app.config import (FLAIR_TEMPLATE, GATE_LIMITS, INFERENCE_THREADS, SIDECAR_FIELDS, GateLimits,
                                PreprocSettings)
from flairqc_app.discover import FlairImage
from flairqc_app.gate import REASONS, check_image, describe_limits
from flairqc_app.grade import decide
from flairqc_app.grid import grid_affine
from flairqc_app.infer import ModelSet, load_models
from flairqc_app.manifest import sha256_of
from flairqc_app.preprocess import PreprocResult, preprocess_image
from flairqc_app.schema import SIDECAR_COLUMNS
from flairqc_app.workers import run_in_workers

log = logging.getLogger("flairqc")


@dataclass(frozen=True)
class RunSettings:
    bids_dir: Path
    output_dir: Path
    work_dir: Path
    models_dir: Path
    recipe: PreprocSettings
    device: str = "auto"
    nprocs: int = 1
    threshold_overrides: dict[str, float] = field(default_factory=dict)
    write_preproc: bool = False
    write_iqm_json: bool = False  # --iqm-json: the IQMs in MRIQC's JSON layout beside the TSV
    force: bool = False
    gate_limits: GateLimits = GATE_LIMITS
    image_memory_bytes: int = 8 << 30  # memory.too_large refuses an image that would need more


@dataclass
class Outcome:
    bids_name: str
    status: str
    reused: bool = False
    category: str = "unknown"  # report.verdict.CATEGORIES key
    verdict: str = ""  # e.g. "Tier 2 (contrast 1)", for the terminal
    seconds: float | None = None

    @classmethod
    def of(cls, row: dict[str, Any], reused: bool = False) -> Outcome:
        from flairqc_app.report.rating import model_verdict_text
        from flairqc_app.report.verdict import as_number, category

        verdict = model_verdict_text(row)
        if row.get("status") != "ok" and row.get("reason"):
            verdict += f" ({row['reason']})"
        return cls(str(row["bids_name"]), str(row["status"]), reused, category(row), verdict,
                   as_number(row.get("seconds")))


def run_participants(images: list[FlairImage], settings: RunSettings,
                     on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Process every image in worker processes (workers.py): a worker that dies fails only its own image;
    `on_done` hears of each image as it ends."""
    derivatives.prepare_output_dir(settings.output_dir, settings.bids_dir)
    # fail early, in the parent, which also writes the rows of images whose worker died
    models = load_models(settings.models_dir, settings.device, 1, settings.threshold_overrides)
    return run_in_workers(images, min(settings.nprocs, len(images)), partial(_process_in_worker, settings=settings),
                          partial(worker_died, settings=settings, models=models), _init_worker, (settings,),
                          on_done)


_WORKER_MODELS: ModelSet | None = None


def _init_worker(settings: RunSettings) -> None:
    global _WORKER_MODELS
    _WORKER_MODELS = load_models(settings.models_dir, settings.device, INFERENCE_THREADS, settings.threshold_overrides)


def _process_in_worker(image: FlairImage, settings: RunSettings) -> Outcome:
    """process_image; an output that cannot be written (a full disk) stops the run with a message naming the
    image and the file."""
    assert _WORKER_MODELS is not None
    try:
        return process_image(image, settings, _WORKER_MODELS)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the outputs of {image.bids_name}: {exc.strerror or exc}",
                      exc.filename) from exc


def worker_died(image: FlairImage, how: str, settings: RunSettings, models: ModelSet) -> Outcome:
    """The row of an image whose worker process ended without answering (kill -9, the out-of-memory killer)."""
    return finish(image, settings, base_row(image, models, settings), time.perf_counter(),
                  failure=("worker_died", f"the worker process processing {image.relpath} {how}"))


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
    row: dict[str, Any] = {"bids_name": image.bids_name, "source_file": image.relpath, **image.entity_columns(),
                           "preproc_recipe": settings.recipe.name, "gate_limits": describe_limits(settings.gate_limits),
                           "provider": models.provider,
                           "model_hashes": models.hashes, "flairqc_version": __version__}
    for key in SIDECAR_FIELDS:
        value = image.metadata.get(key)
        row[SIDECAR_COLUMNS[key]] = value if isinstance(value, (int, float, str)) or value is None else json.dumps(value)
    return row


def process_image(image: FlairImage, settings: RunSettings, models: ModelSet) -> Outcome:
    started = time.perf_counter()
    table = derivatives.qc_table(settings.output_dir, image)
    row = base_row(image, models, settings)
    if image.bids_errors:
        return finish(image, settings, row, started, failure=("bids_invalid", "; ".join(image.bids_errors)))
    try:
        row["input_sha256"] = sha256_of(image.path)
    except OSError as exc:
        return finish(image, settings, row, started, failure=("unreadable", f"cannot read {image.path}: {exc}"))
    if image.sidecar_error:
        return finish(image, settings, row, started, failure=("sidecar_invalid", image.sidecar_error))
    row["run_key"] = run_key(row["input_sha256"], image, models, settings)
    previous = previous_row(table) if table.exists() else None
    if (not settings.force and previous and previous.get("run_key") == row["run_key"]
            and previous.get("status") in ("ok", "skipped")):
        log.debug("%s: already done with the same inputs, models and version (run key %s), skipped",
                  image.bids_name, row["run_key"][:8])
        return Outcome.of(previous, reused=True)

    oversized = memory.too_large(image.path, settings.image_memory_bytes)
    if oversized:
        return finish(image, settings, row, started, failure=("too_large", oversized))
    gate = check_image(image.path, image.metadata, settings.gate_limits)
    row.update(gate.geometry)
    if gate.status != "ok":
        if gate.status == "skipped":
            log.debug("%s: straight reject by the input gate: %s (%s)", image.bids_name, gate.reason, gate.detail)
            row.update(straight_reject=1, reject_source="gate")
            return finish(image, settings, row, started, status=("skipped", gate.reason, gate.detail),
                          original=gate.image)
        return finish(image, settings, row, started, failure=(gate.reason, gate.detail), original=gate.image)

    work = Path(tempfile.mkdtemp(prefix=f"{image.bids_name}-", dir=settings.work_dir))
    try:
        try:
            result = preprocess_image(gate.image, FLAIR_TEMPLATE, settings.recipe, work)
        except Exception as exc:  # ANTs raises RuntimeError and others; all mean "this image failed"
            return finish(image, settings, row, started, failure=("preprocessing_error", describe(exc)),
                          original=gate.image, trace=traceback.format_exc())
        row["registration_ncc"] = round(result.registration_ncc, 4)
        row.update(image_quality_metrics(image, gate.image, result))
        try:
            probabilities = models.predict(result.volume)
        except Exception as exc:  # onnxruntime errors
            return finish(image, settings, row, started, failure=("inference_error", describe(exc)),
                          original=gate.image, trace=traceback.format_exc())
        verdict = decide(probabilities, models.thresholds)
        row.update({f"p_{task}": round(p, 6) for task, p in probabilities.items()})
        row.update(verdict.grades, straight_reject=verdict.straight_reject, tier=verdict.tier,
                   reject_source="model" if verdict.straight_reject else None)
        write_image_outputs(image, settings, result, row)
        log.debug("%s: stages %s", image.bids_name,
                  ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.timings.items()) or "n/a")
        return finish(image, settings, row, started, status=("ok", None, None), original=gate.image,
                      preprocessed=result.volume, thresholds=models.thresholds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


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


def write_image_outputs(image: FlairImage, settings: RunSettings, result: PreprocResult, row: dict[str, Any]) -> None:
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
        atomic.write_json(path.with_name(path.name.replace(".nii.gz", ".json")),
                          {"SkullStripped": False, "Sources": [f"bids:raw:{image.relpath}"],
                           "Description": "N4-corrected, affine to MNI, clipped to [2, 98] percentiles, scaled to [0, 1]"})


def finish(
    image: FlairImage,
    settings: RunSettings,
    row: dict[str, Any],
    started: float,
    status: tuple[str, str | None, str | None] | None = None,
    failure: tuple[str, str] | None = None,
    original: nib.Nifti1Image | None = None,
    preprocessed: np.ndarray | None = None,
    thresholds: dict[str, float] | None = None,
    trace: str | None = None,
) -> Outcome:
    """Write the crash file (if failed), the report, then the TSV last: a TSV on disk means complete."""
    if failure is not None:
        reason, detail = failure
        status = ("failed", reason, detail)
        log.error("%s: failed: %s: %s", image.bids_name, reason, detail)
        write_crash_file(settings.output_dir, image, reason, detail, trace)
    else:
        derivatives.crash_file(settings.output_dir, image.bids_name).unlink(missing_ok=True)
    assert status is not None
    row["status"], row["reason"], row["reason_detail"] = status
    row["seconds"] = round(time.perf_counter() - started, 2)
    from flairqc_app.report import render_participant_report  # jinja2/plotly only where reports are written

    html = render_participant_report(row, original, preprocessed, thresholds)
    atomic.write_text(derivatives.report_file(settings.output_dir, image.bids_name), html)
    tsv.write_table(derivatives.qc_table(settings.output_dir, image), [row])
    return Outcome.of(row)


def write_crash_file(output_dir: Path, image: FlairImage, reason: str, detail: str, trace: str | None) -> None:
    lines = [
        f"image: {image.relpath}",
        f"reason: {reason} ({REASONS.get(reason, ('', ''))[1]})",
        f"detail: {detail}",
        f"flairqc: {__version__}",
        f"time: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
    ]
    if trace:
        lines += ["", trace]
    atomic.write_text(derivatives.crash_file(output_dir, image.bids_name), "\n".join(lines) + "\n")
