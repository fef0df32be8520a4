"""Which images a dataset holds: per subject and modality, its seeds, grades and straight-reject reason.

Planning is separate from rendering so that workers can render in any order and still give the same bytes:
every case seed derives from (dataset seed, subject index, modality index) through numpy's SeedSequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from flairqc_app.config import ARTEFACTS
from flairqc_app.synth.case import MODALITIES, Case, SynthConfig, render_case
from flairqc_app.synth.params import (
    ARTEFACT_COUNT_WEIGHTS,
    ARTEFACT_WEIGHTS,
    GRIDS,
    REJECT_REASONS,
    SEVERE_PROBABILITY,
)

assert tuple(ARTEFACT_WEIGHTS) == ARTEFACTS  # the draws below follow this order


@dataclass(frozen=True)
class CaseSpec:
    """Everything needed to render one image of the dataset."""

    subject: int
    modality: str
    seed: int
    subject_seed: int
    motion: int = 0
    noise: int = 0
    contrast: int = 0
    reject: str | None = None


def _seed(*words: int) -> int:
    return int(np.random.SeedSequence(list(words)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _grades(rng: np.random.Generator) -> dict[str, int]:
    """Grades of an artefacted image: one to three artefacts, each moderate or severe."""
    count = int(rng.choice(len(ARTEFACT_COUNT_WEIGHTS), p=ARTEFACT_COUNT_WEIGHTS)) + 1
    weights = np.asarray([ARTEFACT_WEIGHTS[a] for a in ARTEFACTS])
    chosen = rng.choice(ARTEFACTS, size=count, replace=False, p=weights / weights.sum())
    return {str(a): 2 if rng.random() < SEVERE_PROBABILITY else 1 for a in chosen}


def plan_dataset(
    n_subjects: int,
    seed: int,
    modalities: tuple[str, ...] = MODALITIES,
    reject_fraction: float = 0.1,
    artefact_fraction: float = 0.5,
    grid: str = "1mm",
) -> list[CaseSpec]:
    """One image per subject and modality; rejects only among FLAIRs (saved as FLAIR, by the contract).

    On the "2d" grid every FLAIR is a straight reject (acquisition_2d): the paper's labels apply to 3D FLAIR.
    """
    unknown = set(modalities) - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; choose from {MODALITIES}")
    specs = []
    for subject in range(n_subjects):
        rng = np.random.default_rng(_seed(seed, subject, 0))
        subject_seed = _seed(seed, subject, 1)
        for index, modality in enumerate(modalities):
            reject = None
            if modality == "FLAIR" and GRIDS[grid].mr_acquisition_type == "2D":
                reject = "acquisition_2d"
            elif modality == "FLAIR" and rng.random() < reject_fraction:
                reject = str(rng.choice(REJECT_REASONS))
            grades = _grades(rng) if rng.random() < artefact_fraction else {}
            specs.append(
                CaseSpec(
                    subject, modality, _seed(seed, subject, 2 + index), subject_seed, reject=reject, **grades
                )
            )
    return specs


def render_spec(spec: CaseSpec, config: SynthConfig) -> Case:
    """Render a planned case (module-level so process pools can pickle it)."""
    return render_case(
        spec.seed,
        spec.modality,
        spec.motion,
        spec.noise,
        spec.contrast,
        spec.reject,
        config,
        subject_seed=spec.subject_seed,
    )


def iter_cases(
    n: int,
    seed: int,
    modalities: tuple[str, ...] = ("FLAIR",),
    config: SynthConfig = SynthConfig(),
    reject_fraction: float = 0.1,
    artefact_fraction: float = 0.5,
) -> Iterator[tuple[nib.Nifti1Image, dict[str, object]]]:
    """Yield (image, labels) for `n` subjects (times the modalities) without writing files, e.g. for training."""
    for spec in plan_dataset(n, seed, modalities, reject_fraction, artefact_fraction, config.grid):
        case = render_spec(spec, config)
        yield case.image, case.labels
