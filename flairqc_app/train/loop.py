"""One cross-validation fold of any method: optional pre-training phase, then the main phase.

Each iteration draws the method's mini-batches (labelled T1w, labelled FLAIR, unlabelled FLAIR), runs each
through F, adds the label cross-entropies of their heads and, for adversarial methods, the
domain BCE behind the gradient reversal layer, so that the minimised sum equals eq. 1 for the label heads
and F. lambda (eq. 2) and the learning rate (eq. 3) follow the true progress p of the phase, per iteration.
An epoch is one pass over the largest labelled pool in use. A checkpoint is written after every epoch, and
the main-phase state with the lowest target validation loss is kept as best.pt (model selection).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf

from flairqc_app import tsv
from flairqc_app.train import schedules
from flairqc_app.train.augment import augment_batch
from flairqc_app.train.cache import VolumeCache
from flairqc_app.train.labels import n_classes
from flairqc_app.train.methods import Method, resolve
from flairqc_app.train.metrics import balanced_accuracy
from flairqc_app.train.models import SSDANet, TargetClassifier
from flairqc_app.train.pools import Pools
from flairqc_app.train.settings import TrainSettings
from flairqc_app.train.streams import BatchStream

log = logging.getLogger(__name__)
CURVE_COLUMNS = (
    "phase",
    "epoch",
    "iterations",
    "lr",
    "lambda",
    "loss",
    "loss_source",
    "loss_target",
    "loss_domain",
    "domain_accuracy",
    "val_loss",
    "val_ba",
    "seconds",
)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda requested but torch sees no CUDA device")
    return torch.device(name)


def build_network(settings: TrainSettings) -> SSDANet:
    method, task = resolve(settings.method, settings.task)
    return SSDANet(settings.model, n_classes(task), method.label_heads, method.adversarial)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    cache: VolumeCache,
    keys: tuple[str, ...] | list[str],
    device: torch.device,
    batch_size: int,
) -> np.ndarray:
    """Logits [N, K] of a module mapping images to logits (F + C_T), in eval mode."""
    model.eval()
    out = [
        model(torch.from_numpy(cache.batch(list(keys[i : i + batch_size]))).to(device)).float().cpu().numpy()
        for i in range(0, len(keys), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclass
class Validation:
    loss: float
    ba: float


def validate(
    net: SSDANet, cache: VolumeCache, pools: Pools, device: torch.device, batch_size: int
) -> Validation:
    """Cross-entropy and balanced accuracy (argmax) of F + C_T on the validation fold."""
    logits = predict_logits(TargetClassifier(net), cache, pools.validation.keys, device, batch_size)
    y = np.asarray(pools.validation.labels)
    loss = float(nnf.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item())
    return Validation(loss, balanced_accuracy(y, logits.argmax(axis=1)))


def make_streams(method: Method, pools: Pools, batch_size: int, seed: list[int]) -> dict[str, BatchStream]:
    """The method's streams, each with its own seeded generator."""
    wanted = {
        "source": method.source_head is not None,
        "target": method.target_labels,
        "unlabelled": method.adversarial,
    }
    streams = {}
    for i, (name, used) in enumerate(wanted.items()):
        if used:
            pool = getattr(pools, name)
            if len(pool) == 0:
                raise ValueError(f"method {method.name} needs {name} images, the {name} pool is empty")
            streams[name] = BatchStream(pool, batch_size, seed + [i])
    return streams


def iterations_per_epoch(method: Method, pools: Pools, batch_size: int) -> int:
    labelled = [len(pools.source)] * (method.source_head is not None) + [
        len(pools.target)
    ] * method.target_labels
    return max(1, math.ceil(max(labelled) / batch_size))


def train_step(
    net: SSDANet,
    optimizer: torch.optim.Optimizer,
    method: Method,
    streams: dict[str, BatchStream],
    cache: VolumeCache,
    device: torch.device,
    lambd: float,
    augment: tuple[str, ...] = (),
    rng: np.random.Generator | None = None,
) -> dict[str, float]:
    """One iteration: each mini-batch (augmented with `augment`, drawn from `rng`) through F on its own
    (BatchNorm batch statistics stay within one domain, as when the streams are separate loaders), label and
    domain losses, one Adam step."""
    stats: dict[str, float] = {}
    total = torch.zeros((), device=device)
    features, domain_labels = [], []
    for name, stream in streams.items():
        batch_keys, labels = stream.next()
        images = cache.batch(batch_keys)
        if rng is not None:
            images = augment_batch(images, augment, rng)
        part = net.features(torch.from_numpy(images).to(device))
        features.append(part)
        domain_labels += [0.0 if name == "source" else 1.0] * len(batch_keys)
        if labels is None:
            continue
        head = method.source_head if name == "source" else "target"
        loss = nnf.cross_entropy(net.classify(part, head), torch.from_numpy(labels).to(device))
        stats[f"loss_{name}"] = loss.item()
        total = total + loss
    paper_loss = total.item()
    if method.adversarial:
        d = torch.tensor(domain_labels, device=device)
        logits = net.discriminate(torch.cat(features), lambd)
        domain_loss = nnf.binary_cross_entropy_with_logits(logits, d)
        total = total + domain_loss  # the GRL turns this into -lambda * L_dom for F (eq. 1)
        stats["loss_domain"] = domain_loss.item()
        stats["domain_accuracy"] = float(((logits > 0).float() == d).float().mean().item())
        paper_loss -= lambd * domain_loss.item()
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    stats["loss"] = paper_loss
    return stats


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _write_curves(path: Path, history: list[dict[str, Any]]) -> None:
    tsv.write_rows(path, CURVE_COLUMNS, history, lambda v: tsv.format_cell(v, keep_nan=True), quoted=True)


