"""The CPUs this process may use: the SLURM allocation, else the CPU affinity, never the whole node.

`--nprocs` defaults to this count (one image per CPU, each on one thread: config.ANTS_THREADS), so a job
given 2 CPUs on a 64-core node runs 2 images at a time, not 64; and to no more images than the memory holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from flairqc_app.config import PER_IMAGE_MEMORY_GB


def available_cpus(environ: Mapping[str, str] = os.environ) -> int:
    """SLURM_CPUS_PER_TASK when set to a positive number, else the CPUs in this process's affinity mask.

    >>> available_cpus({"SLURM_CPUS_PER_TASK": "4"})
    4
    >>> available_cpus({"SLURM_CPUS_PER_TASK": "none"}) == len(os.sched_getaffinity(0))
    True
    """
    slurm = environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity mask
        return os.cpu_count() or 1


def default_nprocs() -> int:
    """One image per available CPU, as many as the physical memory holds at config.PER_IMAGE_MEMORY_GB each."""
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return max(1, min(available_cpus(), int(memory_gb // PER_IMAGE_MEMORY_GB)))
