"""Find the FLAIR images to process with pybids, indexing only the subjects and folders that matter.

A one-subject run on a dataset of thousands of subjects must start in seconds (MRIQC #922): the other
subjects' folders, derivatives and every non-anat datatype folder are excluded before pybids walks them.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bids import BIDSLayout, BIDSLayoutIndexer
from bids.layout import Query
from bids.layout.models import Config, Entity

from flairqc_app import config
from flairqc_app.entities import ENTITIES, ENTITIES_BY_NAME, Selection
from flairqc_app.exceptions import DiscoveryError

FLAIR_QUERY = {"suffix": "FLAIR", "datatype": "anat", "extension": [".nii", ".nii.gz"]}


@dataclass(frozen=True)
class FlairImage:
    path: Path
    relpath: str  # relative to the BIDS root, forward slashes
    entities: dict[str, str]  # pybids entity name -> value as written in the file name
    metadata: dict[str, Any] = field(default_factory=dict)  # sidecar JSON, inheritance applied
    bids_errors: tuple[str, ...] = ()  # the BIDS validator's errors about this file or its sidecar: it fails
    # a sidecar that applies to this image is not a JSON object: it fails alone
    sidecar_error: str | None = None

    @property
    def bids_name(self) -> str:
        name = self.path.name
        return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name[: -len(".nii")]

    @property
    def subject(self) -> str:
        return self.entities["subject"]

    def entity_columns(self) -> dict[str, str | None]:
        """participant_id, session_id, acq_id, rec_id, run_id for the output rows."""
        return {entity.column: entity.cell(self.entities.get(entity.name)) for entity in ENTITIES}


def read_labels_arg(values: list[str] | None) -> list[str] | None:
    """Participant labels from the CLI: labels with or without `sub-`, or files with one label per line."""
    if not values:
        return None
    subject = ENTITIES_BY_NAME["subject"]
    labels: list[str] = []
    for value in values:
        candidate = Path(value)
        if candidate.is_file():
            try:
                lines = candidate.read_text(encoding="utf-8").split()
            except (OSError, ValueError) as exc:
                raise DiscoveryError(f"cannot read the participant label file {candidate}: {exc}") from exc
            labels += [subject.label(x.strip()) for x in lines if x.strip() and not x.startswith("#")]
        else:
            labels.append(subject.label(value))
    return sorted(set(labels))


def read_filter_file(path: Path | None) -> dict[str, Any]:
    """`{"flair": {entity: value}}` (BIDS-Apps convention); null means the entity must be absent."""
    if path is None:
        return {}
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON or not UTF-8
        raise DiscoveryError(f"cannot read the BIDS filter file {path}: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("flair", {}), dict):
        raise DiscoveryError(f'{path}: expected a JSON object {{"flair": {{entity: value}}}}')
    unknown = set(payload) - {"flair"}
    if unknown:
        raise DiscoveryError(f"{path}: unknown query name(s) {sorted(unknown)}; flairqc reads only 'flair'")
    filters = {}
    for entity, value in payload.get("flair", {}).items():
        problem = filter_problem(entity, value)
        if problem:
            raise DiscoveryError(f"{path}: {problem}")
        filters[entity] = Query.NONE if value is None else Query.ANY if value == "*" else value
    return filters


def filter_problem(entity: str, value: Any) -> str | None:
    """What is wrong with one entry of a filter file, or None.

    >>> filter_problem("acquisition", ["sag", "ax"]) is None, filter_problem("acq", "sag")[:27]
    (True, "unknown BIDS entity 'acq' (")
    """
    if entity not in BIDS_ENTITIES:
        return f"unknown BIDS entity {entity!r} (entities are {', '.join(sorted(BIDS_ENTITIES))})"
    values = value if isinstance(value, list) else [value]
    if (value is not None and not values) or not all(
        isinstance(v, (str, int)) and not isinstance(v, bool) for v in values if value is not None
    ):
        return f'{entity}: {json.dumps(value)} is not a label, a list of labels, null or "*"'
    return None


def sidecar_problem(path: Path) -> str | None:
    """Why a JSON sidecar is unusable (BIDS: a JSON object in UTF-8), or None. pybids would abort the whole
    dataset on it, so discover() leaves it out and fails only the images it applies to."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "is UTF-16 text (it starts with a UTF-16 byte-order mark); BIDS JSON files are UTF-8"
    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"is not UTF-8 text ({exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as exc:
        return f"is not valid JSON ({exc})"
    if not isinstance(payload, dict):
        return f"is a JSON {type(payload).__name__}, not an object {{field: value}}"
    return None


def broken_sidecars(bids_dir: Path, subjects: list[str] | None) -> dict[str, str]:
    """Relative path -> problem, for every unusable JSON sidecar in the folders that discover() indexes."""
    found = {}
    for subject in subjects or ["*"]:
        for pattern in (
            f"sub-{subject}/*.json",
            f"sub-{subject}/ses-*/*.json",
            f"sub-{subject}/anat/*.json",
            f"sub-{subject}/ses-*/anat/*.json",
        ):
            for path in bids_dir.glob(pattern):
                problem = sidecar_problem(path)
                if problem:
                    found[path.relative_to(bids_dir).as_posix()] = problem
    for path in bids_dir.glob("*.json"):
        problem = sidecar_problem(path) if path.name != "dataset_description.json" else None
        if problem:
            found[path.name] = problem
    return found


