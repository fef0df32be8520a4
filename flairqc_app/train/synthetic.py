"""A flairqc-train cache drawn straight from the synthetic data engine, without writing image files.

Two ways onto the model grid:
- `preprocess=<recipe>`: the BIDS-App's own preprocessing (N4, affine to the T1w or FLAIR template, grid,
  clip, scale), then `resize_to`, exactly as at inference (5-10 s per image on 2 cores). Models meant for the
  BIDS-App must be trained this way.
- `preprocess=None`, a shortcut for method benchmarks: synthetic heads are drawn in posed MNI world
  coordinates, so each image is resampled by its world coordinates onto the model grid (the field of view of
  the 169x208x179 grid, corner aligned like `resize_to`), then clipped to its [2, 98] percentiles and scaled
  to [0, 1]. N4 and registration are skipped: the head pose and the bias field stay in. Measured: models
  trained this way scored well on shortcut test images but missed grade-2 motion and a T1w on the same
  synthetic heads run through the real pipeline (docs/model-history.md#attempt-1), so the shortcut is for comparing
  training methods, not for models to ship.

Used by `flairqc-train synth-cache` (the default models' recipe) and benchmarks/bench_ssda.py. A long cache
resumes: every finished image is journalled (synth-journal.jsonl), and a rerun renders only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from flairqc_app.config import ARTEFACTS, DEFAULT_PREPROC, GRID_SHAPE, PREPROC_RECIPES
from flairqc_app.grid import clip_and_scale, grid_affine, resize_to
from flairqc_app.synth import SynthConfig
from flairqc_app.synth.labels import MISSING
from flairqc_app.synth.plan import CaseSpec, plan_dataset, render_spec
from flairqc_app.train.cache import (
    MODALITY,
    SPLITS,
    TEMPLATES,
    CacheRecipe,
    Sample,
    VolumeCache,
    preprocess_for_training,
)

log = logging.getLogger(__name__)
WORLD = "synth-world"  # cache recipe of the shortcut: images resampled by world coordinates, not registered
JOURNAL_NAME = "synth-journal.jsonl"  # one line per cached image: item id, cache key, engine labels


@dataclass(frozen=True)
class Item:
    """One image of the cache: how to render it and where it goes."""

    spec: CaseSpec
    domain: str  # source (T1w) | target (FLAIR)
    participant: str
    labelled: bool
    split: str = "trainval"  # trainval | validation | test (cache.SPLITS)


@dataclass(frozen=True)
class Part:
    """A block of images planned by the engine's dataset planner (`plan_dataset`) from one seed."""

    prefix: str  # participant labels are sub-<prefix><index>
    domain: str
    n: int
    seed: int
    labelled: bool = True
    split: str = "trainval"
    reject_fraction: float = 0.0
    artefact_fraction: float = 0.5
    # every image that is not a straight reject carries this artefact alone, grades 1 and 2 in turn (by subject
    # index); artefact_fraction is then unused. For a task whose positives the planner's mix leaves too few.
    only_artefact: str | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"part {self.prefix!r}: split {self.split!r} is not one of {', '.join(SPLITS)}")
        if self.only_artefact is not None and self.only_artefact not in ARTEFACTS:
            raise ValueError(
                f"part {self.prefix!r}: only_artefact {self.only_artefact!r} is not one of "
                f"{', '.join(ARTEFACTS)}"
            )
        if self.split == "validation" and (self.domain != "target" or not self.labelled):
            raise ValueError(
                f"part {self.prefix!r}: a validation part must be labelled target images "
                "(thresholds and model selection are the target domain's)"
            )

    def items(self) -> list[Item]:
        specs = plan_dataset(
            self.n, self.seed, (MODALITY[self.domain],), self.reject_fraction, self.artefact_fraction
        )
        if self.only_artefact is not None:
            specs = [
                spec
                if spec.reject is not None
                else replace(
                    spec, **{a: (1 + spec.subject % 2) * (a == self.only_artefact) for a in ARTEFACTS}
                )
                for spec in specs
            ]
        return [
            Item(spec, self.domain, f"sub-{self.prefix}{spec.subject:04d}", self.labelled, self.split)
            for spec in specs
        ]


