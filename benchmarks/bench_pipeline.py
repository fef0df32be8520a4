"""Per-image pipeline benchmark (wall time and peak memory per stage) and the group level on 10,000 images.

Per image, in a fresh subprocess so that peak memory (ru_maxrss) is that image's: load + input gate, N4,
registration, resampling, inference per model, report, and the end-to-end total; on the real 3D FLAIR of
../shared/realdata-dev and on synthetic 1 mm FLAIR heads. Targets (issue: BIDS-App): median end to end
<= 20 s on 2 cores, peak memory <= 3 GB.
Models: `--models-dir` (default: the package's models when it has them), else compact Conv5 networks with
random weights exported to ONNX at `--input-shape`: right for timing, meaningless for verdicts.
Group level: 10,000 per-image TSVs written to disk, then the real group level (read, select, group TSV,
group HTML). Targets: <= 30 s, HTML < 15 MB.
Discovery: a dataset of 3,000 subjects (empty files: pybids reads names and sidecars, not images), one
subject selected versus all (a one-subject run on a large dataset must start in seconds).

    python benchmarks/bench_pipeline.py [--synthetic 3] [--recipe fast] [--group-rows 10000] [--subjects 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REAL_FLAIR = Path(__file__).resolve().parents[2] / "shared" / "realdata-dev" / "flair3d_head_1mm.nii.gz"
STAGES = ("load", "n4", "registration", "resample", "registration retry", "inference", "report")


def random_models(directory: Path, input_shape: tuple[int, int, int]) -> Path:
    """Seven compact Conv5 + global-pooling networks with random weights, exported like flairqc-train does."""
    import numpy as np
    import torch

    from flairqc_app.config import TASKS
    from flairqc_app.manifest import SUPPORTED_FORMAT, new_entry, write_manifest
    from flairqc_app.train.export import INPUT_NAME, OUTPUT_NAME, to_onnx
    from flairqc_app.train.models import SSDANet, TargetClassifier
    from flairqc_app.train.settings import ModelSettings

    torch.manual_seed(0)
    settings = ModelSettings(input_shape=input_shape, head="gap", hidden=(64, 32), dropout=0.2)
    example = np.zeros((1, 1, *input_shape), np.float32)
    entries = {}
    for task in TASKS:
        path = directory / f"{task}.onnx"
        to_onnx(TargetClassifier(SSDANet(settings, 2, ("target",), False)).eval(), example, path)
        entries[task] = new_entry(path, "bench", INPUT_NAME, OUTPUT_NAME, [1, 1, *input_shape], 0.5, {})
    write_manifest(
        directory,
        {"format_version": SUPPORTED_FORMAT, "name": "bench-random", "version": "0", "models": entries},
    )
    return directory


def measure(job: dict) -> dict:
    """Subprocess: the participant pipeline's stages on one image, as participant.process_image runs them."""
    from flairqc_app import config
    from flairqc_app.gate import check_image
    from flairqc_app.grade import decide
    from flairqc_app.grid import resize_to
    from flairqc_app.infer import load_models
    from flairqc_app.preprocess import preprocess_image
    from flairqc_app.report import render_participant_report

    models = load_models(Path(job["models"]), "cpu", job["threads"])
    path = Path(job["path"])
    work = Path(tempfile.mkdtemp(prefix="bench-pipe-"))
    start = time.perf_counter()
    gate = check_image(path, {})
    load_seconds = time.perf_counter() - start
    if gate.status != "ok":
        raise RuntimeError(f"{path}: input gate says {gate.reason}: {gate.detail}")
    result = preprocess_image(gate.image, config.FLAIR_TEMPLATE, config.PREPROC_RECIPES[job["recipe"]], work)
    tic = time.perf_counter()
    probabilities = models.predict(result.volume)
    inference = time.perf_counter() - tic
    per_model = {}
    for task, spec in models.specs.items():  # each model once more on its own, for the per-model split
        x = resize_to(result.volume, spec.spatial_shape)[None, None]
        tic = time.perf_counter()
        models.sessions[task].run([spec.output_name], {spec.input_name: x})
        per_model[task] = time.perf_counter() - tic
    verdict = decide(probabilities, models.thresholds)
    tic = time.perf_counter()
    row = {
        "bids_name": path.name,
        "status": "ok",
        "straight_reject": verdict.straight_reject,
        "tier": verdict.tier,
        **verdict.grades,
        **{f"p_{t}": p for t, p in probabilities.items()},
    }
    render_participant_report(row, gate.image, result.volume, models.thresholds)
    report = time.perf_counter() - tic
    total = time.perf_counter() - start
    stages = {
        "load": load_seconds + result.timings["load"],
        "n4": result.timings["n4"],
        "registration": result.timings["registration"],
        "resample": result.timings["resample"],
        "registration retry": result.timings.get("registration_retry", 0.0),
        "inference": inference,
        "report": report,
    }
    return {
        "stages": stages,
        "per_model": per_model,
        "total": total,
        "ncc": result.registration_ncc,
        "verdict": {"straight_reject": verdict.straight_reject, "tier": verdict.tier, **verdict.grades},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_job(job: dict) -> dict:
    code = (
        f"import json,sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_pipeline as b; "
        f"print(json.dumps(b.measure(json.loads(sys.argv[1]))))"
    )
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(job["threads"]),
        ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(job["threads"]),
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(job)], capture_output=True, text=True, env=env
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def synthetic_heads(directory: Path, count: int) -> list[Path]:
    import nibabel as nib

    from flairqc_app.synth import SynthConfig, generate_case

    paths = []
    for seed in range(count):
        img, _ = generate_case(200 + seed, "FLAIR", config=SynthConfig(grid="1mm"))
        paths.append(directory / f"synth-{seed}.nii.gz")
        nib.save(img, str(paths[-1]))
    return paths


