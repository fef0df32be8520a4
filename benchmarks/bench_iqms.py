"""IQM benchmark: does each FLAIR IQM follow the artefact it is tied to, and what does it cost per image?

The real 3D FLAIR of realdata-dev is degraded at LEVELS increasing levels of five artefacts, with TorchIO
(motion, blur, bias, ghosting) or a few lines of numpy (Rician noise; contrast: GM pulled towards WM), never with
flairqc_app.synth. Two variants of the image: `zeroed`, as it comes (the air is exactly zero, so the background
IQMs are n/a; degraded images are re-zeroed where the original is zero, as a scanner or converter would) and
`air`, with a Rician noise floor (1 % of the 99th percentile) everywhere and PhaseEncodingDirection j, so that
the background IQMs exist. Each variant is preprocessed once (N4 + affine, `fast` recipe); the degraded images
reuse that affine and N4 field, except the bias series, which starts from the N4-corrected image and re-runs N4
on each level (its IQM reads the field).
Reported: Spearman's rho of every IQM with the level, per artefact and variant; TIES lists the IQMs each
artefact must move (|rho| >= 0.9). Cost: compute_iqms on the real FLAIR in a fresh process with 2 threads,
median of 5 runs, wall and CPU time (CPU seconds do not depend on what else the machine runs; the IQMs are
single-threaded numpy, so on two free cores the wall time is at most the CPU time), and the peak-RSS growth
over a process that has just preprocessed the image (as the pipeline's)
and over one that has only loaded the image, the N4 field and the affine (the IQMs' own high-water mark).

Usage: python benchmarks/bench_iqms.py [--levels 8] [--variants zeroed,air] [--skip-cost | --cost-only]
                                      [--json out.json | --table-from out.json]
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

import nibabel as nib
import numpy as np

REAL_FLAIR = Path(__file__).resolve().parents[2] / "shared" / "realdata-dev" / "flair3d_head_1mm.nii.gz"
ARTEFACTS = ("noise", "motion", "blur", "contrast", "bias", "ghosting")
TIES = {
    "noise": (
        "iqm_snr_wm",
        "iqm_snr_brain",
        "iqm_snrd_wm",
        "iqm_noise_tissue",
        "iqm_cnr",
        "iqm_cjv",
        "iqm_fber",
    ),
    # MRIQC's docs tie EFC (ghosting and blurring) and CJV (heavy motion) to motion. QI1 was tied here first:
    # TorchIO's motion leaves the air almost clean, so QI1 is tied to ghosting (docs/iqms.md).
    "motion": ("iqm_efc", "iqm_cjv"),
    "blur": ("iqm_fwhm_x", "iqm_fwhm_y", "iqm_fwhm_z", "iqm_fwhm_avg"),
    "contrast": ("iqm_cnr", "iqm_cjv"),
    "bias": ("iqm_inu_range",),
    "ghosting": ("iqm_gsr", "iqm_qi1"),
}
# EFC sees motion through the energy it spreads into the air: with a zeroed air it saturates (docs/iqms.md).
NEEDS_AIR = {("motion", "iqm_efc")}
AIR_FLOOR = 0.01  # Rician noise floor of the `air` variant, as a share of the 99th percentile
PHASE_ENCODING = {"PhaseEncodingDirection": "j"}


def rician(data: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.hypot(data + rng.normal(0, sigma, data.shape), rng.normal(0, sigma, data.shape)).astype(
        np.float32
    )


def torchio_apply(transform, data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    import torch
    import torchio as tio

    image = tio.ScalarImage(tensor=torch.from_numpy(data[None].copy()), affine=affine)
    return np.clip(transform(image).data.numpy()[0], 0, None).astype(np.float32)


def degrade(
    data: np.ndarray,
    affine: np.ndarray,
    artefact: str,
    level: int,
    gm_soft: np.ndarray,
    contrast_gap: float,
    scale: float,
) -> np.ndarray:
    """The image with one artefact at `level` (0: untouched)."""
    import torchio as tio

    if level == 0:
        return data.copy()
    if artefact == "noise":
        return rician(data, 0.01 * level * scale, seed=level)
    if artefact == "motion":
        a = 0.75 * level  # degrees and mm of two movements during the acquisition
        motion = tio.Motion(
            degrees=np.array([[a, a / 2, -a / 2], [-a / 2, a, a / 3]]),
            translation=np.array([[a, -a / 2, a / 2], [-a / 2, a / 2, a]]),
            times=np.array([0.35, 0.7]),
            image_interpolation="linear",
        )
        return torchio_apply(motion, data, affine)
    if artefact == "blur":
        return torchio_apply(tio.Blur(std=(0.4 * level,) * 3), data, affine)
    if artefact == "contrast":
        return np.clip(data - 0.1 * level * contrast_gap * gm_soft, 0, None).astype(np.float32)
    if artefact == "bias":
        coefficients = np.random.default_rng(7).uniform(-1, 1, 20) * 0.08 * level  # order 3: 20 coefficients
        return torchio_apply(tio.BiasField(coefficients=coefficients.tolist(), order=3), data, affine)
    if artefact == "ghosting":  # along j, the phase-encoding direction the `air` variant's sidecar gives
        return torchio_apply(
            tio.Ghosting(num_ghosts=2, axis=1, intensity=0.04 * level, restore=0.02), data, affine
        )
    raise ValueError(artefact)


def variant_base(name: str, clean: np.ndarray) -> np.ndarray:
    if name == "zeroed":
        return clean
    return rician(clean, AIR_FLOOR * float(np.percentile(clean[clean > 0], 99)), seed=100)


def series(variant: str, levels: int, work: Path) -> dict[str, list[dict]]:
    from scipy import ndimage

    from flairqc_app.config import FLAIR_TEMPLATE, PREPROC_RECIPES
    from flairqc_app.iqm.compute import compute_iqms
    from flairqc_app.iqm.masks import GM, WM, native_labels
    from flairqc_app.preprocess import n4_correct, preprocess_image, to_ants

    img = nib.load(str(REAL_FLAIR))
    clean = np.asarray(img.dataobj, np.float32)
    base = variant_base(variant, clean)
    recipe = PREPROC_RECIPES["fast"]
    prep = preprocess_image(nib.Nifti1Image(base, img.affine), FLAIR_TEMPLATE, recipe, work / variant)
    labels = native_labels(base.shape, img.affine, prep.transform)
    gm_soft = ndimage.gaussian_filter((labels == GM).astype(np.float32), 1.0)
    gap = float(np.median(base[labels == GM]) - np.median(base[labels == WM]))
    scale = float(np.percentile(base[base > 0], 99))
    metadata = PHASE_ENCODING if variant == "air" else {}
    out: dict[str, list[dict]] = {}
    # The bias series starts from the N4-corrected image, so that the applied field is the only non-uniformity
    # (a field added to the scan's own could cancel part of it and lower the true non-uniformity).
    flat = base / np.where(prep.bias_field > 1e-6, prep.bias_field, 1.0)
    for artefact in ARTEFACTS:
        rows = []
        for level in range(levels):
            data = degrade(
                flat if artefact == "bias" else base, img.affine, artefact, level, gm_soft, gap, scale
            )
            if variant == "zeroed":
                data[clean == 0] = 0  # the converter's mask stays
            degraded = nib.Nifti1Image(data, img.affine)
            field = prep.bias_field
            if artefact == "bias":
                field = n4_correct(to_ants(degraded), recipe)[1]
            rows.append(compute_iqms(degraded, field, prep.transform, metadata).values)
            print(f"  {variant} {artefact} level {level} done", file=sys.stderr, flush=True)
        out[artefact] = rows
    return out


def spearman_table(
    results: dict[str, dict[str, list[dict]]],
) -> dict[str, dict[str, dict[str, float | None]]]:
    """rho[variant][artefact][iqm]; None where the IQM is n/a or constant over the levels."""
    from scipy.stats import spearmanr

    from flairqc_app.iqm.definitions import IQM_COLUMNS

    table: dict = {}
    for variant, by_artefact in results.items():
        for artefact, rows in by_artefact.items():
            cells = {}
            for column in IQM_COLUMNS:
                values = [row[column] for row in rows]
                if any(v is None for v in values) or len(set(values)) < 2:
                    cells[column] = None
                else:
                    cells[column] = round(float(spearmanr(range(len(values)), values).statistic), 3)
            table.setdefault(variant, {})[artefact] = cells
    return table


def markdown(table: dict) -> str:
    from flairqc_app.iqm.definitions import IQM_COLUMNS

    columns = [(v, a) for v in table for a in ARTEFACTS]
    lines = [
        "| IQM | " + " | ".join(f"{a} ({v})" for v, a in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for column in IQM_COLUMNS:
        cells = []
        for variant, artefact in columns:
            rho = table[variant][artefact][column]
            text = "n/a" if rho is None else f"{rho:+.2f}"
            tied = column in TIES[artefact] and not (variant == "zeroed" and (artefact, column) in NEEDS_AIR)
            cells.append(f"**{text}**" if tied else text)
        lines.append(f"| `{column}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failures(table: dict) -> list[str]:
    """Tied IQMs below |rho| 0.9 (in the zeroed variant: n/a is expected for the background IQMs, and the ties
    in NEEDS_AIR are not held)."""
    from flairqc_app.iqm.definitions import IQMS_BY_COLUMN

    out = []
    for variant, by_artefact in table.items():
        for artefact, columns in TIES.items():
            for column in columns:
                rho = by_artefact[artefact][column]
                if variant == "zeroed" and (artefact, column) in NEEDS_AIR:
                    continue
                if rho is None and variant == "zeroed" and "zeroed" in IQMS_BY_COLUMN[column].not_available:
                    continue
                if rho is None or abs(rho) < 0.9:
                    out.append(f"{variant}/{artefact}/{column}: rho {rho}")
    return out


def cost_in_subprocess(runs: int) -> dict:
    """Time and memory of compute_iqms on the real FLAIR, in fresh processes with 2 threads: one preprocesses
    (and reports how much the IQMs raise the peak of a process that has just preprocessed, as the pipeline
    does), then one loads the image, the N4 field and the affine and measures the IQMs' own peak growth."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "2",
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
    }
    with tempfile.TemporaryDirectory() as work:
        figures = {}
        for step in ("after-preprocessing", "alone"):
            done = subprocess.run(
                [sys.executable, __file__, "--cost-child", step, "--cost-runs", str(runs), "--work", work],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            figures[step] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def cost_child(step: str, runs: int, work: Path) -> None:
    from flairqc_app.config import FLAIR_TEMPLATE, PREPROC_RECIPES
    from flairqc_app.iqm.compute import compute_iqms
    from flairqc_app.preprocess import preprocess_image

    img = nib.load(str(REAL_FLAIR))
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine)  # data in memory, as after the input gate
    if step == "after-preprocessing":
        prep = preprocess_image(img, FLAIR_TEMPLATE, PREPROC_RECIPES["fast"], work)
        np.save(work / "field.npy", prep.bias_field)
        prep.transform.replace(work / "affine.mat")
        field, transform = prep.bias_field, work / "affine.mat"
    else:
        field, transform = np.load(work / "field.npy"), work / "affine.mat"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        compute_iqms(img, field, transform, PHASE_ENCODING)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "median_s": round(statistics.median(times), 3),
                "runs_s": [round(t, 3) for t in times],
                "median_cpu_s": round(statistics.median(cpu), 3),
                "load": os.getloadavg()[0],
                "peak_rss_before_mb": round(before / 1024, 1),
                "peak_rss_growth_mb": round((after - before) / 1024, 1),
            }
        )
    )


