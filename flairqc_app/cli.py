"""`flairqc bids_dir output_dir participant|group`: the arguments, parsed into one config.Settings, and the
mapping from exceptions to exit codes. The run itself is levels.py.

Exit codes follow BEP027 (config.EXIT_*); README.md documents them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from flairqc_app import __version__, config
from flairqc_app.cpus import default_nprocs
from flairqc_app.exceptions import Terminated, UsageError
from flairqc_app.levels import run


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


class PrintDescriptor(argparse.Action):
    """`--bids-exec-spec` (BEP027): print the Boutiques descriptor and exit 0, like --version, without positionals."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None):
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
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
    p.add_argument(
        "output_dir", type=Path, help="where the derivatives go (e.g. <bids_dir>/derivatives/flairqc)"
    )
    p.add_argument(
        "analysis_level",
        nargs="+",
        metavar="{participant,group}",
        help="participant, group, or both in one call",
    )
    sel = p.add_argument_group("selection")
    sel.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        metavar="LABEL",
        help="subject labels (with or without sub-), or files with one label per line",
    )
    sel.add_argument("--session-id", "--session_id", nargs="+", metavar="SES", help="session labels")
    sel.add_argument("--run-id", "--run_id", nargs="+", metavar="RUN", help="run labels")
    sel.add_argument(
        "--bids-filter-file",
        "--bids_filter_file",
        type=Path,
        metavar="FILE",
        help='JSON {"flair": {entity: value}}; null means the entity must be absent',
    )
    processing = p.add_argument_group("processing")
    processing.add_argument(
        "--models-dir",
        type=Path,
        default=config.DEFAULT_MODELS_DIR,
        help="directory with models.json and ONNX files (default: the models shipped in the package)",
    )
    processing.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where ONNX inference runs (auto: CUDA when available)",
    )
    processing.add_argument(
        "--thresholds",
        type=Path,
        metavar="FILE",
        help="JSON {task: threshold} overriding models.json; at group level, grades and tiers are "
        "recomputed from the stored probabilities",
    )
    processing.add_argument(
        "--preproc",
        choices=sorted(config.PREPROC_RECIPES),
        default=config.DEFAULT_PREPROC,
        help="preprocessing recipe: fast (default) or paper (Clinica flair-linear settings, slower)",
    )
    processing.add_argument(
        "--gate-config",
        type=Path,
        metavar="FILE",
        help='JSON {limit: value} overriding input gate limits, e.g. {"max_slice_thickness_3d_mm": 2.5}',
    )
    processing.add_argument(
        "--write-preproc", action="store_true", help="also write the preprocessed image (MNI grid)"
    )
    processing.add_argument(
        "--iqm-json",
        action="store_true",
        help="also write each image's IQMs in MRIQC's JSON layout (*_desc-iqms_FLAIR.json)",
    )
    processing.add_argument("--force", action="store_true", help="redo images already done")
    res = p.add_argument_group("resources")
    res.add_argument(
        "--nprocs",
        "--n_cpus",
        "--n-cpus",
        type=positive_int,
        default=default_nprocs(),
        help="images processed in parallel (default: the CPUs given, SLURM_CPUS_PER_TASK or the CPU "
        "affinity, as many as the memory holds: %(default)s here)",
    )
    res.add_argument(
        "--omp-nthreads",
        type=positive_int,
        default=config.DEFAULT_OMP_NTHREADS,
        help="OpenMP/BLAS threads per image (default %(default)s); ANTs and onnxruntime always run on "
        "one thread per image, so that results never depend on it",
    )
    res.add_argument(
        "--mem",
        "--mem-gb",
        type=float,
        metavar="GB",
        help=f"memory limit; caps --nprocs at about {config.PER_IMAGE_MEMORY_GB} GB per image, and an "
        "image whose grid needs more than its share fails (too_large; default: the machine's memory)",
    )
    res.add_argument(
        "-w", "--work-dir", type=Path, help="scratch directory (default: a new folder in $TMPDIR)"
    )
    other = p.add_argument_group("other")
    other.add_argument("--skip-bids-validation", "--skip_bids_validation", action="store_true")
    other.add_argument("--version", action="version", version=f"flairqc {__version__}")
    other.add_argument(
        "--bids-exec-spec", action=PrintDescriptor, help="print the Boutiques descriptor and exit"
    )
    other.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="stage timings and debug output on the console (the log file in logs/ always has it)",
    )
    other.add_argument("-q", "--quiet", action="store_true", help="errors only on the console")
    return p


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def parse_settings(argv: list[str] | None = None) -> config.Settings:
    """The one settings object of a run; nothing below the CLI sees the argparse Namespace."""
    values = vars(build_parser().parse_args(argv))
    for name in ("participant_label", "session_id", "run_id"):
        values[name] = None if values[name] is None else tuple(values[name])
    values["analysis_level"] = tuple(dict.fromkeys(values["analysis_level"]))
    return config.Settings(**values)


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        return run(settings)
    except UsageError as exc:
        print(f"flairqc: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, Terminated) as exc:
        sigint = isinstance(exc, KeyboardInterrupt)
        code = config.EXIT_SIGINT if sigint else config.EXIT_SIGTERM
        print(
            f"flairqc: stopped by {'SIGINT' if sigint else 'SIGTERM'}; the images already written are complete, "
            "a re-run resumes",
            file=sys.stderr,
        )
        # the command itself, all cleaned up: skip the interpreter's teardown of ANTs, onnxruntime
        if argv is None:
            logging.shutdown()  # and pybids, which takes seconds on a loaded machine (benchmarks/bench_faults.py)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
