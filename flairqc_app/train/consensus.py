"""`flairqc-train consensus`: several raters' label files (the reports' rating export) into one labels.tsv.

Per image and label, the consensus is the majority of the raters who rated it; a tie goes to the more severe
value (a rater saw something), and is a disagreement like any split vote, listed for the raters to re-read
together (as the paper's raters did). Grades are voted by the raters who kept the image; a consensus reject
has no grades. Agreement: Cohen's kappa of each pair of raters on the images both rated (grades: both kept),
and each rater's balanced accuracy against the consensus.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

from flairqc_app import tsv
from flairqc_app.config import ARTEFACTS
from flairqc_app.train.labels import LabelRow, read_labels
from flairqc_app.tsv import NA

FIELDS = ("straight_reject", *ARTEFACTS)
LABEL_COLUMNS = ("filename", "participant_id", "modality", "straight_reject", *ARTEFACTS)


@dataclass(frozen=True)
class Rating:
    rater: str
    label: LabelRow
    rated_at: str = ""


@dataclass
class Consensus:
    labels: list[LabelRow]
    n_raters: dict[str, int]  # filename -> raters who rated it
    disagreements: list[dict[str, str]]  # one row per image and label where the raters differ
    kappa: dict[str, dict[str, float | None]] = field(default_factory=dict)  # "A~B" -> label -> kappa
    # rater -> label -> BA
    balanced_accuracy: dict[str, dict[str, float | None]] = field(default_factory=dict)


def read_ratings(path: Path) -> list[Rating]:
    """A ratings file: labels.tsv's columns (read_labels), plus rater and rated_at when the export has them.

    A file without a rater column is one rater, named after the file.
    """
    labels = read_labels(path)
    ratings = []
    for label, raw in zip(labels, tsv.read_rows(path)):
        if not label.labelled:
            continue
        rater = (raw.get("rater") or "").strip()
        ratings.append(
            Rating(rater if rater not in ("", NA) else path.stem, label, raw.get("rated_at") or "")
        )
    return ratings


def latest_per_rater(ratings: list[Rating]) -> dict[str, dict[str, Rating]]:
    """filename -> rater -> that rater's latest rating (a rater may export the same image twice)."""
    out: dict[str, dict[str, Rating]] = {}
    for rating in sorted(ratings, key=lambda r: r.rated_at):
        out.setdefault(rating.label.filename, {})[rating.rater] = rating
    return out


def vote(values: list[int]) -> tuple[int, bool]:
    """The majority value (ties: the larger) and whether the raters disagreed.

    >>> vote([0, 0, 1]), vote([1, 2]), vote([2, 2])
    ((0, True), (2, True), (2, False))
    """
    counts = Counter(values)
    top = max(counts.values())
    return max(v for v, n in counts.items() if n == top), len(counts) > 1


def value_of(rating: Rating, name: str) -> int | None:
    return rating.label.straight_reject if name == "straight_reject" else rating.label.grades.get(name)


def consensus_of(by_rater: dict[str, Rating]) -> tuple[LabelRow, list[str]]:
    """The consensus label of one image and the labels the raters disagreed on."""
    first = next(iter(by_rater.values())).label
    reject, split = vote([r.label.straight_reject for r in by_rater.values()])  # type: ignore[misc]
    disputed = ["straight_reject"] if split else []
    grades: dict[str, int | None] = dict.fromkeys(ARTEFACTS)
    kept = [r for r in by_rater.values() if r.label.straight_reject == 0]
    for artefact in ARTEFACTS:
        values = [g for r in kept if (g := r.label.grades.get(artefact)) is not None]
        if values:
            grade, split = vote(values)
            grades[artefact] = None if reject else grade
            disputed += [artefact] if split else []
    return LabelRow(first.filename, first.participant_id, first.modality, reject, grades), disputed


def safe(score: float) -> float | None:
    return None if math.isnan(score) else round(float(score), 4)


