"""Straight rejects as transforms: each kind's random parameters are drawn first, then applied.

Following TorchIO, drawing (`draw`, from the case's generator, in a fixed order) is kept apart from applying
(`render` / `bounds`), so a drawn object says what an image will hold before any voxel is made. No-head kinds
(near-empty, noise-only, phantom) make their own image; head-based kinds (wrong contrast, segmentation,
truncation, 2D) reuse the head renderer in `case`, which dispatches every kind through one table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flairqc_app.synth.geometry import Acquisition, rotation_matrix
from flairqc_app.synth.measures import foreground_mask
from flairqc_app.synth.params import (
    PHANTOM_DIAMETER_MM,
    PHANTOM_LENGTH_MM,
    TISSUE_LABELS,
    TRUNCATION_FRACTION,
)

SEGMENTATION_CODES = {"csf": 1, "gm": 2, "wm": 3, "lesion": 3}  # FSL FAST-like labels; lesions count as WM
SEGMENTATION_KINDS = ("labels", "gm", "wm")


def segmentation_labels(tissue: np.ndarray) -> np.ndarray:
    """A tissue segmentation file (0 background, 1 CSF, 2 GM, 3 WM) from rendered tissue codes."""
    out = np.zeros(tissue.shape, np.uint8)
    for name, code in SEGMENTATION_CODES.items():
        out[tissue == TISSUE_LABELS[name]] = code
    return out


def probability_levels(tissue: str) -> dict[str, float]:
    """Intensities that render a partial-volume probability map of one tissue instead of an MR contrast.

    >>> probability_levels("wm")["lesion"], probability_levels("gm")["lesion"]
    (1.0, 0.0)
    """
    names = ("csf", "gm", "wm", "lesion", "bone", "marrow", "soft", "fat", "skin")
    return {name: float(name == tissue or (tissue == "wm" and name == "lesion")) for name in names}


@dataclass(frozen=True)
class Segmentation:
    """A segmentation file instead of an MR image: a label map ("labels") or one tissue's probability map."""

    kind: str

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Segmentation:
        return cls(str(rng.choice(list(SEGMENTATION_KINDS))))

    def summary(self) -> dict[str, str]:
        return {"segmentation_kind": self.kind}


@dataclass(frozen=True)
class Truncation:
    """A fraction of the head extent cut off one end of one axis (`cut_top`: the high-index end).

    Along the head-foot axis the top is cut (cutting the neck would leave the brain whole); along the others
    the end is drawn.
    """

    axis: int
    fraction: float
    cut_top: bool

    @classmethod
    def draw(cls, rng: np.random.Generator, acq: Acquisition) -> Truncation:
        axis = int(rng.integers(3))
        fraction = TRUNCATION_FRACTION.draw(rng)
        direction = acq.affine[:3, axis]
        if abs(direction[2]) == np.abs(direction).max():
            cut_top = bool(direction[2] > 0)  # superior is at high indices
        else:
            cut_top = bool(rng.random() < 0.5)
        return cls(axis, fraction, cut_top)

    def bounds(self, clean: np.ndarray) -> tuple[int, int]:
        """(start, stop) of the voxels kept along `axis`, measured on the head's foreground."""
        others = tuple(a for a in range(3) if a != self.axis)
        present = np.flatnonzero(foreground_mask(clean).any(axis=others))
        first, last = int(present[0]), int(present[-1])
        cut = int(round(self.fraction * (last - first + 1)))
        if self.cut_top:
            return 0, last + 1 - cut
        return first + cut, clean.shape[self.axis]

    def summary(self) -> dict[str, object]:
        return {"truncation_axis": self.axis, "truncation_fraction": round(self.fraction, 3)}


