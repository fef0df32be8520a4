"""Benchmark: does an ensemble of runs depend less on the run than one run does? (flairqc-train ensemble)

Trains --seeds runs of one task (SSDA, fold 0; each seed has its own initial weights, batches and folds) on
bench_ssda.py's synthetic data plus a validation part, then makes disjoint ensembles of --size runs. For single
runs and for ensembles it reports the test balanced accuracy (each at its own threshold), how often two of them
decide differently on the same test image, and how they read images unlike their training data: the real 3D FLAIR
of ../shared/realdata-dev as the BIDS-App preprocesses it (fast recipe), clean and with the engine's artefact of the
task at grades 1 and 2, and the CI guard's clean FLAIR and its images of the artefact at grades 1 and 2 through
the same preprocessing (bench_run_probes.py). bench_ssda's data skip N4 and registration (flairqc_app/train/
synthetic.py), so the probe images are further from these models' training data than from the default models': a
stress test of the run-to-run spread, not figures of the default models. `--motion-grading visible` grades the
motion of the data and of the probes by what shows (docs/synthetic-data.md).

    python benchmarks/bench_ensemble.py --out /tmp/bench-ensemble      # defaults: about 6 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from bench_run_probes import probabilities, probe_images  # noqa: E402 (its own folder)
from bench_ssda import add_data_arguments, cached, train_settings  # noqa: E402

from flairqc_app.train.ensemble import build, load_trained
from flairqc_app.train.evaluate import predict_run
from flairqc_app.train.metrics import balanced_accuracy
from flairqc_app.train.runner import train_run


@dataclass(frozen=True)
class Reading:
    """One model's figures: test decisions and BA at its threshold, and its probabilities of the probe images."""

    name: str
    threshold: float
    test_ba: float
    test_decisions: np.ndarray
    probes: dict[str, float]


def reading(name: str, model_dir: Path, probes: dict[str, np.ndarray]) -> Reading:
    predictions = predict_run(model_dir, name)[0]
    trained = load_trained(model_dir, torch.device("cpu"))
    return Reading(
        name,
        predictions.threshold,
        balanced_accuracy(predictions.labels, predictions.prediction),
        predictions.prediction,
        probabilities(trained.model, probes),
    )


def disagreement(readings: list[Reading]) -> float:
    """Mean over pairs of the fraction of test images the two decide differently."""
    pairs = list(itertools.combinations(readings, 2))
    return statistics.fmean(float(np.mean(a.test_decisions != b.test_decisions)) for a, b in pairs)


def summary_rows(group: str, readings: list[Reading]) -> list[str]:
    ba = [r.test_ba for r in readings]
    rows = [
        f"| {group} | test BA % | {100 * statistics.median(ba):.1f} [{100 * min(ba):.1f}, {100 * max(ba):.1f}] |",
        f"| {group} | test images decided differently by two of them | {100 * disagreement(readings):.1f} % |",
    ]
    for probe in readings[0].probes:
        p = [r.probes[probe] for r in readings]
        over = sum(r.probes[probe] >= r.threshold for r in readings)
        rows.append(
            f"| {group} | {probe}: probability SD, range; positive | {statistics.pstdev(p):.3f}, "
            f"{min(p):.2f}-{max(p):.2f}; {over} of {len(p)} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_arguments(parser)
    parser.set_defaults(n_validation=30)
    parser.add_argument("--seeds", type=int, default=12, help="single runs (training seeds 0 .. seeds-1)")
    parser.add_argument("--size", type=int, default=3, help="runs per ensemble (disjoint ensembles)")
    args = parser.parse_args()
    if args.seeds < 2 * args.size or args.n_validation < 1:
        parser.error("needs at least two disjoint ensembles (--seeds >= 2 * --size) and a validation part")
    logging.basicConfig(level=logging.WARNING)
    tic = time.perf_counter()
    cache = cached(args)
    data_seconds = time.perf_counter() - tic
    probes = probe_images(args.task.split("_")[0], tuple(args.shape), args.motion_grading)
    settings = train_settings(args)
    singles, train_seconds = [], []
    for seed in range(args.seeds):
        tic = time.perf_counter()
        run = args.out / "runs" / f"seed-{seed}"
        train_run(replace(settings, seed=seed), cache.root, run, folds=[0])
        train_seconds.append(time.perf_counter() - tic)
        singles.append(reading(f"run seed {seed}", run, probes))
    ensembles = []
    for first in range(0, args.seeds - args.size + 1, args.size):
        seeds = list(range(first, first + args.size))
        directory = args.out / "ensembles" / "-".join(map(str, seeds))
        build([args.out / "runs" / f"seed-{s}" for s in seeds], directory, torch.device("cpu"))
        ensembles.append(reading(f"ensemble of seeds {', '.join(map(str, seeds))}", directory, probes))

    print(
        f"task {args.task}: {args.seeds} runs (SSDA, fold 0 of {args.folds}, {args.pretrain_epochs}+{args.epochs} "
        f"epochs, input {args.shape}), ensembles of {args.size}; motion graded by {args.motion_grading} (data and "
        f"probes); data: bench_ssda's shortcut ({args.n_source} T1w, "
        f"{args.n_labelled} + {args.n_unlabelled} FLAIR, {args.n_validation} validation, {args.n_test} test), "
        f"{data_seconds:.0f} s; training median {statistics.median(train_seconds):.0f} s per run"
    )
    print("\n| model | threshold | test BA % | " + " | ".join(probes) + " |")
    print("|---|---|---|" + "---|" * len(probes))
    for r in singles + ensembles:
        print(
            f"| {r.name} | {r.threshold:.2f} | {100 * r.test_ba:.1f} | "
            + " | ".join(f"{r.probes[p]:.2f}{' +' if r.probes[p] >= r.threshold else ''}" for p in probes)
            + " |"
        )
    print("\n(+: at or over the model's threshold)\n\n| models | figure | value |\n|---|---|---|")
    print(
        "\n".join(summary_rows("single runs", singles) + summary_rows(f"ensembles of {args.size}", ensembles))
    )


if __name__ == "__main__":
    main()
