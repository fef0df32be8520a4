"""Slice montages for the participant report: numpy + PIL only, a few hundred milliseconds per image.

Display convention (neurological, as in MRIQC): axial and coronal views show the subject's right on the
right; axial views have anterior at the top, sagittal views anterior on the right, superior at the top.
Volumes are indexed in RAS array order (axis 0 towards Right, 1 Anterior, 2 Superior).

Montages are one image per plane (tiles side by side), encoded as JPEG: on the real 3D FLAIR of
realdata-dev the 17 tiles of one volume take about a third of the bytes of PNG (benchmarks/bench_reports.py).
Outlines are separate transparent PNGs laid over the montage, so the page can switch them off.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

VIEWS = ("axial", "sagittal", "coronal")
# For each view: the axis cut through, then the axes shown horizontally and vertically.
_VIEW_AXES = {"axial": (2, 0, 1), "sagittal": (0, 1, 2), "coronal": (1, 0, 2)}
# The letters at the left and right edges of a tile of each view (neurological convention).
SIDE_LABELS = {"axial": ("L", "R"), "sagittal": ("P", "A"), "coronal": ("L", "R")}
SLICES_PER_VIEW = {"axial": 7, "sagittal": 5, "coronal": 5}
SLICE_PX = 256  # central slices: the largest physical extent of a volume is drawn with this many pixels
TILE_PX = 200  # montage tiles: the same, smaller, so that 7 axial tiles fit a 1,366 px screen
TILE_GAP_PX = 2
# montage slices are spread over this part of the head's extent along the cut axis (sagittal: the brain, not the ears)
SLICE_SPAN = {"axial": (0.12, 0.88), "sagittal": (0.2, 0.8), "coronal": (0.12, 0.88)}
WINDOW_PERCENTILES = (1.0, 99.0)
AIR_WINDOW_PERCENTILES = (0.0, 100.0)  # of the voxels darker than AIR_FRACTION of the tissue window
AIR_FRACTION = 0.1
OUTLINE_RGB = (255, 40, 40)
OUTLINE_PX = 2
JPEG_QUALITY = 75  # keeps the 0.88 mm T1w of realdata-dev's page under 400 KB (bench_reports.py)


def canonical_volume(image: nib.Nifti1Image) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The image in closest-RAS array order (first volume of a 4D image) and its voxel sizes in mm."""
    canonical = nib.as_closest_canonical(image)
    data = np.asanyarray(canonical.dataobj)
    while data.ndim > 3:
        data = data[..., 0]
    zooms = np.sqrt((canonical.affine[:3, :3] ** 2).sum(axis=0))
    return data, (float(zooms[0]), float(zooms[1]), float(zooms[2]))


