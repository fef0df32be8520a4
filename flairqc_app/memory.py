"""The memory an image will take to process, from its NIfTI header alone, checked before any voxel is read.

The gate reads the whole image as float32 and preprocessing makes several working copies of it, so a small file
that claims a huge grid (a 4 MB .nii.gz of 1024^3 voxels, a 1 KB header claiming 1500^3) would exhaust the machine
before any check could refuse it. Such an image fails alone with reason `too_large`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import nibabel as nib

from flairqc_app.config import WORKING_COPIES


def working_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    """Bytes needed to process an image: its voxels at (at least) float32, times the working copies.

    >>> working_bytes((1024, 1024, 1024), 2) / 2**30
    40.0
    """
    return math.prod(int(n) for n in shape) * max(int(itemsize), 4) * WORKING_COPIES


def machine_memory_bytes() -> int:
    """Physical memory of the machine (the default memory cap)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def too_large(path: Path, cap_bytes: int) -> str | None:
    """Why processing the image would exceed `cap_bytes`, or None (also for a header that cannot be read: the
    gate then says why)."""
    try:
        header = nib.load(str(path)).header  # the header only: nibabel reads the voxels on demand
        shape, dtype = header.get_data_shape(), header.get_data_dtype()
    except Exception:  # nibabel raises many types for corrupt files
        return None
    need = working_bytes(shape, dtype.itemsize)
    if need <= cap_bytes:
        return None
    grid = "x".join(str(n) for n in shape)
    return (
        f"{grid} voxels of {dtype} would take about {need / 2**30:.1f} GiB to process, "
        f"above the {cap_bytes / 2**30:.1f} GiB allowed per image (--mem divided by --nprocs)"
    )