def train_fold(
    settings: TrainSettings, cache: VolumeCache, pools: Pools, fold: int, fold_dir: Path, resume: bool = False
) -> dict[str, Any]:
    """Train one fold; returns (and writes to outcome.json) the best validation loss and its epoch."""
    fold_dir.mkdir(parents=True, exist_ok=True)
    method, _ = resolve(settings.method, settings.task)
    device = pick_device(settings.device)
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed * 1009 + fold)
    net = build_network(settings).to(device)
    phases = (
        [("pretrain", method.pretraining(), settings.pretrain_epochs)]
        if method.pretrain and settings.pretrain_epochs > 0
        else []
    ) + [("train", method, settings.epochs)]
    last = fold_dir / "last.pt"
    ckpt: dict[str, Any] | None = None
    if resume and last.is_file():
        ckpt = torch.load(last, map_location=device, weights_only=False)
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        torch.set_rng_state(ckpt["torch_rng"])
        history, best = ckpt["history"], ckpt["best"]
        log.info("fold %d: resuming at phase %d epoch %d", fold, ckpt["phase"], ckpt["epoch"])
    else:
        first = validate(net, cache, pools, device, settings.batch_size)
        history = [{"phase": "init", "epoch": 0, "val_loss": first.loss, "val_ba": first.ba}]
        best = {"val_loss": math.inf, "epoch": None, "val_ba": None}
    for index, (phase, phase_method, epochs) in enumerate(phases):
        if ckpt is not None and index < ckpt["phase"]:
            continue
        resuming = ckpt is not None and index == ckpt["phase"]
        streams = make_streams(phase_method, pools, settings.batch_size, [settings.seed, fold, index])
        optimizer = torch.optim.Adam(
            net.parameters(), lr=settings.lr0, betas=settings.adam_betas, weight_decay=settings.weight_decay
        )
        if resuming:
            optimizer.load_state_dict(ckpt["optimizer"])  # type: ignore[index]
            for name, state in ckpt["streams"].items():  # type: ignore[index]
                streams[name].load_state_dict(state)
        per_epoch = iterations_per_epoch(phase_method, pools, settings.batch_size)
        total_iterations = epochs * per_epoch
        for epoch in range(ckpt["epoch"] if resuming else 0, epochs):  # type: ignore[index]
            tic = time.perf_counter()
            net.train()
            sums: dict[str, float] = {}
            for it in range(epoch * per_epoch, (epoch + 1) * per_epoch):
                p = schedules.progress(it, total_iterations)
                lr = schedules.learning_rate(p, settings.lr0, settings.lr_alpha, settings.lr_beta)
                lambd = schedules.grl_lambda(p, settings.lambda_gamma) if phase_method.adversarial else 0.0
                for group in optimizer.param_groups:
                    group["lr"] = lr
                rng = np.random.default_rng([settings.seed, fold, index, it])  # per iteration: resumable
                for k, v in train_step(
                    net, optimizer, phase_method, streams, cache, device, lambd, settings.augment, rng
                ).items():
                    sums[k] = sums.get(k, 0.0) + v
            val = validate(net, cache, pools, device, settings.batch_size)
            row = {
                "phase": phase,
                "epoch": epoch + 1,
                "iterations": (epoch + 1) * per_epoch,
                "lr": lr,
                "lambda": lambd,
                **{k: v / per_epoch for k, v in sums.items()},
                "val_loss": val.loss,
                "val_ba": val.ba,
                "seconds": time.perf_counter() - tic,
            }
            history.append(row)
            log.info(
                "fold %d %s epoch %d/%d: loss %.4f val_loss %.4f val_ba %.3f",
                fold,
                phase,
                epoch + 1,
                epochs,
                row.get("loss", float("nan")),
                val.loss,
                val.ba,
            )
            if phase == "train" and val.loss < best["val_loss"]:
                best = {"val_loss": val.loss, "epoch": epoch + 1, "val_ba": val.ba}
                _save(
                    fold_dir / "best.pt",
                    {"model": net.state_dict(), "epoch": epoch + 1, "val_loss": val.loss},
                )
            _save(
                last,
                {
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "phase": index,
                    "epoch": epoch + 1,
                    "streams": {n: s.state_dict() for n, s in streams.items()},
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                    "best": best,
                },
            )
            _write_curves(fold_dir / "curves.tsv", history)
        ckpt = None  # the next phase starts fresh
    outcome = {
        "fold": fold,
        "best_val_loss": best["val_loss"],
        "best_epoch": best["epoch"],
        "best_val_ba": best["val_ba"],
        "initial_val_loss": history[0]["val_loss"],
        "pools": pools.counts(),
    }
    (fold_dir / "outcome.json").write_text(json.dumps(outcome, indent=2) + "\n", encoding="utf-8")
    return outcome
