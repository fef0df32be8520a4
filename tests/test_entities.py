"""The one entity table and Selection, shared by discovery and the group filters."""

import doctest
import logging

from bids.layout import Query

from flairqc_app import entities
from flairqc_app.entities import ENTITIES, Selection
from flairqc_app.group import matches, table_selection
from flairqc_app.schema import COLUMN_NAMES, ENTITY_COLUMNS


def test_the_doctest_examples_hold():
    assert doctest.testmod(entities).failed == 0


def test_the_schema_columns_follow_the_entity_table():
    assert [c.name for c in ENTITY_COLUMNS] == [e.column for e in ENTITIES]
    assert all(e.column in COLUMN_NAMES for e in ENTITIES)


def test_labels_given_with_or_without_their_key_select_the_same_rows():
    row = {"participant_id": "sub-02", "session_id": "ses-a", "acq_id": "sag", "rec_id": None, "run_id": "01"}
    for sessions, runs in ((["ses-a"], ["run-1"]), (["a"], ["01"]), (None, ["1"])):
        assert matches(row, table_selection(Selection.of(["02"], sessions, runs, None)))
    assert not matches(row, table_selection(Selection.of(["02"], ["b"], None, None)))
    assert not matches(row, table_selection(Selection(filters={"reconstruction": Query.ANY})))
    no_rec = Selection(filters={"reconstruction": Query.NONE, "acquisition": "sag"})
    assert matches(row, table_selection(no_rec))


def test_the_options_override_the_filter_file_and_runs_become_integers_for_pybids():
    selection = Selection.of(None, None, ["run-02", "x1"], {"run": 7, "acquisition": "sag"})
    assert selection.entities() == {"run": ["02", "x1"], "acquisition": "sag"}
    assert selection.pybids_query() == {"run": [2, "x1"], "acquisition": "sag"}


def test_a_filter_on_an_entity_the_rows_lack_is_ignored_with_a_warning(caplog):
    log = logging.getLogger("flairqc")  # the CLI stops it propagating to the root logger caplog listens on
    log.addHandler(caplog.handler)
    try:
        assert table_selection(Selection(filters={"echo": 1, "subject": "01"})) == {"subject": "01"}
    finally:
        log.removeHandler(caplog.handler)
    assert "filter on 'echo' cannot be applied" in caplog.text
