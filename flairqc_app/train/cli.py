"""`flairqc-train`: prepare (preprocess + cache), train, evaluate, compare, export.

flairqc-train prepare --source T1W_BIDS --target FLAIR_BIDS --cache CACHE [--input-shape 85 104 90]
flairqc-train synth-cache --recipe data.toml --cache CACHE      (synthetic data, registration skipped)
flairqc-train train --cache CACHE --run RUN --task motion_severe --method ssda [--config cfg.toml]
flairqc-train ensemble --runs RUN_A RUN_B ... --out ENSEMBLE [--combine median]   (mean or median probability)
flairqc-train evaluate --runs RUN_A RUN_B ... --name ssda --out EVAL    (runs or ensembles, one per task)
flairqc-train evaluate --models-dir MODELS --cache CACHE --name shipped --out EVAL
flairqc-train compare EVAL_A EVAL_B --out CMP
flairqc-train export --runs RUN_A ... --models-dir MODELS [--metrics EVAL]    (runs or ensembles)
flairqc-train consensus --ratings A.tsv B.tsv ... --out BIDS/labels.tsv    (the reports' rating exports)
flairqc-train calibrate --proxy proxy-cases.tsv --out DIR   (thresholds on the real-proxy set)
flairqc-train assemble --candidate single=MODELS:proxy-cases.tsv ... --prefer single --out DIR --manifest-version V
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from flairqc_app.config import DEFAULT_PREPROC, GRID_SHAPE, PREPROC_RECIPES
from flairqc_app.train.labels import ALL_TASKS
from flairqc_app.train.methods import METHOD_CHOICES
from flairqc_app.train.settings import COMBINATIONS, INPUT_REGIONS


def _comma_list(text: str) -> tuple[str, ...]:
    """Names of a comma-separated option, empty ones dropped ('' gives none)."""
    return tuple(name for name in text.split(",") if name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flairqc-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="preprocess the source and target BIDS datasets into a cache (once)")
    p.add_argument(
        "--source", type=Path, required=True, help="BIDS dataset of labelled T1w (labels.tsv at its root)"
    )
    p.add_argument(
        "--target", type=Path, required=True, help="BIDS dataset of FLAIR (labelled subset + unlabelled)"
    )
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument(
        "--input-shape",
        type=int,
        nargs=3,
        default=list(GRID_SHAPE),
        metavar=("X", "Y", "Z"),
        help="model input resolution (default: the 1 mm grid); e.g. 85 104 90 for ~2 mm",
    )
    p.add_argument("--recipe", choices=sorted(PREPROC_RECIPES), default=DEFAULT_PREPROC)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--same-subjects",
        action="store_true",
        help="participant ids of both datasets are the same people (split them together)",
    )
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    p.add_argument(
        "--validation-participants",
        type=_comma_list,
        default=(),
        metavar="sub-X[,sub-Y...]",
        help="target participants held out of training for model selection and thresholds (every fold)",
    )

    s = sub.add_parser(
        "synth-cache",
        help="draw a cache from the synthetic data engine (no files, no registration; "
        "see flairqc_app/train/synthetic.py)",
    )
    s.add_argument(
        "--recipe",
        type=Path,
        required=True,
        help="TOML: input_shape, grid, dtype, preprocess (a recipe name, or absent for the shortcut), "
        "motion_grading (displacement | visible), randomise (domain randomisation, default false) "
        "and [[parts]] (e.g. tools/default-models/data.toml)",
    )
    s.add_argument("--cache", type=Path, required=True)
    s.add_argument("--jobs", type=int, default=1)

    t = sub.add_parser("train", help="train the k folds of one task and method, then select the model")
    t.add_argument("--cache", type=Path, required=True)
    t.add_argument("--run", type=Path, required=True, help="run directory (checkpoints, curves, selection)")
    t.add_argument("--config", type=Path, help="JSON or TOML settings file (see docs/training.md)")
    t.add_argument("--task", choices=ALL_TASKS)
    t.add_argument("--method", choices=METHOD_CHOICES)
    t.add_argument("--epochs", type=int)
    t.add_argument("--pretrain-epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr0", type=float)
    t.add_argument("--folds", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--device", choices=("auto", "cpu", "cuda"))
    t.add_argument("--threads", type=int)
    t.add_argument(
        "--source-as-rejects",
        action="store_const",
        const=True,
        help="straight_reject: labelled source (T1w) images train as rejects (T1w saved as FLAIR)",
    )
    t.add_argument(
        "--augment",
        type=_comma_list,
        metavar="NAME[,NAME...]",
        help="training-time augmentations, comma-separated ('' for none)",
    )
    t.add_argument("--head", choices=("fc3", "gap"), help="fc3: Conv5_FC3 (paper); gap: compact head")
    t.add_argument("--channels", type=int, nargs="+")
    t.add_argument(
        "--input-region",
        choices=INPUT_REGIONS,
        help="what the network sees: the whole image (default) or the template brain + 6 mm",
    )
    t.add_argument("--hidden", type=int, nargs="+")
    t.add_argument("--only-fold", type=int, nargs="+", dest="only_folds", help="train only these folds")
    t.add_argument("--resume", action="store_true", help="continue the run from its last checkpoints")

    n = sub.add_parser(
        "ensemble",
        help="one model of the trained folds of runs of one task: their mean "
        "probability, threshold on the images none of them trained on",
    )
    n.add_argument("--runs", type=Path, nargs="+", required=True, help="runs of one task on one cache")
    n.add_argument("--out", type=Path, required=True, help="ensemble directory (evaluate and export take it)")
    n.add_argument(
        "--combine",
        choices=COMBINATIONS,
        default="mean",
        help="how the members' probabilities are combined (median: not led by one member)",
    )

    e = sub.add_parser(
        "evaluate", help="test-split metrics of one approach (one run per task, or exported models)"
    )
    given = e.add_mutually_exclusive_group(required=True)
    given.add_argument("--runs", type=Path, nargs="+", help="run or ensemble directories, one per task")
    given.add_argument(
        "--models-dir", type=Path, help="an exported model set (models.json), on --cache's test split"
    )
    e.add_argument("--cache", type=Path, help="with --models-dir: the cache whose test split is scored")
    e.add_argument("--name", required=True, help="approach name in tables and plots")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--resamples", type=int, default=1000)
    e.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("compare", help="McNemar tests between two `evaluate` outputs")
    c.add_argument("eval_a", type=Path)
    c.add_argument("eval_b", type=Path)
    c.add_argument("--out", type=Path, required=True)

    x = sub.add_parser("export", help="ONNX of F + C_T and its models.json entry, for flairqc --models-dir")
    x.add_argument("--runs", type=Path, nargs="+", required=True, help="run or ensemble directories")
    x.add_argument("--models-dir", type=Path, required=True)
    x.add_argument("--model-version", default="1.0.0")
    x.add_argument(
        "--metrics", type=Path, help="an `evaluate` output dir: its test metrics go in the provenance"
    )
    x.add_argument("--name", default="flairqc-site", help="manifest name (new manifests only)")
    x.add_argument(
        "--manifest-version",
        help="the set's version (a new manifest: 1.0.0 if not given; an existing one: replaced if given)",
    )
    x.add_argument("--description", default="trained with flairqc-train")

    r = sub.add_parser(
        "consensus",
        help="merge raters' label files (the reports' rating export) into consensus "
        "labels, with Cohen's kappa, balanced accuracy and the disagreements",
    )
    r.add_argument(
        "--ratings", type=Path, nargs="+", required=True, help="ratings TSVs (one or more per rater)"
    )
    r.add_argument(
        "--out", type=Path, required=True, help="consensus labels.tsv (e.g. at the FLAIR dataset's root)"
    )
    r.add_argument("--disagreements", type=Path, help="default: OUT's name with _disagreements.tsv")
    r.add_argument(
        "--agreement",
        type=Path,
        help="kappa and balanced accuracy as JSON; default: OUT's name with _agreement.json",
    )

    k = sub.add_parser(
        "calibrate",
        help="thresholds from the real-proxy set's table (benchmarks/bench_real_proxy.py):"
        " every clean variant tier 1, graded degradations over them in order",
    )
    k.add_argument("--proxy", type=Path, required=True, help="proxy-cases.tsv written by bench_real_proxy.py")
    k.add_argument(
        "--out",
        type=Path,
        required=True,
        help="writes thresholds.json (flairqc --thresholds) and calibration.json (how each was set)",
    )

    a = sub.add_parser(
        "assemble",
        help="one model set of candidates scored on the real-proxy set: per task the "
        "--prefer candidate unless another is measurably better there; thresholds "
        "calibrated on the set",
    )
    a.add_argument(
        "--candidate",
        action="append",
        required=True,
        metavar="NAME=MODELS_DIR:PROXY_TSV",
        help="a models directory and its bench_real_proxy.py table (repeat)",
    )
    a.add_argument("--prefer", required=True, help="the candidate kept unless another is measurably better")
    a.add_argument(
        "--margin", type=int, default=2, help="proxy images more on their side that count as better"
    )
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--manifest-version", required=True)
    return parser


def _assemble(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from flairqc_app.train.calibrate import assemble, calibrate, on_side, prefer, read_cases

    dirs, records = {}, {}
    for text in args.candidate:
        name, _, rest = text.partition("=")
        models, _, table = rest.rpartition(":")
        if not (name and models and table):
            parser.error(f"--candidate {text!r}: expected NAME=MODELS_DIR:PROXY_TSV")
        dirs[name], records[name] = Path(models), calibrate(read_cases(Path(table)))
    if args.prefer not in dirs:
        parser.error(f"--prefer {args.prefer!r} is not a candidate ({', '.join(dirs)})")
    choice = prefer(records, args.prefer, args.margin)
    assemble(dirs, records, choice, args.out, args.manifest_version)
    for task, name in choice.items():
        scores = ", ".join(
            f"{n} {on_side(next(r for r in recs if r.task == task))}" for n, recs in records.items()
        )
        print(f"{task}: {name} (proxy images on their side: {scores})")
    print(f"wrote {args.out}")


def _calibrate(args: argparse.Namespace) -> None:
    from flairqc_app.train.calibrate import calibrate, criteria, read_cases, thresholds_of, write_calibration

    rows = read_cases(args.proxy)
    records = calibrate(rows)
    for r in records:
        print(
            f"{r.task}: {r.threshold:.3f} (above {r.hard_bound:.3f}; positives {r.positives_at_or_above}/"
            f"{r.positives} at or above, negatives {r.negatives_below}/{r.negatives} below)"
        )
    scored = criteria(rows, thresholds_of(records))
    hit, n = scored.graded["all"]
    print(
        f"in-sample: clean tier 1 {scored.clean_tier1}/{scored.clean}, graded at or above their level {hit}/{n}, "
        f"proxy straight-rejected {scored.straight_rejected}/{scored.proxy}"
    )
    thresholds, how = write_calibration(records, args.out)
    print(f"wrote {thresholds} and {how}")


def _consensus(args: argparse.Namespace) -> int:
    import json

    from flairqc_app.train import consensus

    try:
        ratings = [rating for path in args.ratings for rating in consensus.read_ratings(path)]
    except (OSError, ValueError) as exc:
        print(f"flairqc-train consensus: {exc}", file=sys.stderr)
        return 2
    if not ratings:
        print(
            "flairqc-train consensus: no complete rating in " + ", ".join(map(str, args.ratings)),
            file=sys.stderr,
        )
        return 2
    result = consensus.build_consensus(ratings)
    stem = args.out.with_suffix("")
    disagreements = args.disagreements or stem.with_name(stem.name + "_disagreements.tsv")
    agreement = args.agreement or stem.with_name(stem.name + "_agreement.json")
    consensus.write_labels(args.out, result)
    consensus.write_disagreements(disagreements, result)
    agreement.write_text(
        json.dumps(
            {
                "cohen_kappa": result.kappa,
                "balanced_accuracy": result.balanced_accuracy,
                "images": len(result.labels),
                "disagreements": len(result.disagreements),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print("\n".join(consensus.summary(result)))
    print(f"consensus labels: {args.out}; disagreements to re-read together: {disagreements}")
    return 0


def _train(args: argparse.Namespace) -> None:
    from flairqc_app.train import settings as settings_mod
    from flairqc_app.train.cache import VolumeCache
    from flairqc_app.train.runner import train_run

    overrides = {
        "task": args.task,
        "method": args.method,
        "epochs": args.epochs,
        "pretrain_epochs": args.pretrain_epochs,
        "batch_size": args.batch_size,
        "lr0": args.lr0,
        "folds": args.folds,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "source_as_rejects": args.source_as_rejects,
        "augment": args.augment,
    }
    settings = settings_mod.load(args.config, overrides)
    model = {
        "input_shape": VolumeCache(args.cache).shape,
        "head": args.head,
        "channels": tuple(args.channels) if args.channels else None,
        "hidden": tuple(args.hidden) if args.hidden else None,
        "input_region": args.input_region,
    }
    settings = replace(
        settings, model=replace(settings.model, **{k: v for k, v in model.items() if v is not None})
    )
    selection = train_run(settings, args.cache, args.run, args.only_folds, args.resume)
    print(
        f"{selection['task']} {selection['method']}: fold {selection['fold']} epoch {selection['epoch']}, "
        f"validation loss {selection['val_loss']:.4f}, threshold {selection['threshold']:.3f}"
    )


def _ensemble(args: argparse.Namespace) -> None:
    from flairqc_app.train.ensemble import build

    record = build(args.runs, args.out, combine=args.combine)
    print(
        f"{record['task']}: {args.combine} of {len(record['members'])} trained folds, "
        f"threshold {record['threshold']:.3f} (validation BA {record['val_ba_at_threshold']:.3f} "
        f"on {record['validation']['n']} images)"
    )


def _synth_cache(args: argparse.Namespace) -> None:
    import tomllib

    from flairqc_app.train.cache import CacheRecipe
    from flairqc_app.train.synthetic import Part, build_cache

    recipe = tomllib.loads(args.recipe.read_text(encoding="utf-8"))
    items = [item for part in recipe["parts"] for item in Part(**part).items()]
    cache = build_cache(
        args.cache,
        items,
        CacheRecipe(
            tuple(recipe["input_shape"]),
            recipe.get("preprocess"),
            recipe.get("dtype", "float16"),
            grid=recipe.get("grid", "2mm"),
            motion_grading=recipe.get("motion_grading", "displacement"),
            randomise=recipe.get("randomise", False),
        ),
        args.jobs,
    )
    print(f"{len(items)} synthetic images cached in {cache.root}")


def _export(args: argparse.Namespace) -> None:
    from flairqc_app.train.ensemble import read_record
    from flairqc_app.train.evaluate import read_tsv
    from flairqc_app.train.export import export_run

    test_metrics = {r["task"]: r for r in read_tsv(args.metrics / "metrics.tsv")} if args.metrics else {}
    for run in args.runs:
        task = read_record(run)["task"]
        entry = export_run(
            run,
            args.models_dir,
            args.model_version,
            metrics=test_metrics.get(task),
            name=args.name,
            version=args.manifest_version,
            description=args.description,
        )
        print(
            f"{task}: {entry['file']} threshold {entry['threshold']:.3f}, ONNX max |diff| "
            f"{entry['provenance']['onnx_check']['max_abs_difference']:.2e}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if args.command == "prepare":
        from flairqc_app.train.cache import CacheRecipe, prepare

        recipe = CacheRecipe(
            tuple(args.input_shape),
            args.recipe,
            args.dtype,
            test_fraction=args.test_fraction,
            seed=args.seed,
            same_subjects=args.same_subjects,
            validation_participants=frozenset(args.validation_participants),
        )
        samples = prepare(args.source, args.target, args.cache, recipe, args.jobs)
        print(f"{len(samples)} images cached in {args.cache}")
    elif args.command == "synth-cache":
        _synth_cache(args)
    elif args.command == "train":
        _train(args)
    elif args.command == "ensemble":
        _ensemble(args)
    elif args.command == "evaluate":
        from flairqc_app.train.evaluate import evaluate_models, evaluate_runs

        if args.models_dir is not None and args.cache is None:
            parser.error("evaluate --models-dir needs --cache (whose test split is scored)")
        rows = (
            evaluate_runs(args.runs, args.out, args.name, args.resamples, args.seed)
            if args.runs
            else evaluate_models(args.models_dir, args.cache, args.out, args.name, args.resamples, args.seed)
        )
        for row in rows:
            print(
                f"{row['task']}: BA {100 * row['balanced_accuracy']:.2f} "
                f"[{100 * row['ci_low']:.2f}, {100 * row['ci_high']:.2f}] (n={row['n']})"
            )
    elif args.command == "compare":
        from flairqc_app.train.evaluate import compare_dirs

        for row in compare_dirs(args.eval_a, args.eval_b, args.out):
            print(f"{row['task']}: McNemar p = {row['p_value']:.4g} (Bonferroni {row['p_bonferroni']:.4g})")
    elif args.command == "consensus":
        return _consensus(args)
    elif args.command == "calibrate":
        _calibrate(args)
    elif args.command == "assemble":
        _assemble(args, parser)
    else:
        _export(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