def bench_images(args: argparse.Namespace, models: Path, scratch: Path) -> None:
    images = ([REAL_FLAIR] if REAL_FLAIR.exists() else []) + synthetic_heads(scratch, args.synthetic)
    results = []
    for path in images:
        r = run_job(
            {"path": str(path), "models": str(models), "recipe": args.recipe, "threads": args.threads}
        )
        results.append(r)
        print(
            f"{path.name}: {r['total']:.1f} s end to end; "
            + ", ".join(f"{s} {r['stages'][s]:.2f}" for s in STAGES)
            + f"; peak {r['peak_rss_mb']:.0f} MB; NCC {r['ncc']:.3f}; verdict {r['verdict']}"
        )
    print(f"\nrecipe {args.recipe}, {len(results)} images, {args.threads} threads, median (s) per stage:")
    print("| stage | median s | max s |\n|---|---|---|")
    for stage in STAGES:
        values = [r["stages"][stage] for r in results]
        print(f"| {stage} | {statistics.median(values):.2f} | {max(values):.2f} |")
    for task in results[0]["per_model"]:
        values = [r["per_model"][task] for r in results]
        print(f"| inference {task} | {statistics.median(values):.3f} | {max(values):.3f} |")
    totals, peaks = [r["total"] for r in results], [r["peak_rss_mb"] for r in results]
    print(f"| end to end | {statistics.median(totals):.2f} | {max(totals):.2f} |")
    print(
        f"\npeak memory per image: median {statistics.median(peaks):.0f} MB, max {max(peaks):.0f} MB "
        "(targets: end to end <= 20 s median, peak <= 3072 MB)"
    )


def bench_group(rows_count: int, scratch: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers import synthetic_rows

    from flairqc_app import tsv
    from flairqc_app.group import run_group

    out = scratch / "group"
    for row in synthetic_rows(rows_count, iqms=True):  # the group report draws every IQM too
        tsv.write_table(
            out / row["participant_id"] / "ses-1" / "anat" / f"{row['bids_name'].removesuffix('_FLAIR')}"
            "_desc-flairqc_FLAIR.tsv",
            [row],
        )
    tic = time.perf_counter()
    rows = run_group(out, {})
    seconds = time.perf_counter() - tic
    megabytes = (out / "group_FLAIR.html").stat().st_size / 1e6
    print(
        f"\ngroup level on {len(rows)} images (per-image TSVs on disk): {seconds:.1f} s, group HTML "
        f"{megabytes:.1f} MB, peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
        "(targets: <= 30 s, < 15 MB)"
    )


def bench_discovery(subjects: int, scratch: Path) -> None:
    from flairqc_app.discover import discover
    from flairqc_app.entities import Selection

    root = scratch / "large-bids"
    root.mkdir()
    (root / "dataset_description.json").write_text(json.dumps({"Name": "large", "BIDSVersion": "1.10.0"}))
    for i in range(subjects):
        for rel in (
            "anat/{s}_ses-1_FLAIR.nii.gz",
            "anat/{s}_ses-1_T1w.nii.gz",
            "func/{s}_ses-1_task-rest_bold.nii.gz",
            "dwi/{s}_ses-1_dwi.nii.gz",
        ):
            path = root / f"sub-{i:05d}" / "ses-1" / rel.format(s=f"sub-{i:05d}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    for labels in (["00042"], None):
        tic = time.perf_counter()
        found = discover(root, Selection.of(labels, None, None, None))
        print(
            f"\ndiscovery on {subjects} subjects, {'one subject' if labels else 'all subjects'}: "
            f"{len(found)} FLAIR in {time.perf_counter() - tic:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, help="default: the package's models, else random ones")
    parser.add_argument(
        "--input-shape", type=int, nargs=3, default=[57, 70, 60], help="for the random models"
    )
    parser.add_argument("--recipe", default="fast")
    parser.add_argument(
        "--synthetic", type=int, default=3, help="synthetic 1 mm heads besides the real FLAIR"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--group-rows", type=int, default=10_000, help="0 skips the group level")
    parser.add_argument("--subjects", type=int, default=3000, help="discovery dataset size (0 skips it)")
    args = parser.parse_args()
    from flairqc_app.config import DEFAULT_MODELS_DIR
    from flairqc_app.manifest import MANIFEST_NAME

    scratch = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    models = args.models_dir or (
        DEFAULT_MODELS_DIR if (DEFAULT_MODELS_DIR / MANIFEST_NAME).is_file() else None
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}; models: "
        f"{models or f'RANDOM weights at {args.input_shape} (timing only)'}"
    )
    if models is None:
        models = random_models(scratch / "models", tuple(args.input_shape))
    bench_images(args, models, scratch)
    if args.group_rows:
        bench_group(args.group_rows, scratch)
    if args.subjects:
        bench_discovery(args.subjects, scratch)


if __name__ == "__main__":
    main()