def applies_to(sidecar_relpath: str, image_relpath: str) -> bool:
    """BIDS inheritance: a FLAIR sidecar in the image's folder or above, whose entities the image has.

    >>> applies_to("sub-01/sub-01_acq-sag_FLAIR.json", "sub-01/anat/sub-01_acq-sag_run-1_FLAIR.nii.gz")
    True
    >>> applies_to("sub-01/anat/sub-01_T1w.json", "sub-01/anat/sub-01_FLAIR.nii.gz")
    False
    """
    folder, _, name = sidecar_relpath.rpartition("/")
    stem = name[: -len(".json")]
    if not (stem == "FLAIR" or stem.endswith("_FLAIR")) or not (
        image_relpath.startswith(folder + "/") or not folder
    ):
        return False
    image_parts = set(image_relpath.rpartition("/")[2].split("_"))
    return all(part in image_parts for part in stem.split("_")[:-1])


def dataset_subjects(bids_dir: Path) -> list[str]:
    """Subject labels from the folder names: a directory listing, no indexing."""
    return sorted(p.name[4:] for p in bids_dir.glob("sub-*") if p.is_dir())


def ignore_patterns(subjects: list[str] | None) -> list[re.Pattern]:
    patterns = [
        re.compile(r"^/(derivatives|sourcedata|code|stimuli|phenotype)(/|$)"),
        re.compile(r"^/\."),
        # datatype folders other than anat, with and without a session level
        re.compile(r"^/sub-[^/]+/(?!ses-|anat(/|$))[^/]+/"),
        re.compile(r"^/sub-[^/]+/ses-[^/]+/(?!anat(/|$))[^/]+/"),
    ]
    if subjects is not None:
        keep = "|".join(re.escape(s) for s in subjects)
        patterns.append(re.compile(rf"^/sub-(?!({keep})(/|$))[^/]+"))
    return patterns


@contextmanager
def entities_below(root: Path) -> Iterator[None]:
    """While pybids indexes `root`, match its entity patterns against the path below root only.

    pybids 0.22 (the latest on PyPI) matches them against the absolute path (pybids #1270, fixed upstream by
    #1273): a dataset stored under a folder named `func` gets datatype func for every file (0 FLAIRs found),
    one under `sub-x` gets subject x, which also merges every subject's sidecars.
    """
    original = Entity.match_file
    prefix = str(root)

    def match_below_root(entity: Entity, bids_file: Any) -> Any:
        path = str(bids_file.path)
        below = path[len(prefix) :] if path.startswith(prefix + "/") else path
        return original(entity, SimpleNamespace(path=below))

    Entity.match_file = match_below_root  # type: ignore[method-assign]
    try:
        yield
    finally:
        Entity.match_file = original  # type: ignore[method-assign]


def discover(bids_dir: Path, selection: Selection = Selection()) -> list[FlairImage]:
    """Every 3D-FLAIR candidate of the selection, with its sidecar metadata (BIDS inheritance)."""
    bids_dir = Path(bids_dir).resolve()
    available = dataset_subjects(bids_dir)
    if not available:
        raise DiscoveryError(f"{bids_dir}: no sub-* folder, is this a BIDS dataset?", config.EXIT_NO_INPUT)
    participant_labels = list(selection.subjects) or None
    if participant_labels:
        missing = sorted(set(participant_labels) - set(available))
        if missing:
            raise DiscoveryError(f"participant label(s) not in {bids_dir}: {', '.join(missing)}")
    broken = broken_sidecars(bids_dir, participant_labels)
    ignored = [re.compile(rf"^/{re.escape(rel)}$") for rel in broken]
    indexer = BIDSLayoutIndexer(
        validate=False, ignore=ignore_patterns(participant_labels) + ignored, index_metadata=True
    )
    with entities_below(bids_dir):
        layout = BIDSLayout(bids_dir, validate=False, indexer=indexer, derivatives=False)
    query: dict[str, Any] = {**FLAIR_QUERY, **selection.pybids_query()}
    images = []
    for bids_file in layout.get(**query):
        path = Path(bids_file.path)
        entities = {
            k: str(v) if k != "run" else _run_text(path, v)
            for k, v in bids_file.get_entities().items()
            if k in ENTITIES_BY_NAME
        }
        metadata = {k: v for k, v in bids_file.get_metadata().items()}
        relpath = path.relative_to(bids_dir).as_posix()
        errors = [f"sidecar {rel} {problem}" for rel, problem in broken.items() if applies_to(rel, relpath)]
        images.append(
            FlairImage(
                path=path,
                relpath=relpath,
                entities=entities,
                metadata=metadata,
                sidecar_error="; ".join(errors) or None,
            )
        )
    return sorted(images, key=lambda im: im.relpath)


BIDS_ENTITIES = frozenset(Config.load("bids").entities)


def _run_text(path: Path, value: Any) -> str:
    """The run label as written in the file name (pybids turns `run-01` into the integer 1)."""
    match = re.search(r"_run-([a-zA-Z0-9]+)", path.name)
    return match.group(1) if match else str(value)