def report(table: dict, levels: int) -> None:
    print(f"\nSpearman rho of each IQM with the artefact level ({levels} levels); bold: the IQMs tied to it")
    print(markdown(table))
    missed = failures(table)
    print("\nall tied IQMs |rho| >= 0.9" if not missed else "\nbelow 0.9: " + "; ".join(missed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=8)
    parser.add_argument("--variants", default="zeroed,air")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--cost-only", action="store_true")
    parser.add_argument("--cost-runs", type=int, default=5)
    parser.add_argument("--cost-child", choices=("after-preprocessing", "alone"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the raw IQM values and rhos here")
    parser.add_argument("--table-from", type=Path, help="print the table of an earlier --json run and exit")
    args = parser.parse_args()
    if args.cost_child:
        cost_child(args.cost_child, args.cost_runs, args.work)
        return
    if args.table_from:
        report(json.loads(args.table_from.read_text())["rho"], args.levels)
        return
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    if not args.skip_cost:
        print("IQM cost (real 3D FLAIR, 176x232x159):", json.dumps(cost_in_subprocess(args.cost_runs)))
    if args.cost_only:
        return
    with tempfile.TemporaryDirectory() as work:
        results = {v: series(v, args.levels, Path(work)) for v in args.variants.split(",")}
    table = spearman_table(results)
    report(table, args.levels)
    print(f"load at the end {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"values": results, "rho": table}, indent=1))


if __name__ == "__main__":
    main()
