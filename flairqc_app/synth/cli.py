"""flairqc-synth: write a labelled synthetic BIDS dataset (FLAIR and T1w heads, graded artefacts, rejects)."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence

from flairqc_app.config import EXIT_FAILURE, EXIT_USAGE
from flairqc_app.synth.bids import write_dataset
from flairqc_app.synth.case import MODALITIES, SynthConfig
from flairqc_app.synth.params import GRIDS, MOTION_GRADINGS


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1]")
    return value


def _modalities(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names or set(names) - set(MODALITIES):
        raise argparse.ArgumentTypeError(f"{text!r}: give a comma-separated subset of {','.join(MODALITIES)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flairqc-synth",
        description="Write a BIDS dataset of synthetic brain MRI with quality labels (labels.tsv at the root: "
        "motion/noise/contrast grades 0-2, straight reject and reason, every generation parameter). "
        "The same seed gives the same bytes. See docs/synthetic-data.md.",
    )
    parser.add_argument(
        "out_dir", help="output BIDS dataset folder (created; existing files are overwritten)"
    )
    parser.add_argument(
        "--n-subjects", type=int, required=True, help="number of subjects (one image per modality)"
    )
    parser.add_argument("--seed", type=int, required=True, help="dataset seed")
    parser.add_argument(
        "--modalities",
        type=_modalities,
        default=MODALITIES,
        help="comma-separated image suffixes per subject (default: FLAIR,T1w)",
    )
    parser.add_argument(
        "--straight-reject-fraction",
        type=_fraction,
        default=0.1,
        help="share of FLAIR images that are straight rejects, reasons drawn uniformly (default 0.1)",
    )
    parser.add_argument(
        "--artefact-fraction",
        type=_fraction,
        default=0.5,
        help="share of images with one to three graded artefacts (default 0.5)",
    )
    parser.add_argument(
        "--grid",
        choices=sorted(GRIDS),
        default="1mm",
        help="acquisition grid: 1mm isotropic 3D (default), 2mm isotropic 3D (fast, CI), "
        "2d thick-slice (every FLAIR becomes a straight reject acquisition_2d)",
    )
    parser.add_argument(
        "--lesions",
        choices=("random", "always", "never"),
        default="random",
        help="white-matter hyperintense lesions per subject (default: random, 40%% of subjects)",
    )
    parser.add_argument(
        "--motion-grading",
        choices=MOTION_GRADINGS,
        default="displacement",
        help="displacement: the grade sets the size of the moves; visible: plans are redrawn until "
        "what shows lies in the grade's band (docs/synthetic-data.md)",
    )
    parser.add_argument(
        "--nprocs", type=int, default=1, help="worker processes (default 1; each holds ~1.5 GB)"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-image progress lines")
    return parser


def missing_extra() -> str | None:
    """What to install when the [synth] extra is missing: the engine's anatomy comes from nilearn's ICBM maps,
    imported only when it renders (in worker processes with --nprocs), where a bare ModuleNotFoundError helps no one."""
    try:
        importlib.import_module("nilearn")
    except ImportError as exc:
        return (
            f"flairqc-synth needs the [synth] extra ({exc}): pip install 'flairqc[synth]' "
            "(in a source tree: pip install '.[synth]')"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = missing_extra()
    if missing:
        print(missing, file=sys.stderr)
        return EXIT_FAILURE
    if args.n_subjects < 1 or args.nprocs < 1:
        print("flairqc-synth: --n-subjects and --nprocs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    lesions = {"random": None, "always": True, "never": False}[args.lesions]
    config = SynthConfig(grid=args.grid, lesions=lesions, motion_grading=args.motion_grading)
    start = time.perf_counter()
    root = write_dataset(
        args.out_dir,
        args.n_subjects,
        args.seed,
        args.modalities,
        args.straight_reject_fraction,
        args.artefact_fraction,
        config,
        args.nprocs,
        progress=not args.quiet,
    )
    print(f"flairqc-synth: wrote {root} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
