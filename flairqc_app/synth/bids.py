"""Write a planned dataset as BIDS: images, sidecars, participants, labels.tsv; byte-identical per seed.

nibabel's .nii.gz writer stamps the gzip header with the current time, so images are gzipped here with
mtime 0; JSON is written with sorted keys. Rendering can use a process pool: the plan fixes every seed.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from flairqc_app import __version__
from flairqc_app.config import CODE_URL
from flairqc_app.synth.case import Case, SynthConfig
from flairqc_app.synth.icbm import MNI_COPYRIGHT
from flairqc_app.synth.labels import MISSING, data_dictionary, to_tsv
from flairqc_app.synth.plan import CaseSpec, plan_dataset, render_spec
from flairqc_app.tsv import rows_text

BIDS_VERSION = "1.10.0"
GZIP_LEVEL = 1  # noisy images barely compress further; level 6 costs 2 s more per 1 mm head


def nifti_gz_bytes(image: nib.Nifti1Image) -> bytes:
    """Gzipped NIfTI-1 with a zero timestamp and no file name, so equal images give equal bytes."""
    raw = image.to_bytes()
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=GZIP_LEVEL) as stream:
        stream.write(raw)
    return buffer.getvalue()


def _json(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def participant(subject: int) -> str:
    return f"sub-{subject + 1:04d}"


def _write_case(root: Path, spec: CaseSpec, case: Case) -> dict[str, object]:
    """Write image and sidecar; return the labels row."""
    sub = participant(spec.subject)
    stem = Path(sub, "anat", f"{sub}_{spec.modality}")
    (root / stem.parent).mkdir(parents=True, exist_ok=True)
    (root / f"{stem}.nii.gz").write_bytes(nifti_gz_bytes(case.image))
    (root / f"{stem}.json").write_text(_json(case.sidecar))
    return {
        "filename": f"{stem}.nii.gz",
        "participant_id": sub,
        "session_id": MISSING,
        "run_id": MISSING,
        "acq_id": MISSING,
        **case.labels,
    }


def _render(args: tuple[CaseSpec, SynthConfig]) -> tuple[CaseSpec, Case, float]:
    spec, config = args
    start = time.perf_counter()
    case = render_spec(spec, config)
    return spec, case, time.perf_counter() - start


def _participants(n_subjects: int, seed: int) -> str:
    """Plausible ages and sexes of a clinical population (they carry no label)."""
    rng = np.random.default_rng([seed, 7])
    rows = [
        {
            "participant_id": participant(subject),
            "age": int(rng.integers(18, 95)),
            "sex": str(rng.choice(["F", "M"])),
        }
        for subject in range(n_subjects)
    ]
    return rows_text(("participant_id", "age", "sex"), rows)


def _metadata(root: Path, n_subjects: int, seed: int, argv: str) -> None:
    description = {
        "Name": f"flairqc synthetic FLAIR/T1w dataset (seed {seed})",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": "Derived from the ICBM 2009a templates; see README for the MNI copyright notice.",
        "GeneratedBy": [
            {"Name": "flairqc-synth", "Version": __version__, "CodeURL": CODE_URL, "Description": argv}
        ],
    }
    (root / "dataset_description.json").write_text(_json(description))
    (root / "README").write_text(
        "Synthetic brain MRI made by flairqc-synth from the ICBM 2009a templates (nilearn).\n"
        "labels.tsv holds the quality labels (motion, noise, contrast grades; straight reject and reason)\n"
        "and every generation parameter; see docs/synthetic-data.md in the flairqc repository.\n\n"
        f"ICBM 2009a: {MNI_COPYRIGHT}\n"
    )
    (root / "participants.tsv").write_text(_participants(n_subjects, seed))
    (root / "participants.json").write_text(
        _json(
            {
                "age": {"Description": "Age drawn at random, unrelated to the image.", "Units": "year"},
                "sex": {
                    "Description": "Sex drawn at random, unrelated to the image.",
                    "Levels": {"F": "female", "M": "male"},
                },
            }
        )
    )
    (root / ".bidsignore").write_text("labels.tsv\nlabels.json\n")
    (root / "labels.json").write_text(_json(data_dictionary()))


def write_dataset(
    out_dir: str | Path,
    n_subjects: int,
    seed: int,
    modalities: tuple[str, ...] = ("FLAIR", "T1w"),
    reject_fraction: float = 0.1,
    artefact_fraction: float = 0.5,
    config: SynthConfig = SynthConfig(),
    nprocs: int = 1,
    progress: bool = True,
) -> Path:
    """Render and write the dataset; prints one progress line per image to stderr when `progress`."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    specs = plan_dataset(n_subjects, seed, modalities, reject_fraction, artefact_fraction, config.grid)
    argv = (
        f"n_subjects={n_subjects} seed={seed} modalities={','.join(modalities)} reject_fraction={reject_fraction}"
        f" artefact_fraction={artefact_fraction} grid={config.grid}"
    )
    _metadata(root, n_subjects, seed, argv)
    rows: dict[tuple[int, str], dict[str, object]] = {}
    start = time.perf_counter()
    jobs = [(spec, config) for spec in specs]
    with ProcessPoolExecutor(max_workers=nprocs) if nprocs > 1 else _Serial() as pool:
        for done, (spec, case, seconds) in enumerate(pool.map(_render, jobs), start=1):
            rows[(spec.subject, spec.modality)] = _write_case(root, spec, case)
            if progress:
                elapsed = time.perf_counter() - start
                eta = elapsed / done * (len(specs) - done)
                print(
                    f"[{done}/{len(specs)}] {participant(spec.subject)} {spec.modality:5s} "
                    f"reject={spec.reject or '-'} m/n/c={spec.motion}/{spec.noise}/{spec.contrast} "
                    f"{seconds:.1f}s elapsed {elapsed:.0f}s eta {eta:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
    ordered = [rows[(spec.subject, spec.modality)] for spec in specs]
    (root / "labels.tsv").write_text(to_tsv(ordered))
    return root


class _Serial:
    """In-process stand-in for a pool (no fork cost, head model cached once)."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def map(function, iterable):  # type: ignore[no-untyped-def]
        return map(function, iterable)
