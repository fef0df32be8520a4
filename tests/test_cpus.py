"""--nprocs defaults to the CPUs the job is given (SLURM allocation, else the affinity mask), capped by memory."""

import os

from flairqc_app import cpus
from flairqc_app.cli import build_parser

ARGS = ["bids", "out", "participant"]


def test_the_slurm_allocation_sets_the_default(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert build_parser().parse_args(ARGS).nprocs == 1
    assert build_parser().parse_args(ARGS + ["--nprocs", "3"]).nprocs == 3  # an explicit value wins


def test_without_slurm_the_affinity_mask_counts(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert cpus.available_cpus() == len(os.sched_getaffinity(0))
    assert cpus.available_cpus({"SLURM_CPUS_PER_TASK": "0"}) == len(os.sched_getaffinity(0))


def test_no_more_images_than_the_memory_holds(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "512")
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    assert cpus.default_nprocs() == min(512, int(memory_gb // cpus.PER_IMAGE_MEMORY_GB))
