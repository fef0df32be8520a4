"""Render the calibration sheet of the synthetic data engine: docs/calibration/*.png.

One PNG per artefact (rows: grade 0, 1, 2 of the same subject and acquisition; columns: the three central
slices), plus the sequence contrasts and the straight-reject cases, so that a person can check each grade
against the paper's definitions (docs/synthetic-data.md). Run: python tools/make_calibration_sheet.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from flairqc_app.synth import SynthConfig, render_case  # noqa: E402
from flairqc_app.synth.params import REJECT_REASONS  # noqa: E402

SEED, SUBJECT = 20250101, 7
GRADED = {
    "motion": [dict(motion=g) for g in (0, 1, 2)],
    "noise": [dict(noise=g) for g in (0, 1, 2)],
    "contrast_gm_wm": [dict(contrast=g, contrast_mode="gm_wm") for g in (0, 1, 2)],
    "contrast_csf": [dict(contrast=g, contrast_mode="csf") for g in (0, 1, 2)],
}


def central_slices(img: nib.Nifti1Image) -> list[tuple[np.ndarray, float]]:
    """Sagittal, coronal, axial central slices of the RAS-reoriented image, with their display aspect."""
    ras = nib.as_closest_canonical(img)
    data, (zx, zy, zz) = ras.get_fdata(dtype=np.float32), ras.header.get_zooms()[:3]
    cx, cy, cz = (n // 2 for n in data.shape)
    return [(data[cx].T, zz / zy), (data[:, cy].T, zz / zx), (data[:, :, cz].T, zy / zx)]


def draw_rows(rows: list[tuple[str, nib.Nifti1Image]], path: Path, dpi: int) -> None:
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows)), squeeze=False)
    for row, (title, img) in enumerate(rows):
        slices = central_slices(img)
        vmax = float(np.percentile(np.concatenate([s.ravel() for s, _ in slices]), 99.5)) or 1.0
        for col, (plane, aspect) in enumerate(slices):
            axes[row, col].imshow(
                plane, origin="lower", cmap="gray", vmin=0, vmax=vmax, aspect=aspect, interpolation="nearest"
            )
            axes[row, col].axis("off")
        axes[row, 0].text(0.0, 1.02, title, transform=axes[row, 0].transAxes, fontsize=8, va="bottom")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.97, wspace=0.02, hspace=0.12)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/calibration"))
    parser.add_argument("--dpi", type=int, default=80)
    parser.add_argument("--grid", default="1mm")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    config = SynthConfig(grid=args.grid, lesions=True)
    for name, variants in GRADED.items():
        rows = []
        for grade, kwargs in enumerate(variants):
            case = render_case(SEED, "FLAIR", config=config, subject_seed=SUBJECT, **kwargs)
            g = case.labels
            title = f"{name} grade {grade}: " + ", ".join(
                f"{k[4:]}={g[k]}"
                for k in (
                    "gen_snr",
                    "gen_motion_poses",
                    "gen_motion_switches",
                    "gen_motion_max_rot_deg",
                    "gen_motion_max_trans_mm",
                    "gen_contrast_residual",
                    "gen_contrast_region_fraction",
                    "gen_csf_to_wm",
                )
                if k in g and g[k] != "n/a" and (grade or k == "gen_snr")
            )
            rows.append((title, case.image))
        draw_rows(rows, args.out / f"{name}.png", args.dpi)
        print("wrote", args.out / f"{name}.png")
    sequences = [
        ("FLAIR", render_case(SEED, "FLAIR", config=config, subject_seed=SUBJECT).image),
        ("T1w", render_case(SEED, "T1w", config=config, subject_seed=SUBJECT).image),
    ]
    draw_rows(sequences, args.out / "sequences.png", args.dpi)
    rejects = [
        (
            f"straight reject: {reason}",
            render_case(SEED + i, "FLAIR", reject=reason, config=config, subject_seed=SUBJECT).image,
        )
        for i, reason in enumerate(REJECT_REASONS)
    ]
    draw_rows(rejects, args.out / "straight_rejects.png", args.dpi)
    print("wrote sequences.png and straight_rejects.png")


if __name__ == "__main__":
    main()
