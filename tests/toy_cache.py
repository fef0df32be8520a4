"""A tiny T1w -> FLAIR domain-shift dataset built in memory, for the toolkit's tests (not part of the package).

Each volume is an ellipsoidal "brain" (GM rim, WM core, CSF ventricles) with the paper's grades (section 2.3.1)
drawn on it: noise (Gaussian), motion (ghost + blur), contrast (GM/WM difference shrunk). The source (T1w) has
WM brighter than GM, the target (FLAIR) the reverse plus a bias ramp, so a classifier trained on one domain
does not transfer unchanged. It takes milliseconds per volume instead of ~30 s of preprocessing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from flairqc_app.config import ARTEFACTS
from flairqc_app.grid import clip_and_scale
from flairqc_app.train.cache import Sample, VolumeCache, assign_test_split

LEVELS = {"source": {"csf": 0.15, "gm": 0.60, "wm": 0.90}, "target": {"csf": 0.05, "gm": 0.80, "wm": 0.55}}
NOISE_SIGMA = (0.01, 0.07, 0.18)
GHOST = (0.0, 0.25, 0.5)
CONTRAST_KEEP = (1.0, 0.45, 0.1)


def toy_volume(rng: np.random.Generator, domain: str, grades: dict[str, int], size: int = 24) -> np.ndarray:
    """One volume on a size^3 grid, clipped to [2, 98] percentiles and scaled to [0, 1] like preprocessing."""
    axes = np.linspace(-1.0, 1.0, size)
    x, y, z = np.meshgrid(axes, axes, axes, indexing="ij")
    radii = rng.uniform(0.7, 0.85, 3)
    r = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2)
    level = LEVELS[domain]
    keep = CONTRAST_KEEP[grades.get("contrast", 0)]
    gm = level["wm"] + (level["gm"] - level["wm"]) * keep
    image = np.where(r < 1.0, gm, 0.0) + np.where(r < rng.uniform(0.55, 0.65), level["wm"] - gm, 0.0)
    image = np.where(r < rng.uniform(0.15, 0.25), level["csf"], image)
    motion = grades.get("motion", 0)
    if motion:
        image = image + GHOST[motion] * np.roll(image, size // 4, axis=1)
        image = ndimage.gaussian_filter(image, 0.6 * motion)
    if domain == "target":
        image = image * (0.8 + 0.4 * (x + 1.0) / 2.0)
    image = image + rng.normal(0.0, NOISE_SIGMA[grades.get("noise", 0)], image.shape)
    return clip_and_scale(image.astype(np.float32), (2.0, 98.0))


def draw_grades(rng: np.random.Generator) -> dict[str, int]:
    return {a: int(rng.choice(3, p=(0.5, 0.25, 0.25))) for a in ARTEFACTS}


def toy_cache(
    root: Path,
    n_source: int = 40,
    n_target_labelled: int = 30,
    n_unlabelled: int = 30,
    size: int = 24,
    test_fraction: float = 0.3,
    seed: int = 0,
    n_validation: int = 0,
) -> VolumeCache:
    """A cache of toy volumes with samples.tsv and a test split; every third target participant also has an
    unlabelled second image (so grouping by participant is exercised). `n_validation` more labelled FLAIR form
    the validation split (held out of every fold's training)."""
    rng = np.random.default_rng(seed)
    cache = VolumeCache(root, (size, size, size))
    samples = []

    def add(domain: str, participant: str, labelled: bool, name: str, split: str = "trainval") -> None:
        grades = draw_grades(rng)
        volume = toy_volume(rng, domain, grades, size)
        sample = Sample(
            key="",
            domain=domain,
            filename=f"{participant}/anat/{participant}_{name}.nii.gz",
            participant_id=participant,
            group=f"{domain}:{participant}",
            straight_reject=0 if labelled else None,
            grades=grades if labelled else {},
            split=split,
        )
        samples.append(cache.add_array(sample, volume))

    for i in range(n_source):
        add("source", f"sub-s{i:03d}", True, "T1w")
    for i in range(n_target_labelled):
        add("target", f"sub-t{i:03d}", True, "FLAIR")
        if i % 3 == 0:
            add("target", f"sub-t{i:03d}", False, "run-2_FLAIR")
    for i in range(n_unlabelled):
        add("target", f"sub-u{i:03d}", False, "FLAIR")
    for i in range(n_validation):
        add("target", f"sub-v{i:03d}", True, "FLAIR", "validation")
    samples = assign_test_split(samples, test_fraction, seed)
    cache.write_samples(samples)
    return cache
