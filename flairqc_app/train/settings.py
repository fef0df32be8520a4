"""Every training setting in one place, with the paper's defaults (paper section 2.4; docs/training.md).

A run is fully described by one `TrainSettings`, saved as settings.json in the run directory and read back
on `--resume`; a JSON or TOML file may override any field, and the CLI overrides the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from flairqc_app.config import GRID_SHAPE
from flairqc_app.train.augment import check_names

INPUT_REGIONS = ("head", "brain")
# how an ensemble combines its members' class probabilities (train/ensemble.py)
COMBINATIONS = (
    "mean",
    "median",
)


@dataclass(frozen=True)
class ModelSettings:
    """Conv5 feature extractor and the three heads. Defaults: ClinicaDL's Conv5_FC3 on the full grid."""

    input_shape: tuple[int, int, int] = GRID_SHAPE
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    head: str = "fc3"  # fc3: flatten (paper); gap: global average pooling first (compact, resolution-free)
    hidden: tuple[int, ...] = (1300, 50)
    dropout: float = 0.5
    # head: the whole registered image; brain: the template brain and a margin, zero elsewhere (models.py)
    input_region: str = "head"

    def __post_init__(self) -> None:
        if self.input_region not in INPUT_REGIONS:
            raise ValueError(f"unknown input_region {self.input_region!r} ({' | '.join(INPUT_REGIONS)})")


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation, schedules, sampling, splits and seeds of one training run."""

    task: str = "straight_reject"
    method: str = "ssda"
    model: ModelSettings = field(default_factory=ModelSettings)
    batch_size: int = 10
    epochs: int = 100
    pretrain_epochs: int = 10  # without the adversarial part, on all labelled training data (paper 2.4.1)
    augment: tuple[str, ...] = ()  # training-time augmentations (train/augment.py); the paper uses none
    # straight_reject: labelled source (T1w) images train as rejects (pools.py)
    source_as_rejects: bool = False
    lr0: float = 1e-4  # mu_0 of eq. 3; the paper's 0.01 diverges with Adam, the authors' later code used 1e-6
    lr_alpha: float = 10.0
    lr_beta: float = 0.75
    lambda_gamma: float = 10.0  # eq. 2: lambda = 2 / (1 + exp(-gamma p)) - 1
    adam_betas: tuple[float, float] = (0.9, 0.999)  # "Adam with momentum 0.9"
    weight_decay: float = 0.0
    folds: int = 5
    test_fraction: float = 0.2  # of the labelled participants of each domain, set once at `prepare`
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads, 0: torch default

    def __post_init__(self) -> None:
        check_names(self.augment)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def _coerce(cls: type, values: dict[str, Any]) -> Any:
    """A (nested) settings dataclass from plain values; lists become tuples, unknown keys are errors."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} setting(s): {', '.join(unknown)}")
    out = {}
    for name, value in values.items():
        if name == "model" and isinstance(value, dict):
            value = _coerce(ModelSettings, value)
        elif isinstance(value, list):
            value = tuple(value)
        out[name] = value
    return cls(**out)


def from_dict(values: dict[str, Any], base: TrainSettings | None = None) -> TrainSettings:
    """Override `base` (default: the paper's defaults) with `values`; the `model` block is merged too."""
    base = base or TrainSettings()
    values = dict(values)
    if isinstance(values.get("model"), dict):
        values["model"] = asdict(base.model) | values["model"]
    return _coerce(TrainSettings, asdict(base) | values)


def load(path: Path | None, overrides: dict[str, Any] | None = None) -> TrainSettings:
    """Settings from a JSON or TOML file (by suffix), then the explicit overrides (None values ignored)."""
    values: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        values = tomllib.loads(text) if str(path).endswith(".toml") else json.loads(text)
    settings = from_dict(values)
    clean = {k: v for k, v in (overrides or {}).items() if v is not None}
    return from_dict(clean, settings) if clean else settings