def plane(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    """One plane of a view as a 2D float array, rows top to bottom. Indexing, not np.take: take copies the whole
    volume first when it is not C-ordered (as nibabel's are), 5 ms a plane.

    >>> plane(np.arange(24).reshape(2, 3, 4), "axial", 1).tolist()  # x across, y upwards
    [[9.0, 21.0], [5.0, 17.0], [1.0, 13.0]]
    """
    cut, _, _ = _VIEW_AXES[view]
    return np.asarray(volume[(slice(None),) * cut + (index,)], dtype=np.float32).T[::-1]


def central_planes(volume: np.ndarray) -> list[np.ndarray]:
    """The central axial, sagittal and coronal planes."""
    return [plane(volume, view, volume.shape[_VIEW_AXES[view][0]] // 2) for view in VIEWS]


def display_sizes(
    shape: tuple[int, ...], zooms: tuple[float, float, float], longest: int = SLICE_PX
) -> list[tuple[int, int]]:
    """(width, height) in pixels per view, proportional to millimetres so anisotropic voxels look right."""
    extents = [n * z for n, z in zip(shape[:3], zooms)]
    px_per_mm = longest / max(extents)
    sizes = []
    for view in VIEWS:
        _, horizontal, vertical = _VIEW_AXES[view]
        sizes.append(
            (max(1, round(extents[horizontal] * px_per_mm)), max(1, round(extents[vertical] * px_per_mm)))
        )
    return sizes


def window_of(
    values: np.ndarray, percentiles: tuple[float, float] = WINDOW_PERCENTILES
) -> tuple[float, float]:
    """Robust display window: percentiles of the non-zero finite values.

    >>> window_of(np.arange(101.0), (0, 100))
    (1.0, 100.0)
    """
    values = values[np.isfinite(values)]
    foreground = values[values != 0]
    if foreground.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(foreground, percentiles))
    if high <= low:  # (nearly) constant foreground, e.g. a mask: window from the background instead
        low = min(float(values.min()), 0.0)
    return low, high if high > low else low + 1.0


def intensity_window(planes: list[np.ndarray]) -> tuple[float, float]:
    """The tissue window of the shown planes."""
    return window_of(np.concatenate([p.ravel() for p in planes]))


def air_window(planes: list[np.ndarray], tissue: tuple[float, float]) -> tuple[float, float]:
    """A window on the air around the head (where ghosting and noise show): tissue saturates to white.

    The air is every value below AIR_FRACTION of the tissue window, zeros included (many scanners zero it).

    >>> air_window([np.array([0.0, 0.0, 1.0, 2.0, 4.0, 50.0, 100.0])], (0.0, 100.0))
    (0.0, 4.0)
    """
    values = np.concatenate([p.ravel() for p in planes])
    air = values[np.isfinite(values) & (values < tissue[0] + AIR_FRACTION * (tissue[1] - tissue[0]))]
    if air.size == 0:
        return tissue
    low, high = (float(v) for v in np.percentile(air, AIR_WINDOW_PERCENTILES))
    return (low, high) if high > low else tissue


def to_grey(plane_: np.ndarray, window: tuple[float, float], size: tuple[int, int]) -> Image.Image:
    low, high = window
    scaled = np.clip((np.nan_to_num(plane_, nan=low) - low) / (high - low), 0.0, 1.0)
    return Image.fromarray((scaled * 255).astype(np.uint8)).resize(size, Image.BILINEAR)


def central_slices(volume: np.ndarray, zooms: tuple[float, float, float]) -> list[Image.Image]:
    """Axial, sagittal and coronal central slices, windowed to 1-99 percentiles, at their true aspect."""
    planes = central_planes(volume)
    window = intensity_window(planes)
    return [to_grey(p, window, s) for p, s in zip(planes, display_sizes(volume.shape, zooms))]


def head_extent(volume: np.ndarray, axis: int, window: tuple[float, float]) -> tuple[int, int]:
    """First and last index along an axis holding voxels above a tenth of the window: the head, not the air.
    NaN voxels count as air (fmax skips them), with no copy of the volume.

    >>> head = np.pad(np.ones((2, 3, 4)), 2)
    >>> head_extent(head, 0, (0.0, 1.0))
    (2, 3)
    >>> head[0] = np.nan; head[2, 0, 0] = np.nan  # a NaN plane is air; a NaN voxel does not hide the head
    >>> head_extent(head, 0, (0.0, 1.0))
    (2, 3)
    """
    low, high = window
    profile = np.fmax.reduce(volume, axis=tuple(a for a in range(volume.ndim) if a != axis))
    inside = np.flatnonzero(profile > low + 0.1 * (high - low))
    return (int(inside[0]), int(inside[-1])) if inside.size else (0, volume.shape[axis] - 1)


def slice_indices(first: int, last: int, count: int, span: tuple[float, float] = (0.12, 0.88)) -> list[int]:
    """`count` distinct slice indices spread over the `span` fraction of [first, last].

    >>> slice_indices(0, 100, 5)
    [12, 31, 50, 69, 88]
    """
    low, high = (first + f * (last - first) for f in span)
    return sorted({int(round(i)) for i in np.linspace(low, high, count)})


@dataclass(frozen=True)
class Montage:
    """The slices of one view, as planes and the positions they were cut at."""

    view: str
    indices: list[int]
    planes: list[np.ndarray]


def montages(volume: np.ndarray, window: tuple[float, float]) -> list[Montage]:
    """The planes of every view, spread over the head: SLICES_PER_VIEW of them."""
    out = []
    for view in VIEWS:
        cut = _VIEW_AXES[view][0]
        indices = slice_indices(*head_extent(volume, cut, window), SLICES_PER_VIEW[view], SLICE_SPAN[view])
        out.append(Montage(view, indices, [plane(volume, view, i) for i in indices]))
    return out


def label_font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def side_labels(tile: Image.Image, view: str) -> Image.Image:
    """The tile with its two side letters (L/R or P/A) drawn in yellow at mid-height."""
    tile = tile.convert("RGB")
    draw = ImageDraw.Draw(tile)
    font = label_font()
    left, right = SIDE_LABELS[view]
    y = tile.height // 2 - 8
    draw.text((3, y), left, fill=(255, 230, 0), font=font, stroke_width=1, stroke_fill=(0, 0, 0))
    width = draw.textlength(right, font=font)
    draw.text(
        (tile.width - 3 - width, y),
        right,
        fill=(255, 230, 0),
        font=font,
        stroke_width=1,
        stroke_fill=(0, 0, 0),
    )
    return tile


def strip(tiles: list[Image.Image], mode: str = "RGB") -> Image.Image:
    """Tiles side by side with a small gap (black, or index 0, transparent, for outline layers in mode P)."""
    width = sum(t.width for t in tiles) + TILE_GAP_PX * (len(tiles) - 1)
    out = Image.new(mode, (width, max(t.height for t in tiles)))
    x = 0
    for tile in tiles:
        out.paste(tile if tile.mode == mode else tile.convert(mode), (x, 0))
        x += tile.width + TILE_GAP_PX
    return out


def montage_strips(
    volume: np.ndarray, zooms: tuple[float, float, float], air: bool = False
) -> list[Image.Image]:
    """One strip per view: slices spread over the head, windowed on tissue (or on the air), letters on the ends."""
    cuts = montages(volume, intensity_window(central_planes(volume)))
    sizes = display_sizes(volume.shape, zooms, TILE_PX)
    tissue = intensity_window([p for m in cuts for p in m.planes])
    window = air_window([p for m in cuts for p in m.planes], tissue) if air else tissue
    strips = []
    for cut, size in zip(cuts, sizes):
        tiles = [to_grey(p, window, size) for p in cut.planes]
        tiles[0] = side_labels(tiles[0], cut.view)
        strips.append(strip(tiles))
    return strips


def outline_strips(
    mask: np.ndarray, volume: np.ndarray, zooms: tuple[float, float, float]
) -> list[Image.Image]:
    """Transparent strips with the outline of `mask` on the same slices as montage_strips(volume)."""
    cuts = montages(volume, intensity_window(central_planes(volume)))
    sizes = display_sizes(volume.shape, zooms, TILE_PX)
    strips = []
    for cut, size in zip(cuts, sizes):
        layer = strip([outline_layer(plane(mask, cut.view, i) > 0, size) for i in cut.indices], "P")
        layer.putpalette([0, 0, 0, *OUTLINE_RGB])
        layer.info["transparency"] = 0
        strips.append(layer)
    return strips


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


def resized_edge(mask_plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The mask resized to the display size first, so the contour keeps its thickness in screen pixels."""
    mask = Image.fromarray(mask_plane.astype(np.uint8) * 255).resize(size, Image.NEAREST)
    return mask_edge(np.asarray(mask) > 127)


def outline_layer(mask_plane: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A palette tile: index 1 on the outline of a 2D mask, 0 (transparent once the strip has its palette) elsewhere.

    Two palette entries instead of RGBA: the layers of a page take a third less.
    """
    return Image.fromarray(resized_edge(mask_plane, size).astype(np.uint8), "P")


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        image.save(buffer, format="PNG", optimize=True, **({"transparency": 0} if image.mode == "P" else {}))
    return buffer.getvalue()


def data_uri(image: Image.Image, fmt: str = "PNG") -> str:
    """A data: URI of the image as PNG (exact, for outlines and tests) or JPEG (montages, a third of the size)."""
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(encoded(image, fmt)).decode("ascii")