def pair_kappa(images: dict[str, dict[str, Rating]], a: str, b: str, name: str) -> float | None:
    pairs = [(value_of(r[a], name), value_of(r[b], name)) for r in images.values() if a in r and b in r]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    if not pairs:
        return None
    xs, ys = zip(*pairs)
    if len(set(xs) | set(ys)) == 1:
        return 1.0  # every image the same value for both: full agreement (sklearn gives 0/0)
    return safe(cohen_kappa_score(xs, ys))


def rater_accuracy(
    images: dict[str, dict[str, Rating]], labels: dict[str, LabelRow], rater: str, name: str
) -> float | None:
    truth, said = [], []
    for filename, by_rater in images.items():
        if rater not in by_rater:
            continue
        mine = value_of(by_rater[rater], name)
        agreed = (
            labels[filename].straight_reject
            if name == "straight_reject"
            else labels[filename].grades.get(name)
        )
        if mine is not None and agreed is not None:
            truth.append(agreed)
            said.append(mine)
    if not truth:
        return None
    # a rater who said a value the consensus never did: sklearn warns, scores right
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return safe(balanced_accuracy_score(truth, said))


def build_consensus(ratings: list[Rating]) -> Consensus:
    images = latest_per_rater(ratings)
    raters = sorted({r.rater for r in ratings})
    labels, disagreements, n_raters = {}, [], {}
    for filename in sorted(images):
        label, disputed = consensus_of(images[filename])
        labels[filename] = label
        n_raters[filename] = len(images[filename])
        for name in disputed:
            said = {rater: value_of(r, name) for rater, r in images[filename].items()}
            agreed = label.straight_reject if name == "straight_reject" else label.grades[name]
            disagreements.append(
                {
                    "filename": filename,
                    "label": name,
                    "consensus": tsv.format_cell(agreed),
                    **{f"rater_{k}": tsv.format_cell(v) for k, v in sorted(said.items())},
                }
            )
    result = Consensus(list(labels.values()), n_raters, disagreements)
    for a, b in combinations(raters, 2):
        result.kappa[f"{a}~{b}"] = {name: pair_kappa(images, a, b, name) for name in FIELDS}
    for rater in raters:
        result.balanced_accuracy[rater] = {
            name: rater_accuracy(images, labels, rater, name) for name in FIELDS
        }
    return result


def write_labels(path: Path, result: Consensus) -> None:
    """labels.tsv as read_labels reads it, with the number of raters and the disputed labels of each image."""
    disputed: dict[str, list[str]] = {}
    for row in result.disagreements:
        disputed.setdefault(row["filename"], []).append(row["label"])
    rows = [
        {
            "filename": label.filename,
            "participant_id": label.participant_id,
            "modality": label.modality,
            "straight_reject": label.straight_reject,
            **label.grades,
            "n_raters": result.n_raters[label.filename],
            "disputed": ",".join(disputed.get(label.filename, [])) or None,
        }
        for label in result.labels
    ]
    tsv.write_rows(path, (*LABEL_COLUMNS, "n_raters", "disputed"), rows)


def write_disagreements(path: Path, result: Consensus) -> None:
    columns = ["filename", "label", "consensus"] + sorted(
        {k for r in result.disagreements for k in r if k.startswith("rater_")}
    )
    tsv.write_rows(path, columns, result.disagreements)


def summary(result: Consensus) -> list[str]:
    """Readable lines: images, disagreements, kappa per pair and balanced accuracy per rater."""

    def scores(values: dict[str, float | None]) -> str:
        return "  ".join(f"{name} {NA if v is None else f'{v:.2f}'}" for name, v in values.items())

    disputed = len({r["filename"] for r in result.disagreements})
    lines = [
        f"{len(result.labels)} image(s), {disputed} with a disagreement ({len(result.disagreements)} label(s))"
    ]
    lines += [f"Cohen's kappa {pair}: {scores(values)}" for pair, values in result.kappa.items()]
    lines += [
        f"balanced accuracy of {rater} vs consensus: {scores(values)}"
        for rater, values in result.balanced_accuracy.items()
    ]
    return lines
