"""Images that are not a 3D FLAIR of the whole brain and carry no head: near-empty, noise-only, phantom.

Head-based straight rejects (wrong contrast, segmentation, truncation, 2D) reuse the head renderer in
`case`; the helpers for their specific step (tissue-label image, field-of-view cut) live here too.
"""

from __future__ import annotations

import numpy as np

from flairqc_app.synth.geometry import Acquisition, rotation_matrix
from flairqc_app.synth.params import PHANTOM_DIAMETER_MM, PHANTOM_LENGTH_MM, TISSUE_LABELS, TRUNCATION_FRACTION
from flairqc_app.synth.measures import foreground_mask

SEGMENTATION_CODES = {"csf": 1, "gm": 2, "wm": 3, "lesion": 3}  # FSL FAST-like labels; lesions count as WM


def segmentation_labels(tissue: np.ndarray) -> np.ndarray:
    """A tissue segmentation file (0 background, 1 CSF, 2 GM, 3 WM) from rendered tissue codes."""
    out = np.zeros(tissue.shape, np.uint8)
    for name, code in SEGMENTATION_CODES.items():
        out[tissue == TISSUE_LABELS[name]] = code
    return out


def probability_levels(tissue: str) -> dict[str, float]:
    """Intensities that render a partial-volume probability map of one tissue instead of an MR contrast."""
    names = ("csf", "gm", "wm", "lesion", "bone", "marrow", "soft", "fat", "skin")
    return {name: float(name == tissue or (tissue == "wm" and name == "lesion")) for name in names}


def truncation(rng: np.random.Generator, clean: np.ndarray, acq: Acquisition) -> tuple[int, int, int, float]:
    """(axis, start, stop, fraction): cut a fraction of the head extent off one end of one axis.

    Along the head-foot axis the top is cut (cutting the neck would leave the brain whole).
    """
    axis = int(rng.integers(3))
    fraction = TRUNCATION_FRACTION.draw(rng)
    others = tuple(a for a in range(3) if a != axis)
    present = np.flatnonzero(foreground_mask(clean).any(axis=others))
    first, last = int(present[0]), int(present[-1])
    cut = int(round(fraction * (last - first + 1)))
    direction = acq.affine[:3, axis]
    if abs(direction[2]) == np.abs(direction).max():
        cut_top = direction[2] > 0  # superior is at high indices
    else:
        cut_top = bool(rng.random() < 0.5)
    if cut_top:
        return axis, 0, last + 1 - cut, fraction
    return axis, first + cut, clean.shape[axis], fraction


def _world_mm(acq: Acquisition) -> list[np.ndarray]:
    """Broadcastable RAS coordinates (mm) of the acquisition voxels, one term per array axis summed lazily."""
    affine = acq.affine
    ramps = [np.arange(n, dtype=np.float32) for n in acq.shape]
    shapes = [(-1, 1, 1), (1, -1, 1), (1, 1, -1)]
    return [sum(np.float32(affine[r, a]) * ramps[a].reshape(shapes[a]) for a in range(3)) + np.float32(affine[r, 3])
            for r in range(3)]


def phantom(rng: np.random.Generator, acq: Acquisition) -> tuple[np.ndarray, dict[str, float]]:
    """A cylindrical QA phantom (tilted a little) with rods and spheres of other intensities, and its sizes."""
    diameter, length = PHANTOM_DIAMETER_MM.draw(rng), PHANTOM_LENGTH_MM.draw(rng)
    tilt = rotation_matrix(tuple(rng.uniform(-8.0, 8.0, 3)))
    world = _world_mm(acq)
    centre = acq.affine[:3, 3] + acq.affine[:3, :3] @ ((np.asarray(acq.shape) - 1) / 2.0)
    x, y, z = (sum(np.float32(tilt[a, r]) * (world[a] - np.float32(centre[a])) for a in range(3)) for r in range(3))
    radius2 = x * x + y * y
    image = ((radius2 <= (diameter / 2.0) ** 2) & (np.abs(z) <= length / 2.0)).astype(np.float32)
    rods = int(rng.integers(4, 10))
    for _ in range(rods):
        angle, offset = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.7) * diameter / 2.0
        rod_r = rng.uniform(3.0, 10.0)
        inside = (x - offset * np.cos(angle)) ** 2 + (y - offset * np.sin(angle)) ** 2 <= rod_r**2
        image[inside & (image > 0)] = rng.uniform(0.1, 2.0)
    spheres = int(rng.integers(2, 6))
    for _ in range(spheres):
        c = rng.uniform(-0.3, 0.3, 3) * np.array([diameter, diameter, length])
        inside = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= rng.uniform(5.0, 15.0) ** 2
        image[inside & (image > 0)] = rng.uniform(0.1, 2.0)
    return image, {"phantom_diameter_mm": round(diameter, 2), "phantom_length_mm": round(length, 2),
                   "phantom_rods": rods, "phantom_spheres": spheres}


def near_empty(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, dict[str, int]]:
    """Zeros but for a few small dim spots: what a failed reconstruction or an empty export looks like."""
    image = np.zeros(shape, np.float32)
    spots = int(rng.integers(1, 4))
    for _ in range(spots):
        centre = [int(rng.integers(n)) for n in shape]
        radius = int(rng.integers(1, 4))
        box = tuple(slice(max(c - radius, 0), c + radius + 1) for c in centre)
        image[box] = rng.uniform(0.2, 1.0)
    return image, {"near_empty_spots": spots}
