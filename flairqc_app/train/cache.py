"""Preprocess each training image once into a cache of .npy volumes at the model's input resolution.

The cache is a directory with `volumes/<key>.npy` (key = sha256 of the file's sha256, the preprocessing
recipe and the input shape, so a changed file, recipe or resolution is a new entry), `samples.tsv` (one row
per image: domain, participant group, labels, test/trainval split) and `cache.json` (shape, dtype, recipe).
Training reads only this directory; `prepare` builds it from BIDS datasets with the BIDS-App's own
preprocessing, and `add_array` builds it from in-memory volumes (tests, benchmarks).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from flairqc_app import tsv
from flairqc_app.config import ARTEFACTS, FLAIR_TEMPLATE, PREPROC_RECIPES, T1W_TEMPLATE
from flairqc_app.grid import resize_to
from flairqc_app.manifest import sha256_of
from flairqc_app.train import labels as lab
from flairqc_app.train import splits

if TYPE_CHECKING:
    from flairqc_app.preprocess import PreprocResult

log = logging.getLogger(__name__)
SAMPLES_NAME = "samples.tsv"
META_NAME = "cache.json"
MODALITY = {"source": "T1w", "target": "FLAIR"}  # the domains of SSDA (paper): labelled T1w, FLAIR
TEMPLATES = {
    "T1w": T1W_TEMPLATE,
    "FLAIR": FLAIR_TEMPLATE,
}  # each modality to its own template, as at inference
# trainval: training and cross-validation folds; validation: labelled target images held out of training, in every
# fold's validation pool (model selection, thresholds); test: the held-out test split, for figures only
SPLITS = ("trainval", "validation", "test")
COLUMNS = (
    "key",
    "domain",
    "filename",
    "participant_id",
    "group",
    "straight_reject",
    *ARTEFACTS,
    "split",
    "registration_ncc",
)


@dataclass(frozen=True)
class CacheRecipe:
    """What a cache is built to: the volumes' shape and dtype and how each image is preprocessed, then
    (`prepare`) how the samples are split, or (`train.synthetic.build_cache`) how the engine draws them.
    A cache key is made of the image, the preprocessing settings and the shape only: the other fields never
    re-key a volume."""

    shape: tuple[int, int, int]
    preprocess: str | None = None  # PREPROC_RECIPES name; None (synthetic only): world-coordinate shortcut
    dtype: str = "float16"
    # prepare: the held-out splits (assign_validation_split, assign_test_split) and the unit of splitting
    test_fraction: float = 0.2
    seed: int = 0
    same_subjects: bool = False
    validation_participants: frozenset[str] = frozenset()
    # build_cache: the synthetic engine (SynthConfig)
    grid: str = "2mm"
    motion_grading: str = "displacement"
    randomise: bool = False


@dataclass(frozen=True)
class Sample:
    """One cached image. `group` is the unit of splitting: `<domain>:<participant>` unless the source and
    target datasets hold the same people (then the bare participant id, so a person is split once)."""

    key: str
    domain: str
    filename: str
    participant_id: str
    group: str
    straight_reject: int | None = None
    grades: dict[str, int | None] = field(default_factory=dict)
    split: str = "trainval"  # one of SPLITS
    registration_ncc: float | None = None

    @property
    def labelled(self) -> bool:
        return self.straight_reject is not None

    def label(self, task: str) -> int | None:
        return lab.task_label(task, self.straight_reject, self.grades)


def cache_key(content_sha256: str, recipe: str, shape: tuple[int, int, int]) -> str:
    text = f"{content_sha256}|{recipe}|{'x'.join(map(str, shape))}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class VolumeCache:
    """A cache directory: volumes by key, the samples table and the cache settings."""

    def __init__(
        self,
        root: Path,
        shape: tuple[int, int, int] | None = None,
        dtype: str = "float16",
        recipe: str = "array",
    ):
        self.root = Path(root)
        meta_path = self.root / META_NAME
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if shape is not None and tuple(meta["shape"]) != tuple(shape):
                raise ValueError(f"{self.root} caches shape {meta['shape']}, not {list(shape)}")
            self.shape, self.dtype, self.recipe = tuple(meta["shape"]), meta["dtype"], meta["recipe"]
        elif shape is None:
            raise FileNotFoundError(f"{meta_path}: not a flairqc-train cache (run `flairqc-train prepare`)")
        else:
            self.shape, self.dtype, self.recipe = tuple(int(n) for n in shape), dtype, recipe
            (self.root / "volumes").mkdir(parents=True, exist_ok=True)
            meta_path.write_text(
                json.dumps({"shape": list(self.shape), "dtype": dtype, "recipe": recipe}) + "\n"
            )

    def path(self, key: str) -> Path:
        return self.root / "volumes" / f"{key}.npy"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, key: str, grid_volume: np.ndarray) -> None:
        """Store a preprocessed volume (any 3D shape) resized to the cache's input shape."""
        volume = resize_to(grid_volume, self.shape).astype(self.dtype)
        tmp = self.path(key).with_suffix(".tmp.npy")
        np.save(tmp, volume)
        tmp.replace(self.path(key))

    def load(self, key: str) -> np.ndarray:
        return np.load(self.path(key), mmap_mode="r")

    def batch(self, keys: list[str]) -> np.ndarray:
        """float32 array [N, 1, X, Y, Z] of the given volumes."""
        return np.stack([self.load(k) for k in keys]).astype(np.float32)[:, np.newaxis]

    def add_array(self, sample: Sample, grid_volume: np.ndarray) -> Sample:
        """Cache an in-memory preprocessed volume; its key is derived from the array content."""
        content = hashlib.sha256(np.ascontiguousarray(grid_volume, dtype=np.float32).tobytes()).hexdigest()
        keyed = replace(sample, key=cache_key(content, self.recipe, self.shape))
        self.put(keyed.key, grid_volume)
        return keyed

    def write_samples(self, samples: list[Sample]) -> None:
        rows = [
            {
                "key": s.key,
                "domain": s.domain,
                "filename": s.filename,
                "participant_id": s.participant_id,
                "group": s.group,
                "straight_reject": s.straight_reject,
                **{a: s.grades.get(a) for a in ARTEFACTS},
                "split": s.split,
                "registration_ncc": s.registration_ncc,
            }
            for s in samples
        ]
        ncc_cell = lambda v: tsv.format_cell(v, ".4f", keep_nan=True)  # noqa: E731
        tsv.write_rows(self.root / SAMPLES_NAME, COLUMNS, rows, cell=ncc_cell)

    def read_samples(self) -> list[Sample]:
        rows = tsv.read_rows(self.root / SAMPLES_NAME)

        def num(text: str, kind: type) -> int | float | None:
            return None if text == tsv.NA else kind(text)

        for r in rows:  # an image of an unknown split would silently be in no pool at all
            if r["split"] not in SPLITS:
                raise ValueError(
                    f"{self.root / SAMPLES_NAME}: {r['filename']} has split {r['split']!r}, not one of "
                    f"{', '.join(SPLITS)}"
                )
        return [
            Sample(
                key=r["key"],
                domain=r["domain"],
                filename=r["filename"],
                participant_id=r["participant_id"],
                group=r["group"],
                straight_reject=num(r["straight_reject"], int),
                grades={a: num(r[a], int) for a in ARTEFACTS},
                split=r["split"],
                registration_ncc=num(r["registration_ncc"], float),
            )
            for r in rows
        ]


