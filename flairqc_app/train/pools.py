"""Which cached images feed which stream, for one task and one cross-validation fold.

Folds are made over the trainval groups that carry a label for the task (stratified by domain and label); the
validation fold's groups are removed from every training pool, unlabelled images included. Images of the
`validation` split (a held-out labelled target set, cache.SPLITS) join every fold's validation pool and no
training pool, and the test split is never in any pool but `test`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flairqc_app.train import splits
from flairqc_app.train.cache import Sample


@dataclass(frozen=True)
class Pool:
    keys: tuple[str, ...]
    labels: tuple[int, ...] | None  # None for the unlabelled pool

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class Pools:
    source: Pool  # labelled T1w, training folds
    target: Pool  # labelled FLAIR, training folds
    unlabelled: Pool  # FLAIR without labels, training groups only
    validation: Pool  # labelled FLAIR of the validation fold and of the validation split
    test: Pool  # labelled FLAIR of the held-out test split

    def counts(self) -> dict[str, int]:
        return {
            name: len(getattr(self, name))
            for name in ("source", "target", "unlabelled", "validation", "test")
        }

    def data_sha256(self) -> str:
        """Hash of the training and validation keys with their labels: the data provenance of a model."""
        digest = hashlib.sha256()
        for name in ("source", "target", "unlabelled", "validation"):
            pool = getattr(self, name)
            digest.update(name.encode())
            for i, key in enumerate(pool.keys):
                digest.update(f"{key}:{pool.labels[i] if pool.labels else '-'};".encode())
        return digest.hexdigest()


def _pool(samples: list[Sample], task: str | None, positives: frozenset[str] = frozenset()) -> Pool:
    """Keys sorted, with their task labels; keys in `positives` are labelled 1 whatever their own label."""
    ordered = sorted(samples, key=lambda s: s.key)
    if task is None:
        return Pool(tuple(s.key for s in ordered), None)
    return Pool(
        tuple(s.key for s in ordered), tuple(1 if s.key in positives else int(s.label(task)) for s in ordered)
    )  # type: ignore[arg-type]


def fold_assignment(samples: list[Sample], task: str, folds: int, seed: int) -> dict[str, int]:
    """Fold of every trainval group that has a label for the task."""
    strata: dict[str, tuple[set[str], int]] = {}
    for s in samples:
        y = s.label(task)
        if s.split == "trainval" and y is not None:
            domains, worst = strata.get(s.group, (set(), 0))
            strata[s.group] = (domains | {s.domain}, max(worst, y))
    return splits.kfold_groups({g: f"{'+'.join(sorted(d))}:{y}" for g, (d, y) in strata.items()}, folds, seed)


def make_pools(
    samples: list[Sample], task: str, fold: int, folds: int, seed: int, source_as_rejects: bool = False
) -> Pools:
    """The five pools of a fold. With `source_as_rejects` (straight_reject only), the labelled source images of
    the training folds join the labelled target pool as straight rejects (a T1w saved as FLAIR is one) and the
    source pool is empty; validation and test stay target images, so thresholds and figures are FLAIR's."""
    if source_as_rejects and task != "straight_reject":
        raise ValueError(f"source_as_rejects applies to the straight_reject task, not {task!r}")
    assignment = fold_assignment(samples, task, folds, seed)
    val_groups = {g for g, f in assignment.items() if f == fold}
    train = [s for s in samples if s.split == "trainval" and s.group not in val_groups]
    labelled = [s for s in train if s.label(task) is not None]
    source = [s for s in labelled if s.domain == "source"]
    target = [s for s in labelled if s.domain == "target"]
    if source_as_rejects:
        source, target, positives = [], target + source, frozenset(s.key for s in source)
    else:
        positives = frozenset()
    return Pools(
        source=_pool(source, task),
        target=_pool(target, task, positives),
        unlabelled=_pool([s for s in train if s.domain == "target" and not s.labelled], None),
        validation=_pool(
            [
                s
                for s in samples
                if (s.group in val_groups or s.split == "validation")
                and s.domain == "target"
                and s.label(task) is not None
            ],
            task,
        ),
        test=test_pool(samples, task),
    )


def test_pool(samples: list[Sample], task: str) -> Pool:
    """The labelled FLAIR of the held-out test split, the same for every fold."""
    return _pool(
        [s for s in samples if s.split == "test" and s.domain == "target" and s.label(task) is not None], task
    )
