"""Issue #36: the recipe before it (`before-36`) and the current `fast`, side by side in one run, on the same images.

Images: the real 3D FLAIR and T1w of ../shared/realdata-dev, four variants of the FLAIR (resliced to
1.1x1.1x1.3 mm, cropped, skull-stripped by the template brain mask, reoriented to PIR) and 8 synthetic 1 mm
FLAIR heads (flairqc_app.synth: clean, and grades 1 and 2 of motion, noise and contrast).
Every measurement is one image through gate, preprocessing, the seven shipped models and the report, in a fresh
subprocess (peak RSS is that image's), ANTs and onnxruntime on one thread (config.ANTS_THREADS). Runs alternate
old / new image by image, so that the load of a shared machine hits both alike; the real FLAIR and T1w run
`--reps` times, the others once (results are deterministic, only their timing varies).
Reported: per stage and in total the median wall and CPU seconds of each recipe and the ratio new/old; the
largest probability change and the changed verdicts (reject, tier); then `flairqc` itself at the new defaults on
the real FLAIR alone (one-image command line) and on all images (--nprocs from the CPUs: images per hour).
On a loaded machine wall time overstates the quiet figure; CPU time of single-threaded stages does not.
With `--baseline-checkout DIR` (another checkout of flairqc, e.g. `git worktree add DIR COMMIT`) the command-line
runs alternate that code and this one, `--cli-reps` times each, and report medians and new/old: a speed change
that keeps the recipe (same bytes) is measured there, since the recipe comparison cannot see it. The command-line
runs read their CPU time and peak RSS from GNU time (`/usr/bin/time`, Debian package `time`).

    python benchmarks/bench_speed.py [--reps 3] [--synthetic 8] [--no-cli | --cli-only]
                                     [--cli-reps 1] [--baseline-checkout DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flairqc_app.config import PREPROC_RECIPES, PreprocSettings, RegistrationSettings

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata-dev"
STAGES = ("load", "n4", "registration", "resample", "registration_retry", "inference", "report")
BEFORE_36 = PreprocSettings(  # `fast` as it was before issue #36 (flairqc 0.1.0 up to commit 7b1fd43)
    name="before-36",
    n4_shrink_factor=1,
    n4_iterations=(25, 25, 25),
    n4_tolerance=1e-4,
    n4_working_spacing_mm=4.0,
    n4_head_mask=True,
    registration=RegistrationSettings(
        spacing_mm=3.0, iterations=(500, 250), shrink_factors=(2, 1), smoothing_vox=(1, 0)
    ),
    retry_registration=RegistrationSettings(
        spacing_mm=2.0, iterations=(1000, 500, 250), shrink_factors=(4, 2, 1), smoothing_vox=(2, 1, 0)
    ),
)
RECIPES = {"old": BEFORE_36, "new": PREPROC_RECIPES["fast"]}
SYNTHETIC_GRADES = [(0, 0, 0), (0, 0, 0), (1, 0, 0), (2, 0, 0), (0, 1, 0), (0, 2, 0), (0, 0, 1), (0, 0, 2)]


def measure(job: dict) -> dict:
    """Subprocess: one image through the participant pipeline's stages, as participant.process_image runs them."""
    from flairqc_app import config
    from flairqc_app.gate import check_image
    from flairqc_app.grade import decide
    from flairqc_app.infer import load_models
    from flairqc_app.preprocess import preprocess_image
    from flairqc_app.report import render_participant_report

    models = load_models(config.DEFAULT_MODELS_DIR, "cpu", config.INFERENCE_THREADS)
    path = Path(job["path"])
    wall, cpu = time.perf_counter(), time.process_time()
    gate = check_image(path, {})
    if gate.status != "ok":
        raise RuntimeError(f"{path}: input gate says {gate.reason}: {gate.detail}")
    gate_wall, gate_cpu = time.perf_counter() - wall, time.process_time() - cpu
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as work:
        result = preprocess_image(gate.image, config.FLAIR_TEMPLATE, RECIPES[job["arm"]], Path(work))
    stages = {"wall": dict(result.timings), "cpu": dict(result.cpu_seconds)}
    stages["wall"]["load"] += gate_wall
    stages["cpu"]["load"] += gate_cpu
    tic, cpu_tic = time.perf_counter(), time.process_time()
    probabilities = models.predict(result.volume)
    stages["wall"]["inference"], stages["cpu"]["inference"] = (
        time.perf_counter() - tic,
        time.process_time() - cpu_tic,
    )
    verdict = decide(probabilities, models.thresholds)
    tic, cpu_tic = time.perf_counter(), time.process_time()
    row = {
        "bids_name": path.name,
        "status": "ok",
        "straight_reject": verdict.straight_reject,
        "tier": verdict.tier,
        **verdict.grades,
        **{f"p_{t}": p for t, p in probabilities.items()},
    }
    render_participant_report(row, gate.image, result.volume, models.thresholds)
    stages["wall"]["report"], stages["cpu"]["report"] = (
        time.perf_counter() - tic,
        time.process_time() - cpu_tic,
    )
    return {
        "stages": stages,
        "total_wall": time.perf_counter() - wall,
        "total_cpu": time.process_time() - cpu,
        "ncc": result.registration_ncc,
        "probabilities": probabilities,
        "verdict": {"straight_reject": verdict.straight_reject, "tier": verdict.tier},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_job(job: dict) -> dict:
    code = (
        f"import json,sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_speed as b; "
        "print(json.dumps(b.measure(json.loads(sys.argv[1]))))"
    )
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(job)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flair_variants(flair: Path, scratch: Path) -> list[Path]:
    """The real FLAIR resliced, cropped, skull-stripped by the template brain mask and reoriented."""
    import ants
    import nibabel as nib
    import numpy as np

    from flairqc_app import config
    from flairqc_app.preprocess import preprocess_image, to_ants

    img = nib.load(str(flair))
    data = np.asarray(img.dataobj, dtype=np.float32)
    out = {}
    resliced = ants.resample_image(to_ants(img), (1.1, 1.1, 1.3), use_voxels=False, interp_type=0)
    out["resliced"] = ants.to_nibabel_nifti(resliced)
    out["cropped"] = img.slicer[10:-10, 20:-10, 25:]
    transform = preprocess_image(img, config.FLAIR_TEMPLATE, PREPROC_RECIPES["fast"], scratch).transform
    mask = ants.image_read(str(config.BRAIN_MASK), pixeltype="float")
    on_subject = ants.apply_transforms(
        to_ants(img), mask, [str(transform)], interpolator="nearestNeighbor", whichtoinvert=[True]
    )
    out["skullstripped"] = nib.Nifti1Image(data * (on_subject.numpy() > 0.5), img.affine)
    ornt = nib.orientations.ornt_transform(
        nib.io_orientation(img.affine), nib.orientations.axcodes2ornt("PIR")
    )
    out["reoriented"] = img.as_reoriented(ornt)
    paths = []
    for name, variant in out.items():
        paths.append(scratch / f"flair-{name}.nii.gz")
        nib.save(variant, str(paths[-1]))
    return paths


def synthetic_heads(scratch: Path, count: int) -> list[Path]:
    import nibabel as nib

    from flairqc_app.synth import SynthConfig, generate_case

    paths = []
    for i, (motion, noise, contrast) in enumerate(SYNTHETIC_GRADES[:count]):
        img, _ = generate_case(36_000 + i, "FLAIR", motion, noise, contrast, config=SynthConfig(grid="1mm"))
        paths.append(scratch / f"synth-{i}-m{motion}n{noise}c{contrast}.nii.gz")
        nib.save(img, str(paths[-1]))
    return paths


def median_table(results: dict[str, list[dict]]) -> None:
    print(
        "| stage | old wall s | new wall s | new/old | old CPU s | new CPU s | new/old |\n"
        "|---|---|---|---|---|---|---|"
    )
    for stage in (*STAGES, "total"):
        cells = []
        for kind in ("wall", "cpu"):
            old, new = (
                statistics.median(
                    r[f"total_{kind}"] if stage == "total" else r["stages"][kind].get(stage, 0.0)
                    for r in results[arm]
                )
                for arm in ("old", "new")
            )
            cells += [f"{old:.2f}", f"{new:.2f}", f"{new / old:.2f}" if old > 0.005 else "-"]
        print(f"| {stage} | " + " | ".join(cells) + " |")


def compare_verdicts(runs: dict[str, dict[str, dict]]) -> None:
    print(
        "\n| image | old NCC | new NCC | old verdict | new verdict | largest change of a probability |\n"
        "|---|---|---|---|---|---|"
    )
    largest, changed = 0.0, 0
    for name, arms in runs.items():
        old, new = arms["old"], arms["new"]
        task, delta = max(
            ((t, abs(new["probabilities"][t] - p)) for t, p in old["probabilities"].items()),
            key=lambda item: item[1],
        )
        largest, changed = max(largest, delta), changed + (old["verdict"] != new["verdict"])
        show = {
            k: ("reject" if v["straight_reject"] else f"tier {v['tier']}")
            for k, v in (("o", old["verdict"]), ("n", new["verdict"]))
        }
        print(
            f"| {name} | {old['ncc']:.3f} | {new['ncc']:.3f} | {show['o']} | {show['n']} | {delta:.3f} ({task}) |"
        )
    print(
        f"\nlargest probability change {largest:.3f}; verdicts changed: {changed} of {len(runs)} "
        "(targets: within 0.03, none)"
    )


def cli_run(bids: Path, checkout: Path | None) -> dict:
    """One `flairqc participant` at its defaults, redoing every image (--force), with this code or `checkout`'s;
    wall and CPU seconds and the peak RSS of its largest process, from GNU time: a child of this (large) process
    would inherit its memory high-water mark across exec."""
    env = dict(os.environ, PYTHONPATH=str(checkout)) if checkout else None
    out = bids.with_name(bids.name + "-out")
    with tempfile.NamedTemporaryFile("r", suffix=".time") as usage:
        tic = time.perf_counter()
        exit_code = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S %M", "-o", usage.name, sys.executable, "-m", "flairqc_app"]
            + [str(bids), str(out), "participant", "--skip-bids-validation", "--force", "-q"],
            env=env,
            capture_output=True,
        ).returncode
        wall = time.perf_counter() - tic
        user, system, peak_kb = usage.read().split()[-3:]
    return {
        "exit": exit_code,
        "wall": wall,
        "cpu": float(user) + float(system),
        "peak_mb": int(peak_kb) / 1024,
    }


