"""Ensembles: the mean (or median) class probabilities of several trained models of one task (the folds of a run,
runs trained with other seeds), scored, evaluated and exported to ONNX as one model.

Why: the reading of an image far from the training data (a real FLAIR, for models trained on synthetic ones)
can depend on the run as much as on the data (docs/model-history.md#attempt-13); the mean over runs depends on
it less, and the median does not follow one member that reads such an image apart from the others (attempt 15).
The ensemble's threshold is chosen as a run's is (maximal balanced accuracy), on the labelled FLAIR that no
member trained on: the images in every member's validation pool (the validation split, and images
that fell in the validation fold of every member). Its members' own thresholds are not used.

Ensemble directory: ensemble.json (the record: task, members, threshold, validation figures) and cache.txt.
The exported graph outputs the log of the combined probabilities: logits to every consumer, since
softmax(log p) = p, so the BIDS-App and `evaluate` read it as they read one run.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flairqc_app import atomic
from flairqc_app.train.labels import n_classes
from flairqc_app.train.loop import pick_device, predict_logits, softmax
from flairqc_app.train.methods import resolve
from flairqc_app.train.metrics import best_threshold
from flairqc_app.train.models import TargetClassifier
from flairqc_app.train.pools import Pool, test_pool
from flairqc_app.train.runner import (
    CACHE_POINTER,
    SELECTION_NAME,
    Selected,
    code_version,
    fold_pools,
    load_fold_model,
    load_selected,
    load_settings,
    run_cache,
)
from flairqc_app.train.settings import COMBINATIONS

ENSEMBLE_NAME = "ensemble.json"


@dataclass(frozen=True)
class Member:
    run_dir: Path
    fold: int


class CombinedProbability(nn.Module):
    """Log of the members' combined softmax: logits of the mean or median probabilities (the median of an even
    number of members is the mean of the middle two; renormalised over the classes, which for two classes it
    already is). Members that see the brain window hold equal masks; the ONNX exporter stores equal constants
    once."""

    def __init__(self, members: list[TargetClassifier], combine: str = "mean"):
        super().__init__()
        if combine not in COMBINATIONS:
            raise ValueError(f"combine {combine!r} is not one of {', '.join(COMBINATIONS)}")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        log_probabilities = torch.stack([torch.log_softmax(m(image), dim=1) for m in self.members])
        if self.combine == "mean":
            return torch.logsumexp(log_probabilities, dim=0) - math.log(len(self.members))
        ordered = torch.sort(log_probabilities.exp(), dim=0).values
        n = len(self.members)
        median = ordered[(n - 1) // 2 : n // 2 + 1].mean(dim=0)
        return torch.log(median / median.sum(dim=1, keepdim=True))


def load_members(members: list[Member], device: torch.device, combine: str = "mean") -> CombinedProbability:
    """The ensemble's network, in eval mode as a whole (export restores the mode it finds, members included)."""
    return CombinedProbability([load_fold_model(m.run_dir, m.fold, device) for m in members], combine).eval()


def trained_members(run_dirs: list[Path]) -> list[Member]:
    """Every trained fold (fold-<k>/outcome.json) of every run, in the order given."""
    members = []
    for run_dir in map(Path, run_dirs):
        folds = sorted(int(p.parent.name.split("-")[1]) for p in run_dir.glob("fold-*/outcome.json"))
        if not folds:
            raise FileNotFoundError(f"{run_dir}: no trained fold (fold-<k>/outcome.json)")
        members += [Member(run_dir, fold) for fold in folds]
    return members


def common_validation(pools: list[Pool]) -> Pool:
    """The images in every pool (so in no member's training pool), with their labels."""
    shared = set(pools[0].keys).intersection(*(p.keys for p in pools[1:]))
    labels = dict(zip(pools[0].keys, pools[0].labels or ()))
    keys = tuple(sorted(shared))
    return Pool(keys, tuple(labels[k] for k in keys))


