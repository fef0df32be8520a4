"""What in the real 3D FLAIR drives each model: region swaps and regional sharpening (docs/model-history.md#attempt-9).

A model set trained on synthetic heads can read a good real image as degraded because some region of the real head
looks to it like an artefact. Two probes, on the real 3D FLAIR of ../shared/realdata-dev as the BIDS-App's `fast`
recipe preprocesses it, answer where, and whether a new engine's heads stand in for the real one before any
training:

1. Region swap: the real FLAIR with one region of the head around the brain (scalp and skull above the skull base,
   face and neck below it, the whole head outside the brain + 6 mm, the shell 6-15 mm out) taken from a clean
   synthetic FLAIR of the engine. If an engine region takes a model's reading away, that region of the real head
   is what the model reads.
2. Regional sharpening: fine detail added to one region only (`augment.sharpened`), of the head or of the brain,
   for the real FLAIR and its versions with the engine's motion at grades 1 and 2. A cue that orders motion
   lowers the good image and leaves the moved ones high.

    python benchmarks/bench_real_cues.py [--models-dir DIR] [--donors 3] [--amount 0.6]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_default_models import degrade_real, print_task_header  # noqa: E402 (its own folder)
from helpers import REALDATA  # noqa: E402

from flairqc_app.config import ARTEFACT_TASKS, DEFAULT_MODELS_DIR
from flairqc_app.grid import resize_to
from flairqc_app.infer import ModelSet, load_models
from flairqc_app.synth import SynthConfig, render_case
from flairqc_app.train.augment import sharpened
from flairqc_app.train.cache import TEMPLATES, preprocess_for_training
from flairqc_app.train.template_grid import template_brain

BRAIN_MARGIN_MM = 6.0  # the brain window of the contrast models: what counts as brain here


def model_input(img: nib.Nifti1Image, shape: tuple[int, int, int]) -> np.ndarray:
    """The image preprocessed as the BIDS-App does (fast recipe), resized to the model input."""
    return resize_to(preprocess_for_training(img, TEMPLATES["FLAIR"], "fast").volume, shape)


def head_regions(shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Regions of the head around the brain on the model grid, what the swaps replace; the skull base is the lowest
    axial slice with half the largest brain area."""
    area = template_brain(shape).sum(axis=(0, 1))
    above = (np.arange(shape[2]) >= int(np.argmax(area > 0.5 * area.max())))[np.newaxis, np.newaxis, :]
    outside = ~template_brain(shape, BRAIN_MARGIN_MM)
    return {
        "scalp and skull above the skull base": outside & above,
        "face and neck below it": outside & ~above,
        "whole head outside the brain (+6 mm)": outside,
        "6-15 mm outside the brain": outside & template_brain(shape, 15.0),
    }


def brain_regions(shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The brain, its layers and its edge on the model grid, and the whole image: the sharpening's other regions."""
    brain, window = template_brain(shape), template_brain(shape, BRAIN_MARGIN_MM)
    deep = ndimage.binary_erosion(brain, iterations=2)
    return {
        "deep brain (brain less 2 voxels)": deep,
        "cortex band (outer 2 voxels of the brain)": brain & ~deep,
        "brain edge to 6 mm out": window & ~brain,
        "brain + 6 mm": window,
        "whole image": np.ones(shape, bool),
    }


def probabilities(models: ModelSet, volume: np.ndarray) -> list[float]:
    return [models.probability(task, volume) for task in ARTEFACT_TASKS]


def span_row(name: str, rows: list[list[float]]) -> str:
    """A table row of each task's range over the donors."""
    low, high = np.min(rows, axis=0), np.max(rows, axis=0)
    return f"| {name} | " + " | ".join(f"{a:.2f}-{b:.2f}" for a, b in zip(low, high)) + " |"


def print_swaps(models: ModelSet, real: np.ndarray, donors: list[np.ndarray]) -> None:
    print_task_header(models, "real FLAIR with the engine's ... (range over donors)")
    print("| nothing | " + " | ".join(f"{p:.2f}" for p in probabilities(models, real)) + " |")
    print(span_row("(the donors themselves)", [probabilities(models, donor) for donor in donors]))
    for name, region in head_regions(real.shape).items():
        rows = []
        for donor in donors:
            swapped = real.copy()
            swapped[region] = donor[region]
            rows.append(probabilities(models, swapped))
        print(span_row(name, rows))


def print_sharpening(models: ModelSet, versions: dict[str, np.ndarray], amount: float) -> None:
    """One row per region; each cell: the real FLAIR's probability, then its moved versions' in brackets."""
    print_task_header(models, f"region made sharper ({amount:+.1f}); real (motion 1, motion 2)")
    sharp = {name: sharpened(v, amount) for name, v in versions.items()}
    shape = versions["real"].shape
    for name, region in {
        "none": np.zeros(shape, bool),
        **head_regions(shape),
        **brain_regions(shape),
    }.items():
        cells = []
        for name_v, volume in versions.items():
            changed = volume.copy()
            changed[region] = sharp[name_v][region]
            cells.append(probabilities(models, changed))
        print(
            f"| {name} | "
            + " | ".join(
                f"{cells[0][i]:.2f} ({', '.join(f'{c[i]:.2f}' for c in cells[1:])})"
                for i in range(len(ARTEFACT_TASKS))
            )
            + " |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument(
        "--donors", type=int, default=3, help="clean synthetic FLAIRs whose regions are swapped in"
    )
    parser.add_argument(
        "--amount", type=float, default=0.6, help="fine detail added by the regional sharpening"
    )
    args = parser.parse_args()
    models = load_models(args.models_dir, "cpu", threads=2)
    shapes = {models.specs[task].spatial_shape for task in ARTEFACT_TASKS}
    if len(shapes) != 1:
        raise SystemExit(
            f"the probes swap regions on one model grid; this set has input shapes {sorted(shapes)}"
        )
    shape = shapes.pop()
    clean = nib.load(str(REALDATA / "flair3d_head_1mm.nii.gz"))
    versions = {"real": model_input(clean, shape)} | {
        f"motion {grade}": model_input(degrade_real(clean, "motion", grade, draw=0), shape)
        for grade in (1, 2)
    }
    donors = [
        model_input(render_case(seed, "FLAIR", config=SynthConfig(grid="1mm", lesions=False)).image, shape)
        for seed in range(1, args.donors + 1)
    ]
    print_swaps(models, versions["real"], donors)
    print_sharpening(models, versions, args.amount)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