def cli_runs(images: list[Path], scratch: Path, reps: int, baseline: Path | None) -> None:
    """`flairqc` at its defaults: the real FLAIR alone, then every image (one subject each); with a baseline
    checkout, old and new in turn."""
    from flairqc_app.cpus import available_cpus

    codes = {"old": baseline, "new": None} if baseline else {"new": None}
    for label, subset in (("one image (real FLAIR)", images[:1]), (f"{len(images)} images", images)):
        bids = Path(tempfile.mkdtemp(dir=scratch, prefix="bids-"))
        (bids / "dataset_description.json").write_text(json.dumps({"Name": "speed", "BIDSVersion": "1.10.0"}))
        for i, path in enumerate(subset):
            anat = bids / f"sub-{i:02d}" / "anat"
            anat.mkdir(parents=True)
            (anat / f"sub-{i:02d}_FLAIR.nii.gz").symlink_to(path)
            (anat / f"sub-{i:02d}_FLAIR.json").write_text(json.dumps({"MRAcquisitionType": "3D"}))
        runs: dict[str, list[dict]] = {code: [] for code in codes}
        for rep in range(reps):
            for code, checkout in codes.items():
                run = cli_run(bids, checkout)
                runs[code].append(run)
                print(
                    f"  flairqc participant, {label}, {code} code, rep {rep}: exit {run['exit']}, "
                    f"{run['wall']:.1f} s wall, {run['cpu']:.1f} s CPU, peak {run['peak_mb']:.0f} MB, "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        for code, done in runs.items():
            wall, cpu = (statistics.median(r[k] for r in done) for k in ("wall", "cpu"))
            print(
                f"flairqc participant, {label}, {code} code, defaults (--nprocs {available_cpus()}), median of "
                f"{len(done)}: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS "
                f"{statistics.median(r['peak_mb'] for r in done):.0f} MB; {len(subset) * 3600 / wall:.0f} images/h "
                f"wall; {len(subset) * 3600 * available_cpus() / cpu:.0f} images/h from CPU time on "
                f"{available_cpus()} CPUs"
            )
        if baseline:
            pairs = [new["wall"] / old["wall"] for old, new in zip(runs["old"], runs["new"])]
            print(
                f"flairqc participant, {label}: new/old wall, median of {reps} pairs {statistics.median(pairs):.3f}"
            )


def recipe_runs(images: list[Path], reps: int) -> None:
    """Every image through both recipes in fresh subprocesses, old and new in turn; the real FLAIR and T1w (the
    first two images) `reps` times."""
    timed: dict[str, list[dict]] = {"old": [], "new": []}
    runs: dict[str, dict[str, dict]] = {}
    for rep in range(reps):
        for path in images if rep == 0 else images[:2]:
            for arm in ("old", "new"):
                result = run_job({"path": str(path), "arm": arm})
                timed[arm].append(result)
                runs.setdefault(path.name, {})[arm] = result
                print(
                    f"  rep {rep} {arm} {path.name}: {result['total_wall']:.1f} s wall, {result['total_cpu']:.1f} s "
                    f"CPU, peak {result['peak_rss_mb']:.0f} MB, NCC {result['ncc']:.3f}, load "
                    f"{os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    print(f"\nmedians over every run ({len(timed['new'])} per recipe), one thread per image:")
    median_table(timed)
    for name, index in (("real FLAIR", 0), ("real T1w", 1)):
        subset = {arm: [timed[arm][index]] + timed[arm][len(images) + index :: 2] for arm in timed}
        print(f"\n{name}, median of {len(subset['new'])} runs:")
        median_table(subset)
    for arm in ("old", "new"):
        worst = max(timed[arm], key=lambda r: r["total_cpu"])
        peaks = [r["peak_rss_mb"] for r in timed[arm]]
        print(
            f"{arm}: slowest input {worst['total_wall']:.1f} s wall / {worst['total_cpu']:.1f} s CPU; peak RSS "
            f"median {statistics.median(peaks):.0f} MB, max {max(peaks):.0f} MB"
        )
    compare_verdicts(runs)
    print(f"load at end {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the real FLAIR and T1w")
    parser.add_argument("--synthetic", type=int, default=8, help="synthetic heads (at most 8)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--no-cli", action="store_true", help="skip the command-line runs")
    which.add_argument("--cli-only", action="store_true", help="only the command-line runs")
    parser.add_argument("--cli-reps", type=int, default=1, help="repetitions of each command-line run")
    parser.add_argument(
        "--baseline-checkout", type=Path, help="another flairqc checkout to time beside this one"
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    flair, t1w = REALDATA / "flair3d_head_1mm.nii.gz", REALDATA / "t1w3d_head.nii.gz"
    images = [flair, t1w] + flair_variants(flair, scratch) + synthetic_heads(scratch, args.synthetic)
    print(f"{os.cpu_count()} CPUs; load at start {os.getloadavg()}; {len(images)} images; reps {args.reps}")
    if not args.cli_only:
        recipe_runs(images, args.reps)
    if not args.no_cli:
        cli_runs(images, scratch, args.cli_reps, args.baseline_checkout)


if __name__ == "__main__":
    main()