def _shared_and_own(settings: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Settings every member shares, and what each member has of its own (seed, augmentations...)."""
    shared = {k: v for k, v in settings[0].items() if all(s.get(k) == v for s in settings[1:])}
    return shared, [{k: v for k, v in s.items() if k not in shared} for s in settings]


def build(
    run_dirs: list[Path], out_dir: Path, device: torch.device | None = None, combine: str = "mean"
) -> dict[str, Any]:
    """Make an ensemble of every trained fold of the runs, their probabilities combined by `combine`: check they
    fit together, choose its threshold on their common validation images, write ensemble.json and cache.txt into
    out_dir; return the record."""
    members = trained_members(run_dirs)
    if len(members) < 2:
        raise ValueError(
            f"an ensemble needs at least two trained folds; {', '.join(map(str, run_dirs))} "
            f"hold {len(members)}"
        )
    settings = {m.run_dir: load_settings(m.run_dir) for m in members}
    tasks = {str(run): resolve(s.method, s.task)[1] for run, s in settings.items()}
    caches = {str(run): run_cache(run).root.resolve() for run in settings}
    for name, values in (("task", tasks), ("cache", caches)):
        if len(set(values.values())) > 1:
            raise ValueError(
                f"ensemble members must share one {name}: "
                + "; ".join(f"{run}: {value}" for run, value in values.items())
            )
    task = next(iter(tasks.values()))
    cache = run_cache(members[0].run_dir)
    device = device or pick_device(settings[members[0].run_dir].device)
    pools = [fold_pools(settings[m.run_dir], cache, m.fold) for m in members]
    validation = common_validation([p.validation for p in pools])
    if not validation.keys:
        raise ValueError(
            f"no labelled FLAIR is held out of every member's training for {task}: add a validation "
            "part to the data (docs/training.md, Splits) to choose the ensemble's threshold on"
        )
    model = load_members(members, device, combine)
    batch_size = settings[members[0].run_dir].batch_size
    probabilities = softmax(predict_logits(model, cache, validation.keys, device, batch_size))
    y = np.asarray(validation.labels)
    threshold, val_ba = (
        best_threshold(y, probabilities[:, 1]) if n_classes(task) == 2 else (0.5, float("nan"))
    )
    outcomes = [
        json.loads((m.run_dir / f"fold-{m.fold}" / "outcome.json").read_text(encoding="utf-8"))
        for m in members
    ]
    shared, own = _shared_and_own([asdict(settings[m.run_dir]) for m in members])
    data_hashes = [p.data_sha256() for p in pools]
    record = {
        "task": task,
        "combine": combine,
        "method": "+".join(sorted({resolve(s.method, s.task)[0].name for s in settings.values()})),
        "members": [
            {
                "run": str(m.run_dir.resolve()),
                "fold": m.fold,
                "epoch": o["best_epoch"],
                "val_loss": o["best_val_loss"],
                "data_sha256": h,
                "settings": own_settings,
            }
            for m, o, h, own_settings in zip(members, outcomes, data_hashes, own)
        ],
        "threshold": threshold,
        "val_ba_at_threshold": val_ba,
        "val_loss": float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, None)))),
        "validation": {"n": len(y), "n_positive": int(np.sum(y > 0))},
        "data_sha256": hashlib.sha256("".join(data_hashes).encode()).hexdigest(),
        "cache_recipe": cache.recipe,
        "input_shape": list(cache.shape),
        "settings": shared,
        "code_version": code_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out_dir = Path(out_dir)
    atomic.write_text(out_dir / CACHE_POINTER, f"{cache.root.resolve()}\n")
    atomic.write_json(out_dir / ENSEMBLE_NAME, record)
    return record


def is_ensemble(path: Path) -> bool:
    return (Path(path) / ENSEMBLE_NAME).is_file()


def read_record(path: Path) -> dict[str, Any]:
    """ensemble.json of an ensemble directory, selection.json of a run directory."""
    path = Path(path)
    return json.loads(
        (path / (ENSEMBLE_NAME if is_ensemble(path) else SELECTION_NAME)).read_text(encoding="utf-8")
    )


def load_trained(path: Path, device: torch.device | None = None) -> Selected:
    """A run's selected model or an ensemble, whichever the directory holds."""
    path = Path(path)
    if not is_ensemble(path):
        return load_selected(path, device)
    record = {"combine": "mean"} | read_record(path)  # ensembles made before "combine" took the mean
    members = [Member(Path(m["run"]), int(m["fold"])) for m in record["members"]]
    for member, saved in zip(members, record["members"]):
        outcome = json.loads(
            (member.run_dir / f"fold-{member.fold}" / "outcome.json").read_text(encoding="utf-8")
        )
        if (outcome["best_epoch"], outcome["best_val_loss"]) != (saved["epoch"], saved["val_loss"]):
            raise ValueError(
                f"{path}: member {member.run_dir} fold {member.fold} was trained again after the "
                "ensemble was made (its threshold no longer fits): make the ensemble again"
            )
    first = load_settings(members[0].run_dir)
    device = device or pick_device(first.device)
    cache = run_cache(path)
    pools = [fold_pools(load_settings(m.run_dir), cache, m.fold) for m in members]
    model = load_members(members, device, record["combine"])
    return Selected(
        model,
        record,
        cache,
        common_validation([p.validation for p in pools]),
        test_pool(cache.read_samples(), record["task"]),
        device,
        first.batch_size,
    )