def to_model_grid(data: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """World-coordinate linear resampling onto `shape` points spanning the 1 mm grid's field of view, then the
    paper's [2, 98] percentile clip and [0, 1] scaling. Outside the image is 0, as after registration."""
    step = np.diag([(g - 1) / (s - 1) for g, s in zip(GRID_SHAPE, shape)] + [1.0])
    m = np.linalg.inv(affine) @ grid_affine() @ step
    out = ndimage.affine_transform(
        np.asarray(data, np.float32), m[:3, :3], m[:3, 3], output_shape=shape, order=1
    )
    return clip_and_scale(out, PREPROC_RECIPES[DEFAULT_PREPROC].clip_percentiles)


def render(
    job: tuple[CaseSpec, SynthConfig, tuple[int, int, int], str | None],
) -> tuple[np.ndarray, dict[str, object]]:
    """One image on the model grid, with its labels (worker process)."""
    spec, config, shape, recipe = job
    case = render_spec(spec, config)
    if recipe is None:
        data = np.asarray(case.image.dataobj, dtype=np.float32)
        return to_model_grid(data[..., 0] if data.ndim == 4 else data, case.image.affine, shape), case.labels
    volume = preprocess_for_training(case.image, TEMPLATES[spec.modality], recipe).volume
    return resize_to(volume, shape), case.labels


def _grade(value: object) -> int | None:
    return None if value == MISSING else int(value)  # type: ignore[call-overload]


def to_sample(item: Item, labels: dict[str, object]) -> Sample:
    filename = f"{item.participant}/anat/{item.participant}_{MODALITY[item.domain]}.nii.gz"
    return Sample(
        key="",
        domain=item.domain,
        filename=filename,
        participant_id=item.participant,
        group=f"{item.domain}:{item.participant}",
        straight_reject=int(labels["straight_reject"]) if item.labelled else None,  # type: ignore[call-overload]
        grades={a: _grade(labels[a]) for a in ARTEFACTS} if item.labelled else {},
        split=item.split,
    )


@lru_cache(maxsize=1)
def renderer_fingerprint() -> str:
    """Hash of the code and settings that turn a plan into pixels (the engine, preprocessing and its recipes,
    resampling): a journalled image drawn by other code is not reused, so a resumed cache holds only images the
    current code renders (a recipe keeps its name when its settings change)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(repr(PREPROC_RECIPES).encode())
    for path in sorted((package / "synth").glob("*.py")) + [package / "preprocess.py", package / "grid.py"]:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def item_id(item: Item, config: SynthConfig, recipe: str) -> str:
    """Identity of a cached item: its participant and everything that decides its pixels and labels (the motion
    grading only for images with motion, so a cache switched to another grading renders only those again)."""
    graded = item.spec.motion > 0 and config.motion_grading != "displacement"
    options = (
        [config.grid]
        + ([config.motion_grading] if graded else [])
        + (["randomised"] if config.randomise else [])
    )
    text = json.dumps(
        [
            item.participant,
            item.domain,
            item.labelled,
            item.split,
            asdict(item.spec),
            *options,
            recipe,
            renderer_fingerprint(),
        ],
        sort_keys=True,
    )
    return f"{item.participant}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def read_journal(path: Path) -> dict[str, tuple[str, dict[str, object]]]:
    """Finished items (id -> cache key, labels); a line cut short by an interruption is ignored."""
    done: dict[str, tuple[str, dict[str, object]]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[entry["item"]] = (entry["key"], entry["labels"])
    return done


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else str(value)  # numpy scalars in the engine's labels


def build_cache(root: Path, items: list[Item], recipe: CacheRecipe, jobs: int = 1) -> VolumeCache:
    """Render every item onto the model grid into the cache at `root`, then write samples.tsv with the splits;
    `recipe.preprocess` names the BIDS-App recipe to run on each image (None: the world-coordinate shortcut);
    `motion_grading` how a motion plan earns its grade, `randomise` the engine's domain randomisation (SynthConfig).
    Items already journalled with their volume in the cache are not rendered again, so an interrupted run
    resumes where it stopped and a complete one costs nothing."""
    preprocess, shape = recipe.preprocess, recipe.shape
    kind = WORLD if preprocess is None else f"synth-{preprocess}"
    cache = VolumeCache(root, shape, recipe.dtype, kind)
    if cache.recipe != kind:
        raise ValueError(f"{root} holds a {cache.recipe!r} cache, not a {kind!r} one: use another directory")
    config = SynthConfig(grid=recipe.grid, motion_grading=recipe.motion_grading, randomise=recipe.randomise)
    ids = [item_id(item, config, kind) for item in items]
    journal = cache.root / JOURNAL_NAME
    done = {i: entry for i, entry in read_journal(journal).items() if cache.has(entry[0])}
    todo = [(item, i) for item, i in zip(items, ids) if i not in done]
    if len(todo) < len(items):
        log.info(
            "synth-cache: %d of %d images already cached, %d to render",
            len(items) - len(todo),
            len(items),
            len(todo),
        )
    jobs_list = [(item.spec, config, tuple(shape), preprocess) for item, _ in todo]
    tic = time.perf_counter()
    with (
        ProcessPoolExecutor(max_workers=max(1, jobs)) as pool,
        open(journal, "a+", encoding="utf-8") as log_file,
    ):
        if log_file.tell() > 0:
            log_file.seek(log_file.tell() - 1)
            if log_file.read(1) != "\n":
                log_file.write("\n")  # close a line cut by an interruption, so the next entry stands alone
        for count, ((item, i), (volume, labels)) in enumerate(
            zip(todo, pool.map(render, jobs_list, chunksize=1)), 1
        ):
            key = cache.add_array(to_sample(item, labels), volume).key
            log_file.write(json.dumps({"item": i, "key": key, "labels": labels}, default=_plain) + "\n")
            log_file.flush()
            done[i] = (key, labels)
            if count % 50 == 0 or count == len(todo):
                log.info("synth-cache: %d/%d images, %.0f s", count, len(todo), time.perf_counter() - tic)
    cache.write_samples([replace(to_sample(item, done[i][1]), key=done[i][0]) for item, i in zip(items, ids)])
    return cache
