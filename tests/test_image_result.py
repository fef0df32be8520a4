"""The per-image path's one writer: an ImageResult, stopped or not, becomes a crash file, a report and a TSV."""

from pathlib import Path

import pytest

from flairqc_app import derivatives, tsv
from flairqc_app.discover import FlairImage
from flairqc_app.exceptions import ImageFailed
from flairqc_app.image_result import ImageResult, write_result
from flairqc_app.schema import GATE_REASONS, PIPELINE_REASONS, REASONS


def result_of(tmp_path: Path) -> ImageResult:
    image = FlairImage(
        path=tmp_path / "bids" / "sub-01" / "anat" / "sub-01_FLAIR.nii.gz",
        relpath="sub-01/anat/sub-01_FLAIR.nii.gz",
        entities={"subject": "01"},
    )
    row = {"bids_name": image.bids_name, "source_file": image.relpath, **image.entity_columns()}
    return ImageResult(image, row, started=0.0)


def test_every_reason_belongs_to_one_stage_and_says_failed_or_skipped():
    assert not set(GATE_REASONS) & set(PIPELINE_REASONS)
    assert REASONS == {**GATE_REASONS, **PIPELINE_REASONS}
    assert {status for status, _ in REASONS.values()} == {"failed", "skipped"}


@pytest.mark.parametrize("reason, status", [("too_large", "failed"), ("not_3d", "skipped")])
def test_a_stopped_image_takes_the_status_of_its_reason(tmp_path, reason, status):
    result = result_of(tmp_path)
    result.stop(ImageFailed(reason, "why", "Traceback: here"))
    assert (result.status, result.reason, result.detail, result.trace) == (
        status,
        reason,
        "why",
        "Traceback: here",
    )


def test_a_failure_writes_its_crash_file_and_a_later_skip_removes_it(tmp_path):
    out = tmp_path / "out"
    failed = result_of(tmp_path)
    failed.stop(ImageFailed("worker_died", "the worker process was killed", "Traceback: in the worker"))
    outcome = write_result(failed, out)
    assert (outcome.bids_name, outcome.status, outcome.reused) == ("sub-01_FLAIR", "failed", False)
    crash = derivatives.crash_file(out, "sub-01_FLAIR").read_text(encoding="utf-8")
    assert crash.startswith(
        "image: sub-01/anat/sub-01_FLAIR.nii.gz\nreason: worker_died (the worker process ended"
    )
    assert "detail: the worker process was killed\n" in crash and crash.endswith("Traceback: in the worker\n")
    (row,) = tsv.read_table(derivatives.qc_table(out, failed.image))
    assert (row["status"], row["reason"], row["reason_detail"]) == (
        "failed",
        "worker_died",
        "the worker process was killed",
    )
    assert (
        derivatives.report_file(out, "sub-01_FLAIR").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    )

    skipped = result_of(tmp_path)
    skipped.stop(ImageFailed("acquisition_2d", "5 mm slices"))
    assert write_result(skipped, out).status == "skipped"
    assert not derivatives.crash_file(out, "sub-01_FLAIR").exists()
    (row,) = tsv.read_table(derivatives.qc_table(out, skipped.image))
    assert (row["status"], row["reason"], row["reason_detail"]) == (
        "skipped",
        "acquisition_2d",
        "5 mm slices",
    )


def test_a_reused_image_writes_nothing(tmp_path):
    reused = result_of(tmp_path)
    reused.reused = {**reused.row, "status": "ok", "seconds": "12.5"}
    outcome = write_result(reused, tmp_path / "out")
    assert (outcome.status, outcome.reused, outcome.seconds) == ("ok", True, 12.5)
    assert not (tmp_path / "out").exists()
