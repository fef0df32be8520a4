"""flair-linear preprocessing with antspyx: N4, rigid+affine MI registration to MNI, resampling, clip, scale.

Two recipes (config.PREPROC_RECIPES): `paper` reproduces Clinica's settings at native resolution; `fast`
runs the same algorithms on coarse copies (N4 on 6 mm, registration on 3 mm: the bias field and the affine are
resolution independent) and applies their result to the full-resolution image, which meets the per-image time
budget. ANTs runs on one thread (config.ANTS_THREADS), so a result never depends on the thread count.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from flairqc_app import config
from flairqc_app.config import PreprocSettings, RegistrationSettings
from flairqc_app.grid import clip_and_scale, grid_affine, template_brain_mask

# ITK reads its thread count once, at its first filter: set before anything runs (config.ANTS_THREADS says why)
os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(config.ANTS_THREADS)
import ants  # noqa: E402
from ants.internal import get_pointer_string  # noqa: E402


@dataclass
class PreprocResult:
    volume: np.ndarray  # float32, config.GRID_SHAPE, RAS array order, in [0, 1]
    transform: Path  # ANTs affine (.mat), template <- subject (moving) mapping as antsRegistration writes it
    registration_ncc: float
    bias_field: np.ndarray | None = None  # N4 field on the native grid (input array order), for the IQMs
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per stage
    # CPU seconds per stage: robust to a loaded machine
    cpu_seconds: dict[str, float] = field(default_factory=dict)


def to_ants(img: nib.Nifti1Image) -> ants.ANTsImage:
    """A 3D float ANTs image from nibabel (4D with one volume is squeezed); negative values are clamped."""
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    data = np.clip(data, 0, None)
    clean = nib.Nifti1Image(data, img.affine)
    clean.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(clean)


@lru_cache(maxsize=4)
def read_template(path: Path) -> ants.ANTsImage:
    return ants.image_read(str(path), pixeltype="float")


@lru_cache(maxsize=1)
def output_grid() -> ants.ANTsImage:
    """The 169x208x179 1 mm grid with origin (-84, -119, -78) mm RAS and identity direction (Clinica)."""
    grid = nib.Nifti1Image(np.zeros(config.GRID_SHAPE, np.float32), grid_affine())
    grid.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(grid)


@lru_cache(maxsize=2)
def template_on_grid(template_path: Path) -> np.ndarray:
    """The template resampled on the output grid: the reference for the registration similarity."""
    resampled = ants.resample_image_to_target(
        read_template(template_path), output_grid(), interp_type="linear"
    )
    return ants.to_nibabel_nifti(resampled).get_fdata(dtype=np.float32)


def at_spacing(image: ants.ANTsImage, spacing_mm: float | None) -> ants.ANTsImage:
    if spacing_mm is None:
        return image
    return ants.resample_image(image, (spacing_mm,) * 3, use_voxels=False, interp_type=0)


@lru_cache(maxsize=4)
def template_at_spacing(template_path: Path, spacing_mm: float | None) -> ants.ANTsImage:
    """The template on a registration's working grid: resampled once per worker, not per image (0.4 s)."""
    return at_spacing(read_template(template_path), spacing_mm)


def head_mask(image: ants.ANTsImage) -> ants.ANTsImage:
    """Voxels brighter than a small share of the bright end: the head, without zero padding or air noise."""
    data = image.numpy()
    positive = data[data > 0]
    if positive.size == 0:
        return image.new_image_like(np.ones_like(data, dtype=np.float32))
    threshold = config.HEAD_MASK_FRACTION * float(np.percentile(positive, 99))
    return image.new_image_like((data > threshold).astype(np.float32))


def n4_correct(image: ants.ANTsImage, recipe: PreprocSettings) -> tuple[ants.ANTsImage, np.ndarray]:
    """N4 with the FLAIR spline distance; on a coarse copy when the recipe says so, then divided out.
    Returns the corrected image and the bias field (native grid), which the IQMs read."""
    work = at_spacing(image, recipe.n4_working_spacing_mm)
    bias = ants.n4_bias_field_correction(
        work,
        mask=head_mask(work) if recipe.n4_head_mask else None,
        shrink_factor=recipe.n4_shrink_factor,
        convergence={"iters": list(recipe.n4_iterations), "tol": recipe.n4_tolerance},
        spline_param=recipe.n4_spline_distance_mm,
        return_bias_field=True,
    )
    if recipe.n4_working_spacing_mm is not None:
        bias = ants.resample_image_to_target(bias, image, interp_type="linear")
    bias_np = bias.numpy()
    corrected = image.numpy() / np.where(bias_np > 1e-6, bias_np, 1.0)
    return image.new_image_like(corrected.astype(np.float32)), bias_np.astype(np.float32, copy=False)