def check_validation_participants(samples: list[Sample], participants: frozenset[str]) -> None:
    """Each named validation participant must have a labelled FLAIR in the target dataset."""
    labelled = {s.participant_id for s in samples if s.domain == "target" and s.labelled}
    missing = sorted(participants - labelled)
    if missing:
        raise ValueError(
            f"validation participants without a labelled FLAIR in the target dataset: {', '.join(missing)}"
        )


def assign_validation_split(samples: list[Sample], participants: frozenset[str]) -> list[Sample]:
    """Mark every image of the groups of the named target participants `validation` (unlabelled ones and, with
    --same-subjects, their T1w included, so training never sees them)."""
    groups = {s.group for s in samples if s.domain == "target" and s.participant_id in participants}
    return [replace(s, split="validation") if s.group in groups else s for s in samples]


def assign_test_split(samples: list[Sample], fraction: float, seed: int) -> list[Sample]:
    """Mark the held-out test groups (stratified by domain and worst quality class) among the images not already
    in the validation split; every image of a test group, unlabelled ones included, is `test`, so training never
    sees a test participant."""
    classes: dict[str, list[str]] = {}
    domains: dict[str, set[str]] = {}
    for s in samples:
        if s.split == "validation":
            continue
        classes.setdefault(s.group, []).append(lab.quality_class(s.straight_reject, s.grades))
        domains.setdefault(s.group, set()).add(s.domain)
    strata = {g: f"{'+'.join(sorted(domains[g]))}:{splits.worst(c)}" for g, c in classes.items()}
    test = splits.test_groups(strata, fraction, seed)
    return [
        s if s.split == "validation" else replace(s, split="test" if s.group in test else "trainval")
        for s in samples
    ]


