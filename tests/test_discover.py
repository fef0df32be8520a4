"""Discovery with pybids: sessions, runs, acq entities, filters, labels, sidecar inheritance."""

import json

import numpy as np
import pytest
from bids.layout import Query
from helpers import make_dataset

from flairqc_app.discover import discover, read_filter_file, read_labels_arg
from flairqc_app.entities import Selection
from flairqc_app.exceptions import DiscoveryError

SMALL = np.zeros((4, 4, 4), np.float32)


@pytest.fixture
def dataset(tmp_path):
    images = {
        "sub-01/anat/sub-01_FLAIR.nii.gz": SMALL,
        "sub-01/anat/sub-01_T1w.nii.gz": SMALL,
        "sub-02/ses-a/anat/sub-02_ses-a_acq-sag_run-01_FLAIR.nii.gz": SMALL,
        "sub-02/ses-a/anat/sub-02_ses-a_acq-sag_run-02_FLAIR.nii": SMALL,
        "sub-02/ses-b/anat/sub-02_ses-b_acq-ax_FLAIR.nii.gz": SMALL,
        "sub-02/ses-b/func/sub-02_ses-b_task-rest_bold.nii.gz": SMALL,
        "sub-03/anat/sub-03_rec-norm_FLAIR.nii.gz": SMALL,
        "derivatives/other/sub-01/anat/sub-01_FLAIR.nii.gz": SMALL,
    }
    sidecars = {
        "FLAIR.json": {"Manufacturer": "Siemens", "MagneticFieldStrength": 3},
        "sub-02/sub-02_FLAIR.json": {"MagneticFieldStrength": 1.5},
        "sub-02/ses-a/anat/sub-02_ses-a_acq-sag_run-01_FLAIR.json": {"EchoTime": 0.4},
    }
    return make_dataset(tmp_path / "bids", images, sidecars)


def names(images):
    return [im.bids_name for im in images]


def test_finds_every_flair_and_nothing_else(dataset):
    found = discover(dataset)
    assert names(found) == [
        "sub-01_FLAIR",
        "sub-02_ses-a_acq-sag_run-01_FLAIR",
        "sub-02_ses-a_acq-sag_run-02_FLAIR",
        "sub-02_ses-b_acq-ax_FLAIR",
        "sub-03_rec-norm_FLAIR",
    ]
    run1 = found[1]
    assert run1.entity_columns() == {
        "participant_id": "sub-02",
        "session_id": "ses-a",
        "acq_id": "sag",
        "rec_id": None,
        "run_id": "01",
    }
    assert found[4].entity_columns()["rec_id"] == "norm"


def test_sidecar_inheritance_and_missing_sidecars(dataset):
    by_name = {im.bids_name: im.metadata for im in discover(dataset)}
    assert by_name["sub-01_FLAIR"] == {"Manufacturer": "Siemens", "MagneticFieldStrength": 3}
    assert by_name["sub-02_ses-a_acq-sag_run-01_FLAIR"] == {
        "Manufacturer": "Siemens",
        "MagneticFieldStrength": 1.5,
        "EchoTime": 0.4,
    }
    (dataset / "FLAIR.json").unlink()
    assert {im.bids_name: im.metadata for im in discover(dataset)}["sub-03_rec-norm_FLAIR"] == {}


def test_labels_sessions_runs(dataset, tmp_path):
    assert names(discover(dataset, Selection.of(["03"], None, None, None))) == ["sub-03_rec-norm_FLAIR"]
    assert read_labels_arg(["sub-03", "01"]) == ["01", "03"]
    label_file = tmp_path / "labels.txt"
    label_file.write_text("sub-02\n03\n")
    assert read_labels_arg([str(label_file)]) == ["02", "03"]
    by_session = Selection.of(["02"], ["ses-b"], None, None)
    assert names(discover(dataset, by_session)) == ["sub-02_ses-b_acq-ax_FLAIR"]
    assert names(discover(dataset, Selection.of(None, None, ["2"], None))) == [
        "sub-02_ses-a_acq-sag_run-02_FLAIR"
    ]


def test_unknown_label_is_a_usage_error(dataset):
    with pytest.raises(DiscoveryError, match="not in") as info:
        discover(dataset, Selection.of(["99"], None, None, None))
    assert info.value.exit_code == 64


def test_filter_file(dataset, tmp_path):
    path = tmp_path / "filter.json"
    path.write_text(json.dumps({"flair": {"acquisition": "sag", "run": 1}}))
    filtered = Selection(filters=read_filter_file(path))
    assert names(discover(dataset, filtered)) == ["sub-02_ses-a_acq-sag_run-01_FLAIR"]
    path.write_text(json.dumps({"flair": {"session": None}}))
    filtered = Selection(filters=read_filter_file(path))
    assert names(discover(dataset, filtered)) == ["sub-01_FLAIR", "sub-03_rec-norm_FLAIR"]
    path.write_text(json.dumps({"t1w": {}}))
    with pytest.raises(DiscoveryError, match="unknown query"):
        read_filter_file(path)
    path.write_text("{not json")
    with pytest.raises(DiscoveryError, match="cannot read"):
        read_filter_file(path)


def test_one_subject_run_does_not_index_the_others(dataset):
    """A one-subject run never reads another subject's sidecar; a full run marks only the image it applies to."""
    (dataset / "sub-01/anat/sub-01_FLAIR.json").write_text("{broken json")
    selected = discover(dataset, Selection.of(["03"], None, None, None))
    assert names(selected) == ["sub-03_rec-norm_FLAIR"] and selected[0].sidecar_error is None
    errors = {image.bids_name: image.sidecar_error for image in discover(dataset)}
    assert errors.pop("sub-01_FLAIR").startswith("sidecar sub-01/anat/sub-01_FLAIR.json is not valid JSON")
    assert set(errors.values()) == {None}


@pytest.mark.parametrize("folder", ["anat", "func", "perf", "sub-x", "ses-y", "acq-z_run-3"])
def test_a_dataset_under_an_entity_like_folder_is_read_below_its_root(tmp_path, folder):
    """pybids #1270: entities were matched against the absolute path (0 FLAIRs under `func`, one subject under
    `sub-x` with every sidecar merged)."""
    root = make_dataset(
        tmp_path / folder / "bids",
        {
            "sub-01/anat/sub-01_FLAIR.nii.gz": SMALL,
            "sub-02/ses-1/anat/sub-02_ses-1_FLAIR.nii.gz": SMALL,
            "sub-02/ses-1/func/sub-02_ses-1_task-rest_bold.nii.gz": SMALL,
        },
        {"sub-02/sub-02_FLAIR.json": {"EchoTime": 0.1}},
    )
    found = discover(root)
    assert [(im.bids_name, im.entities, im.metadata) for im in found] == [
        ("sub-01_FLAIR", {"subject": "01"}, {}),
        ("sub-02_ses-1_FLAIR", {"subject": "02", "session": "1"}, {"EchoTime": 0.1}),
    ]
    assert names(discover(root, Selection.of(["02"], ["1"], None, None))) == ["sub-02_ses-1_FLAIR"]
    assert names(discover(root, Selection(filters={"session": Query.NONE}))) == ["sub-01_FLAIR"]