def register_affine(
    moving: ants.ANTsImage, template_path: Path, settings: RegistrationSettings, seed: int, prefix: str
) -> Path:
    """The settings' stages (rigid then affine: antsRegistrationSyNQuick -t a), Mattes MI, centre-of-mass start."""
    fixed = template_at_spacing(template_path, settings.spacing_mm)
    mov = at_spacing(moving, settings.spacing_mm)
    f, m = get_pointer_string(fixed), get_pointer_string(mov)
    levels = dict(
        convergence=f"[{'x'.join(map(str, settings.iterations))},{settings.convergence_threshold},10]",
        shrink="x".join(map(str, settings.shrink_factors)),
        smooth="x".join(map(str, settings.smoothing_vox)) + "vox",
    )
    metric = f"MI[{f},{m},1,{settings.mi_bins},Regular,{settings.sampling_percentage}]"
    stages: list[str] = []
    for transform in settings.transforms:
        stages += [
            "--transform",
            transform,
            "--metric",
            metric,
            "--convergence",
            levels["convergence"],
            "--shrink-factors",
            levels["shrink"],
            "--smoothing-sigmas",
            levels["smooth"],
        ]
    args = [
        "--dimensionality",
        "3",
        "--float",
        "1",
        "--output",
        f"[{prefix}]",
        "--interpolation",
        "Linear",
        "--use-histogram-matching",
        "0",
        "--winsorize-image-intensities",
        "[0.005,0.995]",
        "--initial-moving-transform",
        f"[{f},{m},1]",
        "--random-seed",
        str(seed),
        *stages,
    ]
    ants.registration(args, None)
    transform = Path(prefix + "0GenericAffine.mat")
    if not transform.exists():
        raise RuntimeError("antsRegistration wrote no transform")
    return transform


def normalised_cross_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x, y = a[mask].astype(np.float64), b[mask].astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def preprocess_image(
    img: nib.Nifti1Image, template_path: Path, recipe: PreprocSettings, transform_dir: Path | None = None
) -> PreprocResult:
    """Run the whole recipe on one image. The transform is kept in transform_dir (a temp dir by default)."""
    timings: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    tic, cpu_tic = time.perf_counter(), time.process_time()

    def lap(name: str) -> None:
        nonlocal tic, cpu_tic
        now, cpu_now = time.perf_counter(), time.process_time()
        timings[name], cpu_seconds[name] = round(now - tic, 3), round(cpu_now - cpu_tic, 3)
        tic, cpu_tic = now, cpu_now

    image = to_ants(img)
    lap("load")
    corrected, bias_field = n4_correct(image, recipe)
    lap("n4")
    out_dir = Path(transform_dir or tempfile.mkdtemp(prefix="flairqc-xfm-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = str(out_dir / f"reg{os.getpid()}_")
    transform = register_affine(corrected, template_path, recipe.registration, recipe.seed, prefix)
    lap("registration")
    volume, ncc = registered_volume(corrected, transform, template_path, recipe)
    lap("resample")
    if recipe.retry_registration is not None and ncc < recipe.retry_below_ncc:
        retry = register_affine(
            corrected, template_path, recipe.retry_registration, recipe.seed, prefix + "retry_"
        )
        retry_volume, retry_ncc = registered_volume(corrected, retry, template_path, recipe)
        if retry_ncc > ncc:
            volume, ncc = retry_volume, retry_ncc
            retry.replace(transform)
        else:
            retry.unlink()
        lap("registration_retry")
    return PreprocResult(
        volume=volume,
        transform=transform,
        registration_ncc=ncc,
        bias_field=bias_field,
        timings=timings,
        cpu_seconds=cpu_seconds,
    )


def registered_volume(
    corrected: ants.ANTsImage, transform: Path, template_path: Path, recipe: PreprocSettings
) -> tuple[np.ndarray, float]:
    """The image on the output grid, clipped and scaled, and its NCC with the template inside the brain mask."""
    resampled = ants.apply_transforms(output_grid(), corrected, [str(transform)], interpolator="linear")
    volume = ants.to_nibabel_nifti(resampled).get_fdata(dtype=np.float32)
    volume = clip_and_scale(volume, recipe.clip_percentiles)
    return volume, normalised_cross_correlation(
        volume, template_on_grid(template_path), template_brain_mask()
    )
