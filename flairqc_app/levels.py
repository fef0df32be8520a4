"""The run behind the CLI: check the paths, set up the log, select the images, run the levels, summarise.

Both levels take the one Settings object (config.Settings) that cli.py builds from the arguments; a user's
mistake raises exceptions.UsageError, whose exit code cli.py returns.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from flairqc_app import __version__, config, runlog
from flairqc_app.config import Settings
from flairqc_app.entities import Selection
from flairqc_app.exceptions import GateConfigError, ModelError, UsageError
from flairqc_app.progress import Progress

if TYPE_CHECKING:
    from flairqc_app.discover import FlairImage
    from flairqc_app.image_result import Outcome
    from flairqc_app.validate import ValidationReport

log = logging.getLogger("flairqc")
LEVELS = ("participant", "group")


def run(settings: Settings) -> int:
    """Check the arguments, set up the log, then run the levels asked for; the exit code (BEP027)."""
    levels = settings.analysis_level
    unknown = [level for level in levels if level not in LEVELS]
    if unknown:
        raise UsageError(
            f"unknown analysis level {', '.join(unknown)}; use participant and/or group",
            config.EXIT_UNKNOWN_LEVEL,
        )
    bids_dir, output_dir = settings.bids_dir.resolve(), settings.output_dir.resolve()
    if not bids_dir.is_dir():
        raise UsageError(f"BIDS directory {bids_dir} does not exist", config.EXIT_NO_INPUT)
    check_not_inside(output_dir, bids_dir, "output directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "logs").mkdir(exist_ok=True)
        for folder in (output_dir, output_dir / "logs"):  # a read-only folder: root passes os.access
            tempfile.TemporaryFile(dir=folder).close()
        log_file = runlog.setup_logging(settings.verbose, output_dir, levels, settings.quiet)
    except OSError as exc:
        raise UsageError(
            f"cannot write in the output directory {output_dir}: {exc.strerror or exc}",
            config.EXIT_CANT_CREATE,
        ) from exc
    settings = replace(settings, bids_dir=bids_dir, output_dir=output_dir)
    runlog.write_settings(settings, log_file)
    set_thread_limits(settings.omp_nthreads)
    log.info("flairqc %s: %s -> %s (%s)", __version__, bids_dir, output_dir, " + ".join(levels))

    from flairqc_app import discover

    labels = discover.read_labels_arg(settings.participant_label)
    filters = discover.read_filter_file(settings.bids_filter_file)
    selection = Selection.of(labels, settings.session_id, settings.run_id, filters)
    code = config.EXIT_OK
    shown = Progress(quiet=settings.quiet)
    try:
        if "participant" in levels:
            code = participant_level(settings, selection, shown)
        if "group" in levels:
            code = max(code, group_level(settings, selection, shown))
    finally:
        shown.finish()
    return code


def check_not_inside(path: Path, bids_dir: Path, what: str) -> None:
    """Outputs inside the raw dataset would be indexed as raw data, except under derivatives/."""
    derivatives = bids_dir / "derivatives"
    if path == bids_dir or (bids_dir in path.parents and derivatives not in [path, *path.parents]):
        raise UsageError(
            f"{what} {path} is inside the BIDS dataset; use {derivatives / 'flairqc'} or a folder outside it"
        )


def set_thread_limits(threads: int) -> None:
    """Before numpy/scipy start their thread pools; never 'all CPUs' (VIP runs many jobs per node). ANTs and
    onnxruntime are pinned to one thread elsewhere (config.ANTS_THREADS)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def participant_level(settings: Settings, selection: Selection, shown: Progress) -> int:
    """Select the images, process them in worker processes, summarise; exit 1 when an image failed."""
    from flairqc_app.infer import select_providers
    from flairqc_app.manifest import read_thresholds

    try:
        select_providers(settings.device)
    except ModelError as exc:
        raise UsageError(str(exc)) from exc
    images = selected_images(settings, selection)
    try:
        overrides = read_thresholds(settings.thresholds) if settings.thresholds else {}
    except ModelError as exc:
        raise UsageError(str(exc)) from exc
    limits = gate_limits(settings.gate_config)
    from flairqc_app.participant import run_participants
    from flairqc_app.scratch import scratch_dir

    work_root = settings.work_dir.resolve() if settings.work_dir else Path(tempfile.gettempdir())
    check_not_inside(work_root, settings.bids_dir, "work directory")
    with ExitStack() as stack:  # the scratch goes on return, error, Ctrl-C, SIGTERM (its guardian: kill -9)
        try:
            work_dir = stack.enter_context(scratch_dir(work_root))
        except OSError as exc:
            raise UsageError(
                f"cannot create work directory in {work_root}: {exc}", config.EXIT_CANT_CREATE
            ) from exc
        try:
            processing = run_settings(settings, overrides, limits, work_dir)
            shown.start(len(images))
            outcomes = run_participants(images, processing, shown.image_done)
        except ModelError as exc:
            hint = (
                "\nthe default models of this installation are missing or damaged: reinstall flairqc, or pass "
                "--models-dir"
                if settings.models_dir == config.DEFAULT_MODELS_DIR
                else ""
            )
            log.error("%s%s", exc, hint)
            return config.EXIT_FAILURE
        except OSError as exc:
            log.error("I/O error: %s", exc)
            return config.EXIT_IO
    return summarise(outcomes)


