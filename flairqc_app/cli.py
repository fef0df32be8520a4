"""`flairqc bids_dir output_dir participant|group`: argument parsing, checks, logging and exit codes.

Exit codes follow BEP027 (config.EXIT_*); README.md documents them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from flairqc_app import __version__, config
from flairqc_app.cpus import default_nprocs
from flairqc_app.progress import Progress, SkipFlagged

if TYPE_CHECKING:
    from flairqc_app.validate import ValidationReport

log = logging.getLogger("flairqc")
LEVELS = ("participant", "group")


class UsageError(Exception):
    def __init__(self, message: str, exit_code: int = config.EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(BaseException):
    """SIGTERM (a plain kill, a SLURM or Kubernetes stop), raised in the main thread as Ctrl-C raises
    KeyboardInterrupt, so that the same clean-up runs: workers ended, scratch removed, finished rows kept."""


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


class PrintDescriptor(argparse.Action):
    """`--bids-exec-spec` (BEP027): print the Boutiques descriptor and exit 0, like --version, without positionals."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None):
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        sys.stdout.write((config.DATA_DIR / "boutiques.json").read_text(encoding="utf-8"))
        parser.exit()


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage; BIDS-Apps (BEP027) want 64."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(config.EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> Parser:
    p = Parser(prog="flairqc", description="Automatic quality control of brain 3D FLAIR MRI (BIDS-App).")
    p.add_argument("bids_dir", type=Path, help="root of the input BIDS dataset")
    p.add_argument("output_dir", type=Path, help="where the derivatives go (e.g. <bids_dir>/derivatives/flairqc)")
    p.add_argument("analysis_level", nargs="+", metavar="{participant,group}",
                   help="participant, group, or both in one call")
    sel = p.add_argument_group("selection")
    sel.add_argument("--participant-label", "--participant_label", nargs="+", metavar="LABEL",
                     help="subject labels (with or without sub-), or files with one label per line")
    sel.add_argument("--session-id", "--session_id", nargs="+", metavar="SES", help="session labels")
    sel.add_argument("--run-id", "--run_id", nargs="+", metavar="RUN", help="run labels")
    sel.add_argument("--bids-filter-file", "--bids_filter_file", type=Path, metavar="FILE",
                     help='JSON {"flair": {entity: value}}; null means the entity must be absent')
    run = p.add_argument_group("processing")
    run.add_argument("--models-dir", type=Path, default=config.DEFAULT_MODELS_DIR,
                     help="directory with models.json and ONNX files (default: the models shipped in the package)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="where ONNX inference runs (auto: CUDA when available)")
    run.add_argument("--thresholds", type=Path, metavar="FILE",
                     help="JSON {task: threshold} overriding models.json; at group level, grades and tiers are "
                          "recomputed from the stored probabilities")
    run.add_argument("--preproc", choices=sorted(config.PREPROC_RECIPES), default=config.DEFAULT_PREPROC,
                     help="preprocessing recipe: fast (default) or paper (Clinica flair-linear settings, slower)")
    run.add_argument("--gate-config", type=Path, metavar="FILE",
                     help='JSON {limit: value} overriding input gate limits, e.g. {"max_slice_thickness_3d_mm": 2.5}')
    run.add_argument("--write-preproc", action="store_true", help="also write the preprocessed image (MNI grid)")
    run.add_argument("--iqm-json", action="store_true",
                     help="also write each image's IQMs in MRIQC's JSON layout (*_desc-iqms_FLAIR.json)")
    run.add_argument("--force", action="store_true", help="redo images already done")
    res = p.add_argument_group("resources")
    res.add_argument("--nprocs", "--n_cpus", "--n-cpus", type=positive_int, default=default_nprocs(),
                     help="images processed in parallel (default: the CPUs given, SLURM_CPUS_PER_TASK or the CPU "
                          "affinity, as many as the memory holds: %(default)s here)")
    res.add_argument("--omp-nthreads", type=positive_int, default=config.DEFAULT_OMP_NTHREADS,
                     help="OpenMP/BLAS threads per image (default %(default)s); ANTs and onnxruntime always run on "
                          "one thread per image, so that results never depend on it")
    res.add_argument("--mem", "--mem-gb", type=float, metavar="GB",
                     help=f"memory limit; caps --nprocs at about {config.PER_IMAGE_MEMORY_GB} GB per image, and an "
                          "image whose grid needs more than its share fails (too_large; default: the machine's memory)")
    res.add_argument("-w", "--work-dir", type=Path, help="scratch directory (default: a new folder in $TMPDIR)")
    other = p.add_argument_group("other")
    other.add_argument("--skip-bids-validation", "--skip_bids_validation", action="store_true")
    other.add_argument("--version", action="version", version=f"flairqc {__version__}")
    other.add_argument("--bids-exec-spec", action=PrintDescriptor, help="print the Boutiques descriptor and exit")
    other.add_argument("-v", "--verbose", action="count", default=0,
                       help="stage timings and debug output on the console (the log file in logs/ always has it)")
    other.add_argument("-q", "--quiet", action="store_true", help="errors only on the console")
    return p


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        return run(args)
    except UsageError as exc:
        print(f"flairqc: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, Terminated) as exc:
        sigint = isinstance(exc, KeyboardInterrupt)
        code = config.EXIT_SIGINT if sigint else config.EXIT_SIGTERM
        print(f"flairqc: stopped by {'SIGINT' if sigint else 'SIGTERM'}; the images already written are complete, "
              "a re-run resumes", file=sys.stderr)
        if argv is None:  # the command itself, all cleaned up: skip the interpreter's teardown of ANTs, onnxruntime
            logging.shutdown()  # and pybids, which takes seconds on a loaded machine (benchmarks/bench_faults.py)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    levels = list(dict.fromkeys(args.analysis_level))
    unknown = [level for level in levels if level not in LEVELS]
    if unknown:
        raise UsageError(f"unknown analysis level {', '.join(unknown)}; use participant and/or group",
                         config.EXIT_UNKNOWN_LEVEL)
    bids_dir, output_dir = args.bids_dir.resolve(), args.output_dir.resolve()
    if not bids_dir.is_dir():
        raise UsageError(f"BIDS directory {bids_dir} does not exist", config.EXIT_NO_INPUT)
    check_not_inside(output_dir, bids_dir, "output directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "logs").mkdir(exist_ok=True)
        for folder in (output_dir, output_dir / "logs"):  # an existing read-only folder: root passes os.access
            tempfile.TemporaryFile(dir=folder).close()
        setup_logging(args.verbose, output_dir, levels, args.quiet)
    except OSError as exc:
        raise UsageError(f"cannot write in the output directory {output_dir}: {exc.strerror or exc}",
                         config.EXIT_CANT_CREATE) from exc
    set_thread_limits(args.omp_nthreads)
    log.info("flairqc %s: %s -> %s (%s)", __version__, bids_dir, output_dir, " + ".join(levels))

    from flairqc_app import discover

    try:
        labels = discover.read_labels_arg(args.participant_label)
        filters = discover.read_filter_file(args.bids_filter_file)
    except discover.DiscoveryError as exc:
        raise UsageError(str(exc), exc.exit_code) from exc
    selecting = bool(labels or args.session_id or args.run_id or filters)
    code = config.EXIT_OK
    shown = Progress(quiet=args.quiet)
    try:
        if "participant" in levels:
            code = participant_level(args, bids_dir, output_dir, labels, filters, selecting, shown)
        if "group" in levels:
            code = max(code, group_level(output_dir, labels, args, filters, selecting, shown))
    finally:
        shown.finish()
    return code


def check_not_inside(path: Path, bids_dir: Path, what: str) -> None:
    """Outputs inside the raw dataset would be indexed as raw data, except under derivatives/."""
    if path == bids_dir or (bids_dir in path.parents and (bids_dir / "derivatives") not in [path, *path.parents]):
        raise UsageError(f"{what} {path} is inside the BIDS dataset; use {bids_dir / 'derivatives' / 'flairqc'} "
                         "or a folder outside it")


class LogFileHandler(logging.FileHandler):
    """The run's log file; when it cannot be written (a full disk) it says so once and goes quiet, instead of
    logging's traceback on every record. The console keeps every message."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        exc = sys.exc_info()[1]
        log.removeHandler(self)
        print(f"flairqc: warning: cannot write the log file {self.baseFilename}: {exc}; logging to the console "
              "only", file=sys.stderr)


def setup_logging(verbosity: int, output_dir: Path, levels: list[str], quiet: bool = False) -> None:
    """INFO on stderr by default, DEBUG (stage timings) with -v, errors only with -q; the log file in logs/
    always has everything. Per-image lines are printed by progress.Progress, not by the console handler."""
    log.setLevel(logging.DEBUG)
    log.handlers.clear()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.ERROR if quiet else logging.DEBUG if verbosity else logging.INFO)
    console.addFilter(SkipFlagged())
    console.setFormatter(logging.Formatter("%(asctime)s flairqc %(levelname)s: %(message)s", "%H:%M:%S"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logfile = LogFileHandler(output_dir / "logs" / f"flairqc-{'-'.join(levels)}-{stamp}-{os.getpid()}.log",
                             encoding="utf-8")
    logfile.setLevel(logging.DEBUG)
    logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(processName)s: %(message)s"))
    log.addHandler(console)
    log.addHandler(logfile)
    log.propagate = False


def set_thread_limits(threads: int) -> None:
    """Before numpy/scipy start their thread pools; never 'all CPUs' (VIP runs many jobs per node). ANTs and
    onnxruntime are pinned to one thread elsewhere (config.ANTS_THREADS)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def participant_level(args: argparse.Namespace, bids_dir: Path, output_dir: Path, labels: list[str] | None,
                      filters: dict, selecting: bool, shown: Progress) -> int:
    from flairqc_app import discover
    from flairqc_app.infer import select_providers
    from flairqc_app.manifest import ModelError, read_thresholds

    try:
        select_providers(args.device)
    except ModelError as exc:
        raise UsageError(str(exc)) from exc
    report = None
    if args.skip_bids_validation:
        log.info("BIDS validation skipped (--skip-bids-validation)")
    else:
        report = run_validation(bids_dir, output_dir)
    started = time.perf_counter()
    try:
        images = discover.discover(bids_dir, labels, args.session_id, args.run_id, filters)
    except discover.DiscoveryError as exc:
        raise UsageError(str(exc), exc.exit_code) from exc
    log.info("found %d FLAIR image(s) in %.1f s", len(images), time.perf_counter() - started)
    if report is not None:  # the validator's file-level errors fail their images (reason bids_invalid)
        images = [replace(im, bids_errors=tuple(report.errors_for(im.relpath))) for im in images]
    if not images:
        raise UsageError(f"no FLAIR image (anat/*_FLAIR.nii[.gz]) {'matches the selection' if selecting else 'in ' + str(bids_dir)}",
                         config.EXIT_NO_MATCH if selecting else config.EXIT_NO_INPUT)
    try:
        overrides = read_thresholds(args.thresholds) if args.thresholds else {}
    except ModelError as exc:
        raise UsageError(str(exc)) from exc
    limits = gate_limits(args.gate_config)
    from flairqc_app.participant import run_participants
    from flairqc_app.scratch import scratch_dir

    work_root = args.work_dir.resolve() if args.work_dir else Path(tempfile.gettempdir())
    check_not_inside(work_root, bids_dir, "work directory")
    with ExitStack() as stack:  # the scratch goes on return, error, Ctrl-C and SIGTERM (its guardian: on kill -9)
        try:
            work_dir = stack.enter_context(scratch_dir(work_root))
        except OSError as exc:
            raise UsageError(f"cannot create work directory in {work_root}: {exc}", config.EXIT_CANT_CREATE) from exc
        try:
            settings = make_settings(args, bids_dir, output_dir, overrides, limits, work_dir)
            shown.start(len(images))
            outcomes = run_participants(images, settings, shown.image_done)
        except ModelError as exc:
            hint = ("\nthe default models of this installation are missing or damaged: reinstall flairqc, or pass "
                    "--models-dir" if args.models_dir == config.DEFAULT_MODELS_DIR else "")
            log.error("%s%s", exc, hint)
            return config.EXIT_FAILURE
        except OSError as exc:
            log.error("I/O error: %s", exc)
            return config.EXIT_IO
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "skipped", "failed")}
    reused = sum(o.reused for o in outcomes)
    log.info("participant level done: %d ok, %d skipped, %d failed (%d reused from an earlier run)",
             counts["ok"], counts["skipped"], counts["failed"], reused)
    if counts["failed"]:
        log.error("%d image(s) failed; see their rows (status, reason) and logs/crash-*.txt", counts["failed"])
        return config.EXIT_FAILURE
    return config.EXIT_OK


def gate_limits(path: Path | None) -> config.GateLimits:
    """The defaults, or a --gate-config file's overrides of them (logged: they change which images are rejected)."""
    from flairqc_app.gate import GateConfigError, describe_limits, read_gate_limits

    if path is None:
        return config.GATE_LIMITS
    try:
        limits = read_gate_limits(path)
    except GateConfigError as exc:
        raise UsageError(str(exc)) from exc
    log.info("input gate limits from %s: %s", path, describe_limits(limits))
    return limits


def run_validation(bids_dir: Path, output_dir: Path) -> ValidationReport:
    """Validate; stop on dataset-level errors (exit 16). The findings go to logs/, a summary to the console."""
    from flairqc_app import validate

    report = validate.validate_dataset(bids_dir)
    findings = output_dir / "logs" / f"bids-validation-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    report.write(findings)
    blocking = report.dataset_errors
    verdict = "FAILED" if blocking else "passed" if report.ok else "passed at the dataset level"
    log.info("BIDS validation by %s: %s; %s (all findings: %s)", report.validator, verdict, report.summary(), findings)
    shown_errors = (blocking or report.errors)[: validate.MAX_ERRORS_SHOWN]
    more = len(blocking or report.errors) - len(shown_errors)
    listing = "\n  ".join(f.text() for f in shown_errors) + (f"\n  ... and {more} more" if more > 0 else "")
    if blocking:
        raise UsageError(f"{bids_dir} failed BIDS validation ({report.validator}):\n  {listing}"
                         "\n(use --skip-bids-validation to run anyway)", config.EXIT_VALIDATION)
    if report.errors:
        log.warning("the BIDS validator found errors in some files; the FLAIR images they concern fail "
                    "(reason bids_invalid), the others are processed:\n  %s", listing)
    return report


def make_settings(args: argparse.Namespace, bids_dir: Path, output_dir: Path, overrides: dict[str, float],
                  limits: config.GateLimits, work_dir: Path):
    from flairqc_app.memory import machine_memory_bytes
    from flairqc_app.participant import RunSettings

    nprocs = args.nprocs
    if args.mem:
        nprocs = max(1, min(nprocs, int(args.mem // config.PER_IMAGE_MEMORY_GB)))
        if nprocs < args.nprocs:
            log.warning("--mem %.1f GB allows %d parallel image(s), not %d", args.mem, nprocs, args.nprocs)
    total = args.mem * 2**30 if args.mem else machine_memory_bytes()
    return RunSettings(bids_dir=bids_dir, output_dir=output_dir, work_dir=work_dir, models_dir=args.models_dir,
                       recipe=config.PREPROC_RECIPES[args.preproc], device=args.device,
                       nprocs=nprocs, threshold_overrides=overrides,
                       write_preproc=args.write_preproc, write_iqm_json=args.iqm_json, force=args.force,
                       gate_limits=limits, image_memory_bytes=int(total // nprocs))


def group_level(output_dir: Path, labels: list[str] | None, args: argparse.Namespace, filters: dict,
                selecting: bool, shown: Progress) -> int:
    from flairqc_app.group import describe, group_stem, run_group, selection
    from flairqc_app.manifest import ModelError

    wanted = selection(labels, args.session_id, args.run_id, filters)
    try:  # --thresholds at group level: verdicts recomputed from the stored probabilities (recompute.py)
        rows = run_group(output_dir, wanted, args.models_dir, args.thresholds)
    except ModelError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        log.error("I/O error: %s (the previous group table and report, if any, are unchanged)", exc)
        return config.EXIT_IO
    if not rows:
        raise UsageError(f"no participant-level results {'match the selection ' if selecting else ''}in {output_dir}; "
                         "run the participant level first", config.EXIT_NO_MATCH if selecting else config.EXIT_NO_INPUT)
    report = output_dir / f"{group_stem(wanted)}.html"
    log.info("group level: %d image(s)%s -> %s", len(rows), f" selected by {describe(wanted)}" if wanted else "", report)
    from flairqc_app.report.verdict import category

    shown.group_done([category(row) for row in rows], report)
    return config.EXIT_OK
