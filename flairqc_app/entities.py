"""The BIDS entities flairqc selects on and writes, and the one `Selection` of images a run is asked for.

One table maps each entity (its pybids name, as filter files spell it) to its file-name key and its output
column; discovery (pybids queries) and the group level (filters on the per-image rows) read the same
Selection.
No pybids import here: the filter values Query.NONE and Query.ANY pass through as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entity:
    name: str  # pybids name, as in --bids-filter-file
    key: str  # file-name key: sub-01, ses-a
    column: str  # output column
    long_name: str
    description: str
    prefixed: bool = False  # the column keeps the key (sub-01), not the bare label (01)

    def label(self, text: str) -> str:
        """A label given with or without its key.

        >>> ENTITIES_BY_NAME["session"].label("ses-a"), ENTITIES_BY_NAME["session"].label("a")
        ('a', 'a')
        """
        return text.removeprefix(f"{self.key}-")

    def cell(self, value: Any) -> str | None:
        """The column's text for a label, None when the image has no such entity.

        >>> ENTITIES_BY_NAME["subject"].cell("01"), ENTITIES_BY_NAME["run"].cell("01")
        ('sub-01', '01')
        """
        if value is None:
            return None
        return f"{self.key}-{value}" if self.prefixed else str(value)


ENTITIES = (
    Entity(
        "subject",
        "sub",
        "participant_id",
        "Participant",
        "BIDS subject label with its sub- prefix.",
        prefixed=True,
    ),
    Entity(
        "session", "ses", "session_id", "Session", "BIDS session label with its ses- prefix.", prefixed=True
    ),
    Entity("acquisition", "acq", "acq_id", "Acquisition", "BIDS acq entity value."),
    Entity("reconstruction", "rec", "rec_id", "Reconstruction", "BIDS rec entity value."),
    Entity("run", "run", "run_id", "Run", "BIDS run entity value."),
)
ENTITIES_BY_NAME = {entity.name: entity for entity in ENTITIES}


@dataclass(frozen=True)
class Selection:
    """--participant-label, --session-id, --run-id (labels with or without their key) and a filter file.

    >>> Selection.of(["01"], ["ses-a"], ["run-01"], {"acquisition": "sag"}).entities()
    {'acquisition': 'sag', 'subject': ['01'], 'session': ['a'], 'run': ['01']}
    >>> bool(Selection()), Selection.of(None, None, ["2"], None).pybids_query()
    (False, {'run': [2]})
    """

    subjects: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    filters: Mapping[str, Any] = field(default_factory=dict)  # pybids name -> value(s), Query.NONE, Query.ANY

    @classmethod
    def of(
        cls,
        participant_labels: Sequence[str] | None,
        session_ids: Sequence[str] | None,
        run_ids: Sequence[str] | None,
        filters: Mapping[str, Any] | None,
    ) -> Selection:
        """The participant labels as discover.read_labels_arg returned them (sub- already taken off)."""
        session, run = ENTITIES_BY_NAME["session"], ENTITIES_BY_NAME["run"]
        return cls(
            tuple(participant_labels or ()),
            tuple(session.label(s) for s in session_ids or ()),
            tuple(run.label(r) for r in run_ids or ()),
            dict(filters or {}),
        )

    def __bool__(self) -> bool:
        return bool(self.subjects or self.sessions or self.runs or self.filters)

    def entities(self) -> dict[str, Any]:
        """pybids entity -> wanted label(s): the filter file's, overridden by the options."""
        wanted: dict[str, Any] = dict(self.filters)
        for name, labels in (("subject", self.subjects), ("session", self.sessions), ("run", self.runs)):
            if labels:
                wanted[name] = list(labels)
        return wanted

    def pybids_query(self) -> dict[str, Any]:
        """entities() for BIDSLayout.get, which holds run labels as integers (run-01 is 1)."""
        query = self.entities()
        if self.runs:
            query["run"] = [int(r) if r.isdigit() else r for r in self.runs]
        return query
