"""All settings of flairqc in one place: grid, template, preprocessing, gate limits, tasks, exit codes.

Anything a user or a developer may want to tune lives here, so that modules stay free of magic numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

# ---------------------------------------------------------------- exit codes (BEP027)
EXIT_OK = 0
EXIT_FAILURE = 1  # unspecified failure, or one or more images failed (the others were processed)
EXIT_VALIDATION = 16
EXIT_UNKNOWN_LEVEL = 17
EXIT_NO_MATCH = 18  # filters selected no files
EXIT_USAGE = 64
EXIT_NO_INPUT = 66
EXIT_CANT_CREATE = 73
EXIT_IO = 74
EXIT_SIGINT = 130  # 128 + the signal number, as shells report it
EXIT_SIGTERM = 143

# ---------------------------------------------------------------- package data
DATA_DIR = Path(str(resources.files("flairqc_app") / "data"))
TEMPLATE_SPACE = "MNI152NLin2009aSym"
FLAIR_TEMPLATE = DATA_DIR / "tpl-MNI152NLin2009aSym_res-1_desc-flairqc_FLAIR.nii.gz"
T1W_TEMPLATE = DATA_DIR / "tpl-MNI152NLin2009aSym_res-1_T1w.nii.gz"
BRAIN_MASK = DATA_DIR / "tpl-MNI152NLin2009aSym_res-1_desc-brain_mask.nii.gz"
TISSUE_LABELS = DATA_DIR / "tpl-MNI152NLin2009aSym_res-1_desc-tissue_dseg.nii.gz"  # 1 CSF, 2 GM, 3 WM
DEFAULT_MODELS_DIR = DATA_DIR / "models"

# ---------------------------------------------------------------- output grid (Clinica ref_cropped_template)
GRID_SHAPE = (169, 208, 179)
GRID_ORIGIN_RAS_MM = (-84.0, -119.0, -78.0)  # world position of voxel (0, 0, 0), identity direction, 1 mm
GRID_SPACING_MM = 1.0


# ---------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class RegistrationSettings:
    """Levels of the rigid then affine Mattes MI registration (antsRegistrationSyNQuick -t a by default)."""

    spacing_mm: float | None = None  # None: register at native resolution
    # antsRegistration stages, each over all levels
    transforms: tuple[str, ...] = (
        "Rigid[0.1]",
        "Affine[0.1]",
    )
    iterations: tuple[int, ...] = (1000, 500, 250, 0)
    shrink_factors: tuple[int, ...] = (8, 4, 2, 1)
    smoothing_vox: tuple[int, ...] = (3, 2, 1, 0)
    # a level stops when the metric changes less over the last 10 iterations
    convergence_threshold: float = 1e-6
    mi_bins: int = 32
    sampling_percentage: float = 0.25


@dataclass(frozen=True)
class PreprocSettings:
    """One preprocessing recipe. `paper` follows Clinica flair-linear; `fast` is the default (issue #36).

    `fast` runs N4 on a 6 mm copy inside a head mask, with three levels of 25 iterations, and registers 3 mm
    copies (rigid then affine, 6 then 3 mm levels) from the centres of mass. An affine stage alone halves the
    registration time but failed on a 2 mm synthetic FLAIR with motion (tests/test_train_synthetic.py, NCC 0.14
    against 0.5 and more). The mask matters: without one,
    N4 stops at once on images with a zero background (measured on the real 3D FLAIR: bias field 1.000
    everywhere) and crawls on zero-padded, skull-stripped ones (10 minutes for the FLAIR template).
    When the registered image correlates poorly with the template (NCC below `retry_below_ncc`), `fast`
    registers again with `retry_registration` (rigid then affine from 12 mm: about 5 s more; it recovers a
    registration stuck near its starting point, tests/test_preprocess.py) and keeps the better of the two.
    benchmarks/bench_speed.py compares it with the recipe it replaced (N4 on 4 mm, rigid then affine, a 2 mm
    retry: 1.6 times the CPU time, the same verdict on 12 of 14 images; README "Speed and memory").
    benchmarks/bench_preprocess.py measures alignment.
    """

    name: str
    n4_spline_distance_mm: float = 100.0
    n4_shrink_factor: int = 4
    n4_iterations: tuple[int, ...] = (50, 50, 50, 50)
    n4_tolerance: float = 1e-7
    n4_working_spacing_mm: float | None = None  # None: N4 on the native grid
    # fit the bias field on head voxels only (preprocess.head_mask); Clinica uses none
    n4_head_mask: bool = False
    registration: RegistrationSettings = RegistrationSettings()
    retry_registration: RegistrationSettings | None = None  # None: one registration, whatever its quality
    retry_below_ncc: float = 0.3  # successes measure >= 0.4, failures about 0.1 (bench_preprocess)
    clip_percentiles: tuple[float, float] = (2.0, 98.0)
    seed: int = 42


PREPROC_RECIPES = {
    "paper": PreprocSettings(name="paper"),
    "fast": PreprocSettings(
        name="fast",
        n4_shrink_factor=1,
        n4_iterations=(25, 25, 25),
        n4_tolerance=1e-4,
        n4_working_spacing_mm=6.0,
        n4_head_mask=True,
        registration=RegistrationSettings(
            spacing_mm=3.0, iterations=(500, 250), shrink_factors=(2, 1), smoothing_vox=(1, 0)
        ),
        retry_registration=RegistrationSettings(
            spacing_mm=3.0,
            iterations=(500, 250, 125),
            shrink_factors=(4, 2, 1),
            smoothing_vox=(2, 1, 0),
            convergence_threshold=1e-5,
        ),
    ),
}
DEFAULT_PREPROC = "fast"
# N4 head mask: voxels above this share of the 99th percentile of the positive voxels
HEAD_MASK_FRACTION = 0.1


# ---------------------------------------------------------------- input gate
@dataclass(frozen=True)
class GateLimits:
    """Bounds outside which an image is not a usable 3D FLAIR of the whole brain (`--gate-config` overrides them).

    2D or 3D is decided from the sidecar first, then from the slice thickness, never from the voxel ratio: 3D
    reconstructions are often anisotropic (GE CUBE 0.47x0.47x1.2 mm, 1x1x1.9 mm), 2D stacks have thick slices.
    """

    min_voxels_per_axis: int = 24
    # outside [min, max]: not brain MRI, or a wrong pixdim/affine in the header
    min_voxel_size_mm: float = 0.2
    max_voxel_size_mm: float = 8.0
    max_in_plane_mm: float = 2.0  # the two finer axes; coarser (a 3 mm isotropic volume): voxels_too_coarse
    max_slice_thickness_mm: float = 1.8  # no sidecar MRAcquisitionType: 3D FLAIR is acquired at <= 1.5 mm
    # the sidecar says 3D: anisotropic reconstructions up to about 2 mm
    max_slice_thickness_3d_mm: float = 2.0
    max_slice_gap_mm: float = 0.1  # SpacingBetweenSlices - SliceThickness above this: a gapped 2D stack
    min_field_of_view_mm: float = 100.0  # smallest extent of the volume along any axis


GATE_LIMITS = GateLimits()


@dataclass(frozen=True)
class Settings:
    """Everything `flairqc` was asked to do, built once by cli.py from the arguments (MRIQC's config): the
    levels read only this, and each run writes it to logs/ (runlog.write_settings). Field names are the
    options' (--session-id is session_id); the parser gives every default."""

    bids_dir: Path
    output_dir: Path
    analysis_level: tuple[str, ...]  # as given, repeats removed
    participant_label: tuple[str, ...] | None  # labels, with or without sub-, or files of labels
    session_id: tuple[str, ...] | None
    run_id: tuple[str, ...] | None
    bids_filter_file: Path | None
    models_dir: Path
    device: str
    thresholds: Path | None
    preproc: str
    gate_config: Path | None
    write_preproc: bool
    iqm_json: bool
    force: bool
    nprocs: int
    omp_nthreads: int
    mem: float | None  # GB
    work_dir: Path | None
    skip_bids_validation: bool
    verbose: int
    quiet: bool


@dataclass(frozen=True)
class RunSettings:
    """What every image of a participant-level run is processed with (the workers get a copy)."""

    bids_dir: Path
    output_dir: Path
    work_dir: Path
    models_dir: Path
    recipe: PreprocSettings
    device: str = "auto"
    nprocs: int = 1
    threshold_overrides: dict[str, float] = field(default_factory=dict)
    write_preproc: bool = False
    write_iqm_json: bool = False  # --iqm-json: the IQMs in MRIQC's JSON layout beside the TSV
    force: bool = False
    gate_limits: GateLimits = GATE_LIMITS
    image_memory_bytes: int = 8 << 30  # memory.too_large refuses an image that would need more


# ---------------------------------------------------------------- tasks and grades
ARTEFACTS = ("motion", "noise", "contrast")
SEVERITIES = ("moderate", "severe")
ARTEFACT_TASKS = tuple(f"{a}_{s}" for a in ARTEFACTS for s in SEVERITIES)
TASKS = ("straight_reject",) + ARTEFACT_TASKS

# ---------------------------------------------------------------- runtime defaults
DEFAULT_OMP_NTHREADS = 1  # --nprocs defaults to the CPUs given (cpus.available_cpus): images in parallel
# ITK splits the N4 fit and the registration metric into per-thread sums, and onnxruntime its convolutions, so the
# thread count changes the result (up to 0.07 in a probability of the real 3D FLAIR with ANTs on 1 or 2 threads):
# both run on one thread per image, whatever --omp-nthreads, and --nprocs uses the other cores.
ANTS_THREADS = 1
INFERENCE_THREADS = 1
# per-image memory bound for --mem (measured peak 1.1 GB: benchmarks/bench_pipeline.py)
PER_IMAGE_MEMORY_GB = 2.0
# working float32 copies of an image while it is processed: the measured peak grows by ~26 bytes per input voxel
# (6.5 copies) above ~650 MB of models and templates; 10 leaves room. memory.too_large refuses an image whose
# voxels x max(itemsize, 4) x WORKING_COPIES exceed its share of --mem (default: the machine's memory).
WORKING_COPIES = 10
SIDECAR_FIELDS = (
    "Manufacturer",
    "ManufacturersModelName",
    "MagneticFieldStrength",
    "MRAcquisitionType",
    "EchoTime",
    "InversionTime",
    "RepetitionTime",
)
CODE_URL = "https://github.com/flairqc/flairqc"
