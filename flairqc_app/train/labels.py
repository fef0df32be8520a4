"""labels.tsv (paper section 2.3.1; docs/training.md) and the task labels derived from it; tiers are
derived, never typed.

Task labels: `straight_reject` is the column; `X_moderate` is grade >= 1 and `X_severe` is grade == 2, on
non-rejected images only; `tier` (the paper's direct tier classification) is 0/1/2 for tiers 1/2/3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flairqc_app import tsv
from flairqc_app.config import ARTEFACTS, TASKS
from flairqc_app.grade import tier_from_grades

LABELS_NAME = "labels.tsv"
TIER_TASK = "tier"
ALL_TASKS = TASKS + (TIER_TASK,)
MODALITIES = ("T1w", "FLAIR")


@dataclass(frozen=True)
class LabelRow:
    """One labelled image; grades are None where not given (typically for straight rejects)."""

    filename: str
    participant_id: str
    modality: str
    straight_reject: int | None
    grades: dict[str, int | None]

    @property
    def labelled(self) -> bool:
        return self.straight_reject is not None


def _int_or_none(text: str | None, column: str, where: str, allowed: tuple[int, ...]) -> int | None:
    if text is None or text.strip() in ("", tsv.NA):
        return None
    try:
        value = int(float(text))
    except ValueError as exc:
        raise ValueError(f"{where}: {column} = {text!r} is not a number") from exc
    if value not in allowed:
        raise ValueError(f"{where}: {column} = {value} not in {allowed}")
    return value


def read_labels(path: Path) -> list[LabelRow]:
    """Parse labels.tsv; a row whose straight_reject is n/a counts as unlabelled (kept, labelled False)."""
    required = {"filename", "participant_id", "modality", "straight_reject", *ARTEFACTS}
    missing = required - set(tsv.read_columns(path))
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    rows = []
    for line, raw in enumerate(tsv.read_rows(path), start=2):
        where = f"{path}:{line}"
        if raw["modality"] not in MODALITIES:
            raise ValueError(f"{where}: modality {raw['modality']!r} not in {MODALITIES}")
        rows.append(
            LabelRow(
                filename=raw["filename"],
                participant_id=raw["participant_id"],
                modality=raw["modality"],
                straight_reject=_int_or_none(raw["straight_reject"], "straight_reject", where, (0, 1)),
                grades={a: _int_or_none(raw[a], a, where, (0, 1, 2)) for a in ARTEFACTS},
            )
        )
    return rows


def tier(straight_reject: int | None, grades: dict[str, int | None]) -> int | None:
    """Tier 1/2/3 of a non-rejected image with all three grades, else None."""
    if straight_reject != 0 or any(grades.get(a) is None for a in ARTEFACTS):
        return None
    return tier_from_grades({a: int(grades[a]) for a in ARTEFACTS})  # type: ignore[arg-type]


def quality_class(straight_reject: int | None, grades: dict[str, int | None]) -> str:
    """Stratum for the held-out test split: reject, tier1..3, or unlabelled/incomplete."""
    if straight_reject == 1:
        return "reject"
    t = tier(straight_reject, grades)
    return "unlabelled" if t is None else f"tier{t}"


def task_label(task: str, straight_reject: int | None, grades: dict[str, int | None]) -> int | None:
    """The class index of an image for a task, or None when the image does not take part in it."""
    if task not in ALL_TASKS:
        raise ValueError(f"unknown task {task!r}; tasks are {', '.join(ALL_TASKS)}")
    if task == "straight_reject":
        return straight_reject
    if task == TIER_TASK:
        t = tier(straight_reject, grades)
        return None if t is None else t - 1
    if straight_reject != 0:
        return None  # artefact tasks are trained on non-rejected images only
    artefact, severity = task.split("_")
    grade = grades.get(artefact)
    if grade is None:
        return None
    return int(grade >= 1) if severity == "moderate" else int(grade == 2)


def n_classes(task: str) -> int:
    return 3 if task == TIER_TASK else 2


def find_images(bids_dir: Path, modality: str) -> list[str]:
    """Relative paths of every `sub-*/[ses-*/]anat/*_<modality>.nii[.gz]` in a BIDS dataset, sorted."""
    root = Path(bids_dir)
    found = [
        p
        for pattern in (f"sub-*/anat/*_{modality}.nii*", f"sub-*/ses-*/anat/*_{modality}.nii*")
        for p in root.glob(pattern)
    ]
    return sorted(p.relative_to(root).as_posix() for p in found if p.name.endswith((".nii", ".nii.gz")))


def participant_of(relpath: str) -> str:
    return relpath.split("/")[0]
