"""Benchmark: does SSDA do its job on synthetic data? SSDA vs target-only, source-only and DANN-like.

Source = labelled synthetic T1w; target = synthetic FLAIR with few labels (default 30) and many unlabelled;
all methods are scored on the same labelled FLAIR test set (balanced accuracy, 95% bootstrap CI over 1000
resamples, McNemar SSDA vs each baseline). Images come from the synthetic data engine through
flairqc_app.train.synthetic, which skips N4 and registration (see its docstring: the shortcut is stated in
the output).

    python benchmarks/bench_ssda.py --out /tmp/bench            # defaults: a few minutes on 2 idle CPU cores
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from flairqc_app.config import ARTEFACTS
from flairqc_app.synth.params import MOTION_GRADINGS
from flairqc_app.synth.plan import CaseSpec
from flairqc_app.train import settings as settings_mod
from flairqc_app.train.cache import CacheRecipe, VolumeCache
from flairqc_app.train.evaluate import compare_predictions, evaluate_predictions, predict_run
from flairqc_app.train.runner import train_run
from flairqc_app.train.synthetic import Item, build_cache

METHODS = ("ssda", "dann", "target-only", "source-only")


def plan(args: argparse.Namespace) -> list[Item]:
    """Every image: the task's artefact graded 0/1/2 with probabilities 0.5/0.25/0.25, the other artefacts
    mostly absent; test FLAIRs are other participants than the training ones."""
    rng = np.random.default_rng(args.seed)
    artefact = args.task.split("_")[0]
    blocks = [
        ("source", "s", True, "trainval", args.n_source),
        ("target", "t", True, "trainval", args.n_labelled),
        ("target", "x", True, "test", args.n_test),
        ("target", "u", False, "trainval", args.n_unlabelled),
        ("target", "v", True, "validation", args.n_validation),
    ]
    items = []
    for domain, prefix, labelled, split, count in blocks:
        for i in range(count):
            grades = {a: int(rng.choice(3, p=(0.8, 0.15, 0.05))) for a in ARTEFACTS}
            grades[artefact] = int(rng.choice(3, p=(0.5, 0.25, 0.25)))
            seed = args.seed * 100003 + len(items)
            spec = CaseSpec(
                i, "T1w" if domain == "source" else "FLAIR", seed, seed, **(grades if labelled else {})
            )
            items.append(Item(spec, domain, f"sub-{prefix}{i:04d}", labelled, split))
    return items


def cached(args: argparse.Namespace) -> VolumeCache:
    """The benchmark's cache, rebuilt only when the plan changes."""
    fingerprint = json.dumps(
        {
            k: getattr(args, k)
            for k in (
                "task",
                "n_source",
                "n_labelled",
                "n_unlabelled",
                "n_test",
                "n_validation",
                "shape",
                "seed",
                "motion_grading",
            )
        }
    )
    stamp = args.out / "cache" / "bench.json"
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return VolumeCache(args.out / "cache")
    recipe = CacheRecipe(tuple(args.shape), dtype="float32", motion_grading=args.motion_grading)
    cache = build_cache(args.out / "cache", plan(args), recipe, args.jobs)
    stamp.write_text(fingerprint)
    return cache


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The synthetic data and training sizes (shared with bench_ensemble.py)."""
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--task", default="motion_moderate")
    parser.add_argument("--n-source", type=int, default=60)
    parser.add_argument("--n-labelled", type=int, default=30)
    parser.add_argument("--n-unlabelled", type=int, default=40)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--n-validation", type=int, default=0, help="labelled FLAIR held out of every fold")
    parser.add_argument("--shape", type=int, nargs=3, default=[36, 44, 38], help="model input (~4.7 mm)")
    parser.add_argument(
        "--motion-grading",
        choices=MOTION_GRADINGS,
        default="displacement",
        help="how a motion plan earns its grade (docs/synthetic-data.md)",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)


def train_settings(args: argparse.Namespace) -> settings_mod.TrainSettings:
    return settings_mod.from_dict(
        {
            "task": args.task,
            "epochs": args.epochs,
            "pretrain_epochs": args.pretrain_epochs,
            "folds": args.folds,
            "batch_size": 10,
            "lr0": 1e-3,
            "seed": args.seed,
            "device": "auto",
            "model": {
                "input_shape": list(args.shape),
                "channels": [8, 16, 32, 32, 64],
                "head": "gap",
                "hidden": [64, 32],
                "dropout": 0.2,
            },
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_arguments(parser)
    parser.add_argument("--train-folds", type=int, default=1, help="folds actually trained (time)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tic = time.perf_counter()
    cache = cached(args)
    data_seconds = time.perf_counter() - tic
    settings = train_settings(args)
    predictions, timings = {}, {}
    for method in METHODS:
        tic = time.perf_counter()
        run = args.out / "runs" / method
        train_run(
            settings_mod.from_dict({"method": method}, settings),
            cache.root,
            run,
            folds=list(range(args.train_folds)),
        )
        predictions[method] = predict_run(run, method)[0]
        timings[method] = time.perf_counter() - tic
    metrics = evaluate_predictions(list(predictions.values()), args.out / "eval", f"bench_ssda: {args.task}")
    ref = predictions["ssda"]
    labels = {(ref.task, k): int(y) for k, y in zip(ref.keys, ref.labels)}
    as_map = {m: {(p.task, k): int(d) for k, d in zip(p.keys, p.prediction)} for m, p in predictions.items()}
    tests = [compare_predictions(as_map["ssda"], as_map[m], labels, "ssda", m)[0] for m in METHODS[1:]]
    counts = {d: sum(1 for s in cache.read_samples() if s.domain == d) for d in ("source", "target")}
    print(
        "data: synthetic data engine, grid 2mm, N4 and registration skipped (flairqc_app/train/synthetic.py)"
    )
    print(
        f"task {args.task}; source {args.n_source} labelled T1w; target {args.n_labelled} labelled + "
        f"{args.n_unlabelled} unlabelled FLAIR for training, {args.n_test} labelled FLAIR for test "
        f"({counts}); input {args.shape}; {args.folds}-fold CV, {args.train_folds} fold(s) trained; "
        f"{args.pretrain_epochs}+{args.epochs} epochs; data {data_seconds:.0f} s"
    )
    print("\n| method | BA % [95% CI] | sensitivity | specificity | McNemar p vs SSDA | train s |")
    print("|---|---|---|---|---|---|")
    for row in metrics:
        m = row["approach"]
        p = next((t["p_value"] for t in tests if t["b"] == m), None)
        print(
            f"| {m} | {100 * row['balanced_accuracy']:.1f} [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"
            f" | {row['sensitivity']:.2f} | {row['specificity']:.2f} | {'-' if p is None else f'{p:.3g}'}"
            f" | {timings[m]:.0f} |"
        )
    print(f"\nfull outputs: {args.out / 'eval'} (metrics.tsv, predictions.tsv, report.html)")


if __name__ == "__main__":
    main()
