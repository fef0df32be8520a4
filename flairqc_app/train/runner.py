"""A training run: the k folds of one task and method, the model selection across folds (lowest target
validation loss, paper 2.4.3), and the decision threshold chosen on that fold's validation data.

Run directory: settings.json, fold-<k>/{last.pt, best.pt, curves.tsv, outcome.json}, selection.json.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import flairqc_app
from flairqc_app.train import settings as settings_mod
from flairqc_app.train.cache import VolumeCache
from flairqc_app.train.labels import n_classes
from flairqc_app.train.loop import build_network, pick_device, predict_logits, softmax, train_fold
from flairqc_app.train.methods import resolve
from flairqc_app.train.metrics import best_threshold
from flairqc_app.train.models import TargetClassifier
from flairqc_app.train.pools import Pool, Pools, make_pools
from flairqc_app.train.settings import TrainSettings

log = logging.getLogger(__name__)
SETTINGS_NAME = "settings.json"
SELECTION_NAME = "selection.json"
CACHE_POINTER = "cache.txt"  # the cache a run (or an ensemble) was made on


def code_version() -> str:
    """Package version, plus the git commit when the code runs from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(flairqc_app.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{flairqc_app.__version__}+git.{commit}" if commit else flairqc_app.__version__


def fold_pools(settings: TrainSettings, cache: VolumeCache, fold: int) -> Pools:
    _, task = resolve(settings.method, settings.task)
    return make_pools(
        cache.read_samples(), task, fold, settings.folds, settings.seed, settings.source_as_rejects
    )


def train_run(
    settings: TrainSettings,
    cache_dir: Path,
    run_dir: Path,
    folds: list[int] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train the requested folds (default all), then select. With resume, the run's own settings are used."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume and (run_dir / SETTINGS_NAME).is_file():
        saved = settings_mod.load(run_dir / SETTINGS_NAME)
        if saved != settings:
            log.warning("resume: the run's own settings.json is used; the settings given now are ignored")
        settings = saved
    else:
        settings.save(run_dir / SETTINGS_NAME)
    (run_dir / CACHE_POINTER).write_text(str(Path(cache_dir).resolve()) + "\n", encoding="utf-8")
    cache = VolumeCache(cache_dir)
    if cache.shape != tuple(settings.model.input_shape):
        raise ValueError(
            f"cache {cache_dir} holds {list(cache.shape)} volumes, the model expects "
            f"{list(settings.model.input_shape)}"
        )
    for fold in folds if folds is not None else range(settings.folds):
        pools = fold_pools(settings, cache, fold)
        log.info("fold %d pools: %s", fold, pools.counts())
        train_fold(settings, cache, pools, fold, run_dir / f"fold-{fold}", resume=resume)
    return select(run_dir)


def run_cache(run_dir: Path) -> VolumeCache:
    return VolumeCache(Path((Path(run_dir) / CACHE_POINTER).read_text(encoding="utf-8").strip()))


def load_settings(run_dir: Path) -> TrainSettings:
    return settings_mod.load(Path(run_dir) / SETTINGS_NAME)


def load_fold_model(run_dir: Path, fold: int, device: torch.device | None = None) -> TargetClassifier:
    """F + C_T of a fold's best checkpoint, in eval mode."""
    settings = load_settings(run_dir)
    device = device or pick_device(settings.device)
    net = build_network(settings)
    state = torch.load(Path(run_dir) / f"fold-{fold}" / "best.pt", map_location=device, weights_only=False)
    net.load_state_dict(state["model"])
    return TargetClassifier(net).to(device).eval()


def select(run_dir: Path) -> dict[str, Any]:
    """Pick the fold with the lowest best validation loss; choose its threshold on its validation pool (its
    validation fold and the validation split)."""
    run_dir = Path(run_dir)
    settings = load_settings(run_dir)
    method, task = resolve(settings.method, settings.task)
    outcomes = [json.loads(p.read_text()) for p in sorted(run_dir.glob("fold-*/outcome.json"))]
    if not outcomes:
        raise FileNotFoundError(f"{run_dir}: no trained fold")
    chosen = min(outcomes, key=lambda o: o["best_val_loss"])
    cache = run_cache(run_dir)
    pools = fold_pools(settings, cache, chosen["fold"])
    device = pick_device(settings.device)
    probabilities = softmax(
        predict_logits(
            load_fold_model(run_dir, chosen["fold"], device),
            cache,
            pools.validation.keys,
            device,
            settings.batch_size,
        )
    )
    threshold, val_ba = (
        best_threshold(np.asarray(pools.validation.labels), probabilities[:, 1])
        if n_classes(task) == 2
        else (0.5, float("nan"))
    )
    selection = {
        "task": task,
        "method": method.name,
        "requested_method": settings.method,
        "fold": chosen["fold"],
        "epoch": chosen["best_epoch"],
        "val_loss": chosen["best_val_loss"],
        "threshold": threshold,
        "val_ba_at_threshold": val_ba,
        "folds": outcomes,
        "data_sha256": pools.data_sha256(),
        "cache_recipe": cache.recipe,
        "input_shape": list(cache.shape),
        "code_version": code_version(),
        "settings": asdict(settings),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (run_dir / SELECTION_NAME).write_text(json.dumps(selection, indent=2) + "\n", encoding="utf-8")
    return selection


@dataclass(frozen=True)
class Selected:
    """A trained model ready to score cached images: a run's selected fold, or an ensemble of trained folds
    (train/ensemble.py). Evaluation and export take either."""

    model: torch.nn.Module  # images -> logits [N, K]
    record: dict[str, Any]  # selection.json of a run, ensemble.json of an ensemble
    cache: VolumeCache
    validation: Pool  # labelled FLAIR it did not train on: where its threshold was chosen
    test: Pool
    device: torch.device
    batch_size: int

    @property
    def task(self) -> str:
        return str(self.record["task"])


def load_selected(run_dir: Path, device: torch.device | None = None) -> Selected:
    """The selected model of a run, with its selection record, cache and pools."""
    run_dir = Path(run_dir)
    settings = load_settings(run_dir)
    device = device or pick_device(settings.device)
    selection = json.loads((run_dir / SELECTION_NAME).read_text(encoding="utf-8"))
    cache = run_cache(run_dir)
    pools = fold_pools(settings, cache, selection["fold"])
    return Selected(
        load_fold_model(run_dir, selection["fold"], device),
        selection,
        cache,
        pools.validation,
        pools.test,
        device,
        settings.batch_size,
    )