def dataset_samples(bids_dir: Path, domain: str, same_subjects: bool) -> list[tuple[Sample, Path]]:
    """Samples of one dataset: labelled rows of its modality, and (target only) unlabelled FLAIR files."""
    modality = MODALITY[domain]
    bids_dir = Path(bids_dir)
    rows = {r.filename: r for r in lab.read_labels(bids_dir / lab.LABELS_NAME) if r.modality == modality}
    names = [f for f, r in rows.items() if r.labelled]
    if domain == "target":
        names += [f for f in lab.find_images(bids_dir, modality) if f not in rows or not rows[f].labelled]
    out = []
    for name in sorted(set(names)):
        row = rows.get(name)
        participant = row.participant_id if row else lab.participant_of(name)
        sample = Sample(
            key="",
            domain=domain,
            filename=name,
            participant_id=participant,
            group=participant if same_subjects else f"{domain}:{participant}",
            straight_reject=row.straight_reject if row else None,
            grades=dict(row.grades) if row else {},
        )
        out.append((sample, bids_dir / name))
    return out


def preprocess_for_training(img: nib.Nifti1Image, template: Path, recipe: str) -> PreprocResult:
    """The BIDS-App preprocessing of one training image, its transform not kept (ANTs is imported here, so
    that worker processes load it lazily)."""
    from flairqc_app.preprocess import preprocess_image

    with tempfile.TemporaryDirectory(prefix="flairqc-prepare-") as work:
        return preprocess_image(img, template, PREPROC_RECIPES[recipe], Path(work))


def _preprocess_one(path: Path, template: Path, recipe: str) -> tuple[np.ndarray, float, float]:
    """Worker: one file."""
    tic = time.perf_counter()
    result = preprocess_for_training(nib.load(str(path)), template, recipe)
    return result.volume, result.registration_ncc, time.perf_counter() - tic


def _preprocess_all(
    todo: list[tuple[Sample, Path]], recipe: str, jobs: int
) -> Iterator[tuple[Sample, tuple[np.ndarray, float, float] | Exception]]:
    """Results in order; in this process for one job, else in a process pool (ANTs is not thread-parallel
    across images)."""

    def template(sample: Sample) -> Path:
        return TEMPLATES[MODALITY[sample.domain]]

    if jobs <= 1:
        for sample, path in todo:
            try:
                yield sample, _preprocess_one(path, template(sample), recipe)
            except Exception as exc:
                yield sample, exc
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [(s, pool.submit(_preprocess_one, p, template(s), recipe)) for s, p in todo]
        for sample, future in futures:
            try:
                yield sample, future.result()
            except Exception as exc:
                yield sample, exc


def prepare(
    source_dir: Path, target_dir: Path, cache_dir: Path, recipe: CacheRecipe, jobs: int = 1
) -> list[Sample]:
    """Preprocess (once) and cache every source and target image with `recipe.preprocess`, then write
    samples.tsv with the splits: the named validation participants (held out of training, in every fold's
    validation pool), then the test split.

    T1w images are registered to the T1w template, FLAIR to the FLAIR template, exactly as at inference. An
    image that fails preprocessing is logged and left out; the others are kept.
    """
    preprocess, validation_participants = recipe.preprocess, recipe.validation_participants
    cache = VolumeCache(cache_dir, recipe.shape, recipe.dtype, preprocess)
    if cache.recipe != preprocess:
        raise ValueError(
            f"{cache_dir} was prepared with recipe {cache.recipe!r}, not {preprocess!r}: use another cache"
        )
    pending = dataset_samples(source_dir, "source", recipe.same_subjects) + dataset_samples(
        target_dir, "target", recipe.same_subjects
    )
    # before hours of preprocessing
    check_validation_participants([s for s, _ in pending], validation_participants)
    previous = {s.key: s for s in cache.read_samples()} if (cache.root / SAMPLES_NAME).is_file() else {}
    settings = repr(PREPROC_RECIPES[preprocess])  # in the key: settings may change under the same recipe name
    keyed = [(replace(s, key=cache_key(sha256_of(p), settings, cache.shape)), p) for s, p in pending]
    samples, todo = [], []
    for sample, path in keyed:
        if cache.has(sample.key):
            old = previous.get(sample.key)
            samples.append(replace(sample, registration_ncc=old.registration_ncc if old else None))
        else:
            todo.append((sample, path))
    log.info("prepare: %d cached, %d to preprocess with recipe %r", len(samples), len(todo), preprocess)
    for sample, outcome in _preprocess_all(todo, preprocess, jobs):
        if isinstance(outcome, Exception):  # one bad image must not stop a cache of thousands
            log.error("prepare: %s failed and is left out: %s", sample.filename, outcome)
            continue
        volume, ncc, seconds = outcome
        cache.put(sample.key, volume)
        samples.append(replace(sample, registration_ncc=ncc))
        log.info("prepare: %s (%s) %.1f s, NCC %.3f", sample.filename, sample.domain, seconds, ncc)
    samples = assign_validation_split(
        sorted(samples, key=lambda s: (s.domain, s.filename)), validation_participants
    )
    samples = assign_test_split(samples, recipe.test_fraction, recipe.seed)
    cache.write_samples(samples)
    return samples
