"""Participant-grouped splits: a held-out test split (fixed at `prepare`) and stratified k folds per task.

Every split is made over groups (a participant, see `cache.Sample.group`), never over images, so no
subject is ever in two splits. Both are deterministic functions of the groups, their strata and a seed.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

QUALITY_ORDER = ("unlabelled", "tier1", "tier2", "tier3", "reject")  # worst last: a group's stratum


def _shuffled_strata(strata: dict[str, str], seed: int) -> dict[str, list[str]]:
    """Groups of each stratum, sorted then shuffled with a seeded generator (input-order independent)."""
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for group, stratum in sorted(strata.items()):
        by_stratum[stratum].append(group)
    rng = np.random.default_rng(seed)
    return {s: [g[i] for i in rng.permutation(len(g))] for s, g in sorted(by_stratum.items())}


def test_groups(strata: dict[str, str], fraction: float, seed: int) -> set[str]:
    """round(fraction * n) groups of every stratum (the 'unlabelled' stratum is never tested)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"test fraction {fraction} not in [0, 1)")
    chosen: set[str] = set()
    for stratum, groups in _shuffled_strata(strata, seed).items():
        if stratum.endswith("unlabelled"):
            continue
        chosen.update(groups[: int(round(fraction * len(groups)))])
    return chosen


def kfold_groups(strata: dict[str, str], folds: int, seed: int) -> dict[str, int]:
    """Fold index of every group: each stratum dealt round-robin, continuing where the last one stopped,
    so that folds get near-equal sizes and near-equal class proportions."""
    if folds < 2:
        raise ValueError("k-fold needs at least 2 folds")
    assignment: dict[str, int] = {}
    position = 0
    for groups in _shuffled_strata(strata, seed).values():
        for group in groups:
            assignment[group] = position % folds
            position += 1
    return assignment


def worst(classes: list[str]) -> str:
    """The worst quality class of a group's images (its stratum for the test split)."""
    return max(classes, key=QUALITY_ORDER.index)