def selected_images(settings: Settings, selection: Selection) -> list[FlairImage]:
    """BIDS validation (unless skipped), then discovery; no image at all is a usage error (exit 18 or 66)."""
    from flairqc_app import discover

    bids_dir = settings.bids_dir
    report = None
    if settings.skip_bids_validation:
        log.info("BIDS validation skipped (--skip-bids-validation)")
    else:
        report = run_validation(bids_dir, settings.output_dir)
    started = time.perf_counter()
    images = discover.discover(bids_dir, selection)
    log.info("found %d FLAIR image(s) in %.1f s", len(images), time.perf_counter() - started)
    if report is not None:  # the validator's file-level errors fail their images (reason bids_invalid)
        images = [replace(im, bids_errors=tuple(report.errors_for(im.relpath))) for im in images]
    if not images:
        where = "matches the selection" if selection else f"in {bids_dir}"
        raise UsageError(
            f"no FLAIR image (anat/*_FLAIR.nii[.gz]) {where}",
            config.EXIT_NO_MATCH if selection else config.EXIT_NO_INPUT,
        )
    return images


def summarise(outcomes: list[Outcome]) -> int:
    """The counts in the log; exit 1 when an image failed (the others were processed)."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "skipped", "failed")}
    reused = sum(o.reused for o in outcomes)
    log.info(
        "participant level done: %d ok, %d skipped, %d failed (%d reused from an earlier run)",
        counts["ok"],
        counts["skipped"],
        counts["failed"],
        reused,
    )
    if counts["failed"]:
        log.error(
            "%d image(s) failed; see their rows (status, reason) and logs/crash-*.txt", counts["failed"]
        )
        return config.EXIT_FAILURE
    return config.EXIT_OK


def gate_limits(path: Path | None) -> config.GateLimits:
    """The defaults, or a --gate-config file's overrides of them (logged: they change which images are
    rejected)."""
    from flairqc_app.gate import describe_limits, read_gate_limits

    if path is None:
        return config.GATE_LIMITS
    try:
        limits = read_gate_limits(path)
    except GateConfigError as exc:
        raise UsageError(str(exc)) from exc
    log.info("input gate limits from %s: %s", path, describe_limits(limits))
    return limits


def run_validation(bids_dir: Path, output_dir: Path) -> ValidationReport:
    """Validate; stop on dataset-level errors (exit 16). The findings go to logs/, a summary to the
    console."""
    from flairqc_app import validate

    report = validate.validate_dataset(bids_dir)
    findings = output_dir / "logs" / f"bids-validation-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    report.write(findings)
    blocking = report.dataset_errors
    verdict = "FAILED" if blocking else "passed" if report.ok else "passed at the dataset level"
    log.info(
        "BIDS validation by %s: %s; %s (all findings: %s)",
        report.validator,
        verdict,
        report.summary(),
        findings,
    )
    shown_errors = (blocking or report.errors)[: validate.MAX_ERRORS_SHOWN]
    more = len(blocking or report.errors) - len(shown_errors)
    listing = "\n  ".join(f.text() for f in shown_errors) + (f"\n  ... and {more} more" if more > 0 else "")
    if blocking:
        raise UsageError(
            f"{bids_dir} failed BIDS validation ({report.validator}):\n  {listing}"
            "\n(use --skip-bids-validation to run anyway)",
            config.EXIT_VALIDATION,
        )
    if report.errors:
        log.warning(
            "the BIDS validator found errors in some files; the FLAIR images they concern fail "
            "(reason bids_invalid), the others are processed:\n  %s",
            listing,
        )
    return report


def run_settings(
    settings: Settings, overrides: dict[str, float], limits: config.GateLimits, work_dir: Path
) -> config.RunSettings:
    """What the images are processed with: --nprocs capped by --mem, and each image's share of the memory."""
    from flairqc_app.memory import machine_memory_bytes

    nprocs = settings.nprocs
    if settings.mem:
        nprocs = max(1, min(nprocs, int(settings.mem // config.PER_IMAGE_MEMORY_GB)))
        if nprocs < settings.nprocs:
            log.warning(
                "--mem %.1f GB allows %d parallel image(s), not %d", settings.mem, nprocs, settings.nprocs
            )
    total = settings.mem * 2**30 if settings.mem else machine_memory_bytes()
    return config.RunSettings(
        bids_dir=settings.bids_dir,
        output_dir=settings.output_dir,
        work_dir=work_dir,
        models_dir=settings.models_dir,
        recipe=config.PREPROC_RECIPES[settings.preproc],
        device=settings.device,
        nprocs=nprocs,
        threshold_overrides=overrides,
        write_preproc=settings.write_preproc,
        write_iqm_json=settings.iqm_json,
        force=settings.force,
        gate_limits=limits,
        image_memory_bytes=int(total // nprocs),
    )


def group_level(settings: Settings, selection: Selection, shown: Progress) -> int:
    from flairqc_app.group import describe, group_stem, run_group, table_selection

    output_dir = settings.output_dir
    wanted = table_selection(selection)
    try:  # --thresholds at group level: verdicts recomputed from the stored probabilities (recompute.py)
        rows = run_group(output_dir, wanted, settings.models_dir, settings.thresholds)
    except ModelError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        log.error("I/O error: %s (the previous group table and report, if any, are unchanged)", exc)
        return config.EXIT_IO
    if not rows:
        matching = "match the selection " if selection else ""
        raise UsageError(
            f"no participant-level results {matching}in {output_dir}; run the participant level first",
            config.EXIT_NO_MATCH if selection else config.EXIT_NO_INPUT,
        )
    report = output_dir / f"{group_stem(wanted)}.html"
    selected = f" selected by {describe(wanted)}" if wanted else ""
    log.info("group level: %d image(s)%s -> %s", len(rows), selected, report)
    from flairqc_app.report.verdict import category

    shown.group_done([category(row) for row in rows], report)
    return config.EXIT_OK
