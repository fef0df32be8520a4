"""Synthetic data engine: labelled FLAIR and T1w heads with graded artefacts and straight-reject cases.

No labelled clinical FLAIR can be shipped (the paper's images cannot leave the hospital, section 2.1), so
flairqc's default models, the SSDA benchmark and the tests are built on images drawn here from the ICBM 2009a
tissue maps. See docs/synthetic-data.md for the grade definitions, their parameter ranges and the calibration
sheet.

Public API:
- SynthConfig: grid, lesions, storage options, domain randomisation (randomise.py, off by default);
- generate_case(rng_or_seed, modality, motion, noise, contrast, reject, config) -> (Nifti1Image, labels);
- render_case(...) -> Case (also the sidecar and, on request, the tissue map used by measurements);
- iter_cases(n, seed, ...) -> (Nifti1Image, labels) pairs, in memory;
- apply_artefact(img, artefact, grade, rng) -> Nifti1Image, for any image, e.g. a real 3D FLAIR;
- write_dataset(out_dir, n_subjects, seed, ...) -> BIDS dataset with labels.tsv (command flairqc-synth).
"""

from flairqc_app.synth.artefacts import apply_artefact
from flairqc_app.synth.bids import write_dataset
from flairqc_app.synth.case import Case, SynthConfig, generate_case, render_case
from flairqc_app.synth.plan import iter_cases, plan_dataset

__all__ = [
    "Case",
    "SynthConfig",
    "apply_artefact",
    "generate_case",
    "iter_cases",
    "plan_dataset",
    "render_case",
    "write_dataset",
]
