"""The real-proxy set through the BIDS-App, scored on issue 31's "Done when" (flairqc_app/train/proxy.py).

The realdata-dev 3D FLAIR is presented in every variant (brain extracted, MNI 1 mm, skull-stripped float on MNI,
cropped, float with offset, uint8, reoriented, 1x1x1.5 mm, background zeroed, as acquired), clean and degraded by
TorchIO at levels 1 and 2 of motion, noise and contrast; the T1w, T2w and 2D FLAIR of realdata-dev go with them as
the images that must be rejected. One `flairqc participant` run (through whatever preprocessing the app has)
grades them all, and the benchmark prints:

1. every clean variant: its verdict (must pass, tier 1);
2. the degraded cases graded at or above their applied level, per artefact (motion on its own) and in all
   (target >= 90 %), and every variant's predicted grades;
3. proxy images straight-rejected (target none), and the real rejects rejected;
4. the same criteria with thresholds calibrated on the set (flairqc_app/train/calibrate.py), in-sample and with
   each variant held out of its own calibration, and how each threshold was set.

The table of every image (variant, artefact, level, drawn parameters, verdict, probabilities) is written to
OUT/proxy-cases.tsv: `flairqc-train calibrate --proxy OUT/proxy-cases.tsv` sets thresholds from it again.
Default grid: one draw per (artefact, level), 10 variants: 70 proxy images + 3 rejects (about 30 min on 2 busy
cores); `--seeds 3` is the full grid (three draws: 193 images).

    python benchmarks/bench_real_proxy.py [--models-dir DIR] [--seeds 1] [--variants native,cropped] [--out DIR]
    python benchmarks/bench_real_proxy.py --table OUT/proxy-cases.tsv   (score a kept table again, no app run)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
from bench_default_models import REAL, REALDATA, flair_dataset, run_app  # noqa: E402 (its own folder)

from flairqc_app.config import ARTEFACTS, DEFAULT_MODELS_DIR, TASKS
from flairqc_app.manifest import read_manifest
from flairqc_app.train import calibrate, proxy

REJECTS = ("t1w", "t2w", "flair2d")  # realdata-dev images that must be rejected
VERDICT_COLUMNS = (
    "status",
    "reason",
    "straight_reject",
    "reject_source",
    *ARTEFACTS,
    "tier",
    *(f"p_{t}" for t in TASKS),
)


def build(scratch: Path, variants: tuple[str, ...], seeds: tuple[int, ...]) -> tuple[Path, list[dict]]:
    """The BIDS dataset of the set (one subject per image) and its plan rows."""
    clean = nib.load(str(REALDATA / f"{REAL['flair3d']}.nii.gz"))
    anchor = proxy.anchor_of(clean, scratch)
    cases = proxy.plan_cases(variants, seeds=seeds)
    rendered = scratch / "rendered"
    rendered.mkdir(exist_ok=True)
    images = {}
    for case in cases:  # one image in memory at a time: the dataset writer reads them back from disk
        nib.save(proxy.render(clean, anchor, case), str(rendered / f"{case.name}.nii.gz"))
        images[case.name] = nib.load(str(rendered / f"{case.name}.nii.gz"))
    plans = [case.record() for case in cases]
    for name in REJECTS:
        label = f"reject{name}"
        images[label] = nib.load(str(REALDATA / f"{REAL[name]}.nii.gz"))
        plans.append(proxy.ProxyCase(f"{calibrate.REJECT_PREFIX}{name}").record() | {"case": label})
    return flair_dataset(scratch / "bids", images), plans


def run(args: argparse.Namespace) -> Path:
    scratch = args.out or Path(tempfile.mkdtemp(prefix="bench-real-proxy-"))
    scratch.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    bids, plans = build(scratch, args.variants, tuple(range(args.seeds)))
    built = time.perf_counter() - tic
    options = (
        "-w",
        str(scratch / "work"),
        "--nprocs",
        str(args.nprocs),
        "--omp-nthreads",
        str(args.omp_nthreads),
    )
    got = run_app(bids, scratch / "out", args.models_dir, "fast", options)
    ran = time.perf_counter() - tic - built
    missing = [p["case"] for p in plans if p["case"] not in got]
    if missing:
        raise SystemExit(
            f"the app wrote no verdict for {', '.join(missing)} (see {scratch / 'out' / 'logs'})"
        )
    rows = [p | {k: got[p["case"]].get(k) for k in VERDICT_COLUMNS} for p in plans]
    table = scratch / "proxy-cases.tsv"
    calibrate.write_cases(table, rows)
    print(
        f"{len(plans)} images: set built in {built:.0f} s, flairqc participant in {ran:.0f} s "
        f"({ran / len(plans):.1f} s per image, --nprocs {args.nprocs} --omp-nthreads {args.omp_nthreads})"
    )
    return table


def verdict_text(v: dict) -> str:
    if v["straight_reject"]:
        return "rejected"
    return f"tier {v['tier']} (m{v['motion']} n{v['noise']} c{v['contrast']})"


def share(hit: int, n: int) -> str:
    """n / N, its percentage and the Wilson 95 % interval."""
    if not n:
        return "-"
    low, high = calibrate.wilson(hit, n)
    return f"{hit}/{n} ({100 * hit / n:.0f} % [{100 * low:.0f}, {100 * high:.0f}])"


def print_criteria(name: str, c: calibrate.Criteria) -> None:
    graded = {k: share(*v) for k, v in c.graded.items()}
    print(
        f"| {name} | {share(c.clean_tier1, c.clean)} | {graded['motion']} | {graded['noise']} | "
        f"{graded['contrast']} | {graded['all']} | {c.straight_rejected}/{c.proxy} | "
        f"{c.rejects_rejected}/{c.rejects} |"
    )


def report(rows: list[dict], manifest_thresholds: dict[str, float]) -> None:
    print("\n| variant | clean | " + " | ".join(f"{a} {lv}" for a in ARTEFACTS for lv in (1, 2)) + " |")
    print("|---" * (2 + 2 * len(ARTEFACTS)) + "|")
    for variant in dict.fromkeys(r["variant"] for r in rows if not calibrate.is_reject(r)):
        mine = [r for r in rows if r["variant"] == variant]
        cells = [
            verdict_text(calibrate.verdict_under(r, manifest_thresholds)) for r in mine if r["level"] == 0
        ]
        for a in ARTEFACTS:
            for lv in (1, 2):
                got = [
                    calibrate.verdict_under(r, manifest_thresholds)
                    for r in mine
                    if (r["artefact"], r["level"]) == (a, lv)
                ]
                cells.append(", ".join("R" if v["straight_reject"] else str(v[a]) for v in got))
        print(f"| {variant} | " + " | ".join(cells) + " |")
    print("\n(artefact cells: the grade given to that artefact, one per draw; R: straight-rejected)")
    for r in rows:
        if calibrate.is_reject(r):
            print(
                f"{r['variant']}: {r['status']}, straight_reject {r['straight_reject']} ({r['reject_source']}), "
                f"p_straight_reject {r['p_straight_reject']}"
            )
    records = calibrate.calibrate(rows)
    print(
        "\n(n/N, % and Wilson 95 % interval)\n| thresholds | clean tier 1 | motion >= level | noise >= level | "
        "contrast >= level | all >= level (target 90 %) | proxy straight-rejected (target 0) | real rejects "
        "rejected |\n" + "|---" * 8 + "|"
    )
    print_criteria("shipped (models.json)", calibrate.criteria(rows, manifest_thresholds))
    print_criteria(
        "calibrated on the set (in-sample)", calibrate.criteria(rows, calibrate.thresholds_of(records))
    )
    print_criteria("calibrated, each variant held out", calibrate.leave_one_variant_out(rows))
    print(
        "\n| task | shipped | calibrated | hard bound | positives at or above | negatives below | rule |\n"
        + "|---" * 7
        + "|"
    )
    for r in records:
        print(
            f"| {r.task} | {manifest_thresholds[r.task]:.3f} | {r.threshold:.3f} | {r.hard_bound:.3f} | "
            f"{r.positives_at_or_above}/{r.positives} | {r.negatives_below}/{r.negatives} | {r.rule} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument(
        "--seeds", type=int, default=1, help="draws per (artefact, level); 3 is the full grid"
    )
    parser.add_argument("--variants", type=lambda s: tuple(s.split(",")), default=tuple(proxy.VARIANTS))
    parser.add_argument("--nprocs", type=int, default=1)
    parser.add_argument("--omp-nthreads", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, help="keep the dataset, outputs and table here (default: a temp dir)"
    )
    parser.add_argument(
        "--table", type=Path, help="score this proxy-cases.tsv again instead of running the app"
    )
    args = parser.parse_args()
    if args.table is None and not (REALDATA / f"{REAL['flair3d']}.nii.gz").exists():
        print(f"no real images in {REALDATA}")
        return 1
    manifest, specs = read_manifest(args.models_dir)
    print(f"models: {manifest.get('name')} {manifest.get('version')} ({args.models_dir})")
    table = args.table or run(args)
    report(calibrate.read_cases(table), {t: s.threshold for t, s in specs.items()})
    print(f"\ntable: {table}; thresholds: flairqc-train calibrate --proxy {table} --out DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
