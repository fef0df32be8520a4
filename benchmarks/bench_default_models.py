"""The shipped default models on real images, through the BIDS-App (docs/model-card.md, issue: default models).

1. The four real MRIs of ../shared/realdata-dev, each presented as a FLAIR: the 3D FLAIR must pass (not
   rejected, a tier given); the T1w, T2w and 2D FLAIR must be rejected, by the input gate or by the model.
2. The real 3D FLAIR degraded by the synthetic engine's artefacts (flairqc_app.synth.apply_artefact) at
   grades 0, 1 and 2, several draws each: applied versus predicted grade per artefact.
3. Sharpness: the artefact probabilities of the real 3D FLAIR's model input with its fine detail taken away or
   added (flairqc_app.train.augment.sharpened). Good scanners differ in sharpness; a model whose output follows
   it reads the scanner, not the artefact (motion models trained on the engine's sharp heads did: model card).
4. Inference time of all seven models on one preprocessed image (target <= 3 s on 2 CPU cores).
With `--compare paper`, every image is also run with the paper-faithful preprocessing recipe and the final
verdicts of the two recipes are compared image by image (the BIDS-App issue asks for that agreement).

    python benchmarks/bench_default_models.py [--models-dir DIR] [--draws 2] [--compare paper] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import REALDATA, make_dataset, participant_command  # noqa: E402

from flairqc_app.config import ARTEFACT_TASKS, ARTEFACTS, DEFAULT_MODELS_DIR, GRID_SHAPE
from flairqc_app.grid import resize_to
from flairqc_app.infer import ModelSet, load_models
from flairqc_app.synth import apply_artefact
from flairqc_app.train.augment import sharpened
from flairqc_app.tsv import read_table

REAL = {
    "flair3d": "flair3d_head_1mm",
    "t1w": "t1w3d_head",
    "flair2d": "flair2d_6mm_tumour",
    "t2w": "t2w2d_head",
}
EXPECTED = {"flair3d": "passes (tier)", "t1w": "rejected", "flair2d": "rejected", "t2w": "rejected"}
# fine detail taken (< 0) or added; training draws -0.5 to 0.5
SHARPNESS_AMOUNTS = (
    -0.4,
    -0.2,
    0.0,
    0.3,
    0.6,
)


def flair_dataset(root: Path, images: dict[str, nib.Nifti1Image]) -> Path:
    """A BIDS dataset with one FLAIR per subject label (the tests' dataset writer)."""
    return make_dataset(root, {f"sub-{s}/anat/sub-{s}_FLAIR.nii.gz": img for s, img in images.items()})


def run_app(
    bids: Path, out: Path, models: Path, recipe: str, options: tuple[str, ...] = ("--write-preproc",)
) -> dict[str, dict]:
    """flairqc participant on the dataset (with further command-line options); the per-image rows by subject."""
    subprocess.run(
        participant_command(bids, out, models, "--preproc", recipe, *options),
        check=False,
        capture_output=True,
    )
    return {
        path.name.split("_")[0].removeprefix("sub-"): read_table(path)[0]
        for path in out.glob("sub-*/anat/*_desc-flairqc_FLAIR.tsv")
    }


def verdict(row: dict) -> str:
    if row["straight_reject"] == 1:
        return f"rejected by the {row['reject_source']} ({row['reason'] or 'straight_reject model'})"
    if row["status"] != "ok":
        return f"{row['status']}: {row['reason']}"
    return f"passes, tier {row['tier']} (motion {row['motion']}, noise {row['noise']}, contrast {row['contrast']})"


def decision(row: dict) -> tuple:
    """Everything the verdict decides, grades included even when the image is rejected."""
    return tuple(row.get(k) for k in ("status", "straight_reject", *ARTEFACTS, "tier"))


def degrade_real(
    clean: nib.Nifti1Image, artefact: str, grade: int, draw: int, motion_grading: str = "displacement"
) -> nib.Nifti1Image:
    """The real FLAIR with one artefact applied; draw `draw` of each grade has its own fixed seed."""
    return apply_artefact(
        clean, artefact, grade, np.random.default_rng(1000 * grade + draw), motion_grading=motion_grading
    )


def datasets(scratch: Path, draws: int) -> tuple[Path, Path, dict[str, tuple[str, int]]]:
    """The real images, and the real 3D FLAIR degraded per artefact and grade (subject -> applied)."""
    real = flair_dataset(
        scratch / "real", {s: nib.load(str(REALDATA / f"{n}.nii.gz")) for s, n in REAL.items()}
    )
    clean = nib.load(str(REALDATA / f"{REAL['flair3d']}.nii.gz"))
    images, applied = {}, {}
    for artefact in ARTEFACTS:
        for grade in (0, 1, 2):
            for draw in range(draws if grade else 1):
                subject = f"{artefact}{grade}d{draw}"
                images[subject] = degrade_real(clean, artefact, grade, draw)
                applied[subject] = (artefact, grade)
    return real, flair_dataset(scratch / "degraded", images), applied


def print_real(rows: dict[str, dict]) -> None:
    print(
        "| image (presented as FLAIR) | expected | flairqc verdict | p_straight_reject |\n|---|---|---|---|"
    )
    for subject, name in REAL.items():
        row = rows[subject]
        print(f"| {name} | {EXPECTED[subject]} | {verdict(row)} | {row.get('p_straight_reject')} |")


def print_degraded(rows: dict[str, dict], applied: dict[str, tuple[str, int]]) -> None:
    print("\n| artefact | applied grade | predicted grades (one per draw) | p_moderate | p_severe | tiers |")
    print("|---|---|---|---|---|---|")
    for artefact in ARTEFACTS:
        for grade in (0, 1, 2):
            got = [rows[s] for s, a in applied.items() if a == (artefact, grade)]
            print(
                f"| {artefact} | {grade} | {[r[artefact] for r in got]} | "
                f"{[round(r[f'p_{artefact}_moderate'], 2) for r in got]} | "
                f"{[round(r[f'p_{artefact}_severe'], 2) for r in got]} | {[r['tier'] for r in got]} |"
            )


def print_task_header(models: ModelSet, first: str) -> None:
    """Header of a table with one column per artefact task, each named with its manifest threshold."""
    print(
        f"\n| {first} | " + " | ".join(f"p_{t} ({models.thresholds[t]:.2f})" for t in ARTEFACT_TASKS) + " |"
    )
    print("|---" * (len(ARTEFACT_TASKS) + 1) + "|")


def print_sharpness(out: Path, models_dir: Path) -> None:
    """Artefact probabilities of the real 3D FLAIR as preprocessed by the app, its fine detail scaled."""
    preprocessed = next(out.glob("sub-flair3d/anat/*_desc-preproc_FLAIR.nii.gz"))
    volume = nib.load(str(preprocessed)).get_fdata(dtype=np.float32)
    models = load_models(models_dir, "cpu", threads=2)
    print_task_header(models, "fine detail added")
    resized = {
        shape: resize_to(volume, shape) for shape in {models.specs[t].spatial_shape for t in ARTEFACT_TASKS}
    }
    for amount in SHARPNESS_AMOUNTS:
        inputs = {
            shape: sharpened(v, amount) for shape, v in resized.items()
        }  # once per input shape, as predict
        row = [models.probability(t, inputs[models.specs[t].spatial_shape]) for t in ARTEFACT_TASKS]
        print(f"| {amount:+.1f} | " + " | ".join(f"{p:.2f}" for p in row) + " |")


def run_all(real: Path, degraded: Path, models: Path, scratch: Path, recipe: str) -> dict[str, dict]:
    return run_app(real, scratch / f"real-{recipe}", models, recipe) | run_app(
        degraded, scratch / f"degraded-{recipe}", models, recipe
    )


def inference_time(models_dir: Path, repeats: int = 5) -> None:
    models = load_models(models_dir, "cpu", threads=2)
    volume = np.random.default_rng(0).random(GRID_SHAPE, dtype=np.float32)
    models.predict(volume)  # warm-up
    seconds = []
    for _ in range(repeats):
        tic = time.perf_counter()
        models.predict(volume)
        seconds.append(time.perf_counter() - tic)
    size = sum(p.stat().st_size for p in models_dir.glob("*.onnx")) / 1e6
    print(
        f"\nall seven models on one preprocessed image, 2 threads: median {statistics.median(seconds):.2f} s "
        f"over {repeats} runs (target <= 3 s); model files {size:.1f} MB in all (limit 30 MB)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--draws", type=int, default=2, help="random draws per artefact and grade")
    parser.add_argument("--compare", choices=("paper",), help="also run this recipe and compare the verdicts")
    parser.add_argument("--out", type=Path, help="keep the datasets and outputs here (default: a temp dir)")
    args = parser.parse_args()
    if not (REALDATA / f"{REAL['flair3d']}.nii.gz").exists():
        print(f"no real images in {REALDATA}")
        return 1
    scratch = args.out or Path(tempfile.mkdtemp(prefix="bench-default-models-"))
    inference_time(args.models_dir)
    real, degraded, applied = datasets(scratch, args.draws)
    rows = run_all(real, degraded, args.models_dir, scratch, "fast")
    print("\nrecipe fast (default)")
    print_real(rows)
    print_degraded(rows, applied)
    print_sharpness(scratch / "real-fast", args.models_dir)
    if args.compare:
        other = run_all(real, degraded, args.models_dir, scratch, args.compare)
        same = [s for s in rows if decision(rows[s]) == decision(other[s])]
        print(
            f"\nrecipe {args.compare}: same decision as fast (reject, three grades, tier) for "
            f"{len(same)}/{len(rows)} images"
        )
        for subject in sorted(set(rows) - set(same)):
            print(f"  {subject}: fast {verdict(rows[subject])} | {args.compare} {verdict(other[subject])}")
        print_real(other)
        print_degraded(other, applied)
    print(f"\noutputs (reports included): {scratch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
