"""Command line and exit codes (BEP027); none of these runs preprocessing."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import build_models_dir, make_dataset

from flairqc_app import __version__
from flairqc_app.cli import main

SMALL = np.zeros((4, 4, 4), np.float32)


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(
        tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": SMALL, "sub-02/anat/sub-02_T1w.nii.gz": SMALL}
    )


def test_version_through_the_console_script():
    out = subprocess.run(["flairqc", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"flairqc {__version__}"


def test_bad_usage_exits_64_not_2(dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(dataset), str(tmp_path / "out"), "participant", "--nprocs", "0"])
    assert info.value.code == 64
    with pytest.raises(SystemExit) as info:
        main([str(dataset)])
    assert info.value.code == 64


def test_unknown_level_exits_17(dataset, tmp_path):
    assert main([str(dataset), str(tmp_path / "out"), "subject"]) == 17


def test_missing_bids_dir_exits_66(tmp_path):
    assert main([str(tmp_path / "nowhere"), str(tmp_path / "out"), "participant"]) == 66


def test_output_inside_the_dataset_is_refused_except_derivatives(dataset, capsys):
    assert main([str(dataset), str(dataset / "qc"), "participant", "--skip-bids-validation"]) == 64
    assert "derivatives/flairqc" in capsys.readouterr().err
    # derivatives/ is allowed (then no FLAIR -> it is the label check that answers)
    assert (
        main(
            [
                str(dataset),
                str(dataset / "derivatives" / "flairqc"),
                "participant",
                "--participant-label",
                "sub-99",
                "--skip-bids-validation",
            ]
        )
        == 64
    )


def test_unknown_participant_label_exits_64(dataset, tmp_path, capsys):
    assert (
        main(
            [
                str(dataset),
                str(tmp_path / "out"),
                "participant",
                "--participant-label",
                "07",
                "--skip-bids-validation",
            ]
        )
        == 64
    )
    assert "07" in capsys.readouterr().err


def test_filters_selecting_nothing_exit_18(dataset, tmp_path):
    assert (
        main(
            [
                str(dataset),
                str(tmp_path / "out"),
                "participant",
                "--participant-label",
                "sub-02",
                "--skip-bids-validation",
            ]
        )
        == 18
    )
    flt = tmp_path / "f.json"
    flt.write_text(json.dumps({"flair": {"acquisition": "nothing"}}))
    assert (
        main(
            [
                str(dataset),
                str(tmp_path / "out"),
                "participant",
                "--bids-filter-file",
                str(flt),
                "--skip-bids-validation",
            ]
        )
        == 18
    )


def test_no_flair_at_all_exits_66(tmp_path):
    bids = make_dataset(tmp_path / "b", {"sub-01/anat/sub-01_T1w.nii.gz": SMALL})
    assert main([str(bids), str(tmp_path / "out"), "participant", "--skip-bids-validation"]) == 66


def test_invalid_dataset_exits_16_with_the_errors(dataset, tmp_path, capsys):
    (dataset / "dataset_description.json").unlink()
    assert main([str(dataset), str(tmp_path / "out"), "participant"]) == 16
    err = capsys.readouterr().err
    assert "failed BIDS validation" in err and "dataset_description" in err.lower()


def test_builtin_validation_when_deno_is_absent(dataset, tmp_path, monkeypatch):
    import flairqc_app.validate as validate

    monkeypatch.setattr(validate.shutil, "which", lambda name: None)
    (dataset / "dataset_description.json").write_text("{}")
    assert main([str(dataset), str(tmp_path / "out"), "participant"]) == 16
    report = validate.validate_dataset(dataset)
    assert (
        report.validator.startswith("built-in") and "required field Name missing" in report.errors[0].text()
    )


def test_missing_models_exit_1_with_a_clear_message(dataset, tmp_path, capsys):
    code = main(
        [
            str(dataset),
            str(tmp_path / "out"),
            "participant",
            "--skip-bids-validation",
            "--models-dir",
            str(tmp_path / "no-models"),
        ]
    )
    assert code == 1
    assert "no models manifest" in capsys.readouterr().err


def test_bad_thresholds_file_is_a_usage_error(dataset, tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"tier": 0.2}))
    code = main(
        [
            str(dataset),
            str(tmp_path / "out"),
            "participant",
            "--skip-bids-validation",
            "--models-dir",
            str(build_models_dir(tmp_path / "m")),
            "--thresholds",
            str(bad),
        ]
    )
    assert code == 64


def test_group_before_participant_exits_66(dataset, tmp_path):
    assert main([str(dataset), str(tmp_path / "out"), "group"]) == 66


def test_cannot_create_output_exits_73(dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([str(dataset), str(blocker / "out"), "participant"]) == 73


def test_help_lists_the_bids_app_options():
    out = subprocess.run(
        [sys.executable, "-m", "flairqc_app", "--help"], capture_output=True, text=True
    ).stdout
    for option in (
        "--participant-label",
        "--session-id",
        "--run-id",
        "--bids-filter-file",
        "--nprocs",
        "--omp-nthreads",
        "--work-dir",
        "--models-dir",
        "--device",
        "--skip-bids-validation",
        "-v",
    ):
        assert option in out


@pytest.mark.parametrize("manifest", [None, "{"])
def test_missing_or_damaged_default_models_stop_with_a_hint(dataset, tmp_path, monkeypatch, capsys, manifest):
    from flairqc_app import config

    default = tmp_path / "package-models"
    default.mkdir()
    if manifest is not None:
        (default / "models.json").write_text(manifest)
    monkeypatch.setattr(config, "DEFAULT_MODELS_DIR", default)
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation"])
    assert code == 1
    err = capsys.readouterr().err
    assert "default models of this installation are missing or damaged" in err and "pass --models-dir" in err


def test_each_run_writes_its_settings_beside_its_log(dataset, tmp_path, monkeypatch):
    """MRIQC saves its config per run: the settings file reads back as what the command line asked for, with
    its paths absolute (a relative -w here), so that it can be repeated from anywhere."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    args = [
        str(dataset),
        str(out),
        "group",
        "group",
        "--session-id",
        "ses-a",
        "b",
        "--nprocs",
        "3",
        "--mem",
        "5.5",
        "--preproc",
        "paper",
        "--iqm-json",
        "-v",
        "-w",
        "work",
    ]
    assert main(args) == 18  # no participant-level results match the selection
    (settings_file,) = (out / "logs").glob("flairqc-group-*.settings.json")
    (log_file,) = (out / "logs").glob("flairqc-group-*.log")
    assert settings_file.name == log_file.name.replace(".log", ".settings.json")
    written = json.loads(settings_file.read_text(encoding="utf-8"))
    assert written["flairqc_version"] == __version__
    settings = written["settings"]
    assert settings["bids_dir"] == str(dataset.resolve()) and settings["output_dir"] == str(out.resolve())
    assert settings["analysis_level"] == ["group"] and settings["session_id"] == ["ses-a", "b"]
    assert (settings["nprocs"], settings["mem"]) == (3, 5.5)
    assert (settings["preproc"], settings["iqm_json"]) == ("paper", True)
    assert (settings["verbose"], settings["quiet"], settings["force"]) == (1, False, False)
    assert settings["work_dir"] == str(tmp_path / "work") and settings["participant_label"] is None
    assert settings["models_dir"].endswith("flairqc_app/data/models") and settings["thresholds"] is None