def _world_mm(acq: Acquisition) -> list[np.ndarray]:
    """Broadcastable RAS coordinates (mm) of the acquisition voxels, one term per array axis summed lazily."""
    affine = acq.affine
    ramps = [np.arange(n, dtype=np.float32) for n in acq.shape]
    shapes = [(-1, 1, 1), (1, -1, 1), (1, 1, -1)]
    return [
        sum(np.float32(affine[r, a]) * ramps[a].reshape(shapes[a]) for a in range(3))
        + np.float32(affine[r, 3])
        for r in range(3)
    ]


@dataclass(frozen=True)
class Phantom:
    """A cylindrical QA phantom (tilted a little) with rods and spheres of other intensities.

    rods: (angle, offset mm, radius mm, intensity) each; spheres: (centre offset mm, radius mm, intensity)
    each.
    """

    diameter: float
    length: float
    tilt_deg: tuple[float, float, float]
    rods: tuple[tuple[float, float, float, float], ...]
    spheres: tuple[tuple[np.ndarray, float, float], ...]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Phantom:
        diameter, length = PHANTOM_DIAMETER_MM.draw(rng), PHANTOM_LENGTH_MM.draw(rng)
        tilt = tuple(rng.uniform(-8.0, 8.0, 3))
        rods = tuple(
            (
                rng.uniform(0, 2 * np.pi),
                rng.uniform(0.2, 0.7) * diameter / 2.0,
                rng.uniform(3.0, 10.0),
                rng.uniform(0.1, 2.0),
            )
            for _ in range(int(rng.integers(4, 10)))
        )
        spheres = tuple(
            (
                rng.uniform(-0.3, 0.3, 3) * np.array([diameter, diameter, length]),
                rng.uniform(5.0, 15.0),
                rng.uniform(0.1, 2.0),
            )
            for _ in range(int(rng.integers(2, 6)))
        )
        return cls(diameter, length, tilt, rods, spheres)

    def render(self, acq: Acquisition) -> np.ndarray:
        tilt = rotation_matrix(self.tilt_deg)
        world = _world_mm(acq)
        centre = acq.affine[:3, 3] + acq.affine[:3, :3] @ ((np.asarray(acq.shape) - 1) / 2.0)
        x, y, z = (
            sum(np.float32(tilt[a, r]) * (world[a] - np.float32(centre[a])) for a in range(3))
            for r in range(3)
        )
        radius2 = x * x + y * y
        inside = (radius2 <= (self.diameter / 2.0) ** 2) & (np.abs(z) <= self.length / 2.0)
        image = inside.astype(np.float32)
        for angle, offset, rod_r, value in self.rods:
            inside = (x - offset * np.cos(angle)) ** 2 + (y - offset * np.sin(angle)) ** 2 <= rod_r**2
            image[inside & (image > 0)] = value
        for c, radius, value in self.spheres:
            inside = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= radius**2
            image[inside & (image > 0)] = value
        return image

    def summary(self) -> dict[str, object]:
        return {
            "phantom_diameter_mm": round(self.diameter, 2),
            "phantom_length_mm": round(self.length, 2),
            "phantom_rods": len(self.rods),
            "phantom_spheres": len(self.spheres),
        }


@dataclass(frozen=True)
class NearEmpty:
    """Zeros but for a few small dim spots: what a failed reconstruction or an empty export looks like.

    spots: (centre voxel, radius voxels, intensity) each.
    """

    spots: tuple[tuple[list[int], int, float], ...]

    @classmethod
    def draw(cls, rng: np.random.Generator, shape: tuple[int, int, int]) -> NearEmpty:
        spots = int(rng.integers(1, 4))
        return cls(
            tuple(
                ([int(rng.integers(n)) for n in shape], int(rng.integers(1, 4)), rng.uniform(0.2, 1.0))
                for _ in range(spots)
            )
        )

    def render(self, shape: tuple[int, int, int]) -> np.ndarray:
        image = np.zeros(shape, np.float32)
        for centre, radius, value in self.spots:
            box = tuple(slice(max(c - radius, 0), c + radius + 1) for c in centre)
            image[box] = value
        return image

    def summary(self) -> dict[str, int]:
        return {"near_empty_spots": len(self.spots)}
