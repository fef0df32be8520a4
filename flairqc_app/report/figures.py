"""Slice PNGs for the participant report: numpy + PIL only, so all nine images take well under a second.

Display convention (neurological, as in MRIQC): axial and coronal views show the subject's right on the
right; axial views have anterior at the top, sagittal views anterior on the right, superior at the top.
Volumes are indexed in RAS array order (axis 0 towards Right, 1 Anterior, 2 Superior).
"""

from __future__ import annotations

import base64
import io

import nibabel as nib
import numpy as np
from PIL import Image

VIEWS = ("axial", "sagittal", "coronal")
# For each view: the axis cut through, then the axes shown horizontally and vertically.
_VIEW_AXES = {"axial": (2, 0, 1), "sagittal": (0, 1, 2), "coronal": (1, 0, 2)}
SLICE_PX = 256  # the largest physical extent of a volume is drawn with this many pixels
WINDOW_PERCENTILES = (1.0, 99.0)
OUTLINE_RGB = (255, 40, 40)
OUTLINE_PX = 2


def canonical_volume(image: nib.Nifti1Image) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The image in closest-RAS array order (first volume of a 4D image) and its voxel sizes in mm."""
    canonical = nib.as_closest_canonical(image)
    data = np.asanyarray(canonical.dataobj)
    while data.ndim > 3:
        data = data[..., 0]
    zooms = np.sqrt((canonical.affine[:3, :3] ** 2).sum(axis=0))
    return data, (float(zooms[0]), float(zooms[1]), float(zooms[2]))


def central_planes(volume: np.ndarray) -> list[np.ndarray]:
    """The central axial, sagittal and coronal planes as 2D float arrays, rows top to bottom."""
    planes = []
    for view in VIEWS:
        cut, _, _ = _VIEW_AXES[view]
        plane = np.take(volume, volume.shape[cut] // 2, axis=cut)
        planes.append(np.asarray(plane, dtype=np.float32).T[::-1])
    return planes


def display_sizes(shape: tuple[int, ...], zooms: tuple[float, float, float]) -> list[tuple[int, int]]:
    """(width, height) in pixels per view, proportional to millimetres so anisotropic voxels look right."""
    extents = [n * z for n, z in zip(shape[:3], zooms)]
    px_per_mm = SLICE_PX / max(extents)
    sizes = []
    for view in VIEWS:
        _, horizontal, vertical = _VIEW_AXES[view]
        sizes.append((max(1, round(extents[horizontal] * px_per_mm)), max(1, round(extents[vertical] * px_per_mm))))
    return sizes


def intensity_window(planes: list[np.ndarray]) -> tuple[float, float]:
    """Robust display window: percentiles of the non-zero finite voxels of the shown planes."""
    values = np.concatenate([p[np.isfinite(p)].ravel() for p in planes])
    foreground = values[values != 0]
    if foreground.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(foreground, WINDOW_PERCENTILES)
    if high <= low:  # (nearly) constant foreground, e.g. a mask: window from the background instead
        low = min(float(values.min()), 0.0)
    return float(low), float(high if high > low else low + 1.0)


def to_grey(plane: np.ndarray, window: tuple[float, float], size: tuple[int, int]) -> Image.Image:
    low, high = window
    scaled = np.clip((np.nan_to_num(plane, nan=low) - low) / (high - low), 0.0, 1.0)
    return Image.fromarray((scaled * 255).astype(np.uint8)).resize(size, Image.BILINEAR)


def central_slices(volume: np.ndarray, zooms: tuple[float, float, float]) -> list[Image.Image]:
    """Axial, sagittal and coronal central slices, windowed to 1-99 percentiles, at their true aspect."""
    planes = central_planes(volume)
    window = intensity_window(planes)
    return [to_grey(p, window, s) for p, s in zip(planes, display_sizes(volume.shape, zooms))]


def erode(mask: np.ndarray) -> np.ndarray:
    """Binary erosion of a 2D mask with the 4-neighbour cross (outside the image counts as background)."""
    padded = np.pad(mask, 1, constant_values=False)
    return padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]


def mask_edge(mask: np.ndarray, width: int = OUTLINE_PX) -> np.ndarray:
    """The inner rim of a 2D mask, `width` pixels thick: the mask minus its repeated erosion."""
    core = mask
    for _ in range(width):
        core = erode(core)
    return mask & ~core


def overlay_outline(image: Image.Image, mask_plane: np.ndarray, rgb: tuple[int, int, int] = OUTLINE_RGB) -> Image.Image:
    """The grey image with the outline of a 2D mask (same orientation as the image) drawn in colour.

    The mask is resized to the display size first, so the contour keeps its thickness in screen pixels.
    """
    mask = Image.fromarray(mask_plane.astype(np.uint8) * 255).resize(image.size, Image.NEAREST)
    edge = mask_edge(np.asarray(mask) > 127)
    pixels = np.array(image.convert("RGB"))
    pixels[edge] = rgb
    return Image.fromarray(pixels)


def png_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
