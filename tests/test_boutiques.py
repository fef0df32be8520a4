"""Boutiques descriptors (BIDS-App and VIP): validation, generated command lines, and runs through bosh.

The launches run flairqc for real on a small dataset with the tests' own models (helpers.build_models_dir):
sub-01 is the FLAIR template (processed, motion_moderate fires: tier 2), sub-02 says it is 2D (skipped by the gate).
"""

import json
import shlex
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from helpers import build_models_dir, make_dataset, template_head

from flairqc_app import __version__, config
from flairqc_app.cli import build_parser
from flairqc_app.tsv import read_table

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTOR = ROOT / "boutiques.json"
VIP = ROOT / "boutiques-vip.json"
BOSH = str(Path(sys.executable).with_name("bosh"))
EXPECTED = [("sub-01_FLAIR", "ok", 2), ("sub-02_FLAIR", "skipped", None)]


def small_dataset(root: Path) -> tuple[Path, Path]:
    """The BIDS dataset and models directory of EXPECTED."""
    bids = make_dataset(
        root / "bids",
        {
            "sub-01/anat/sub-01_FLAIR.nii.gz": template_head(),
            "sub-02/anat/sub-02_FLAIR.nii.gz": template_head(),
        },
        {"sub-02/anat/sub-02_FLAIR.json": {"MRAcquisitionType": "2D"}},
    )
    return bids, build_models_dir(root / "models", biases={"motion_moderate": 2.0})


def verdicts(out: Path, stem: str = "group_FLAIR") -> list[tuple]:
    """(bids_name, status, tier) of the group table (`stem`: a selection's, group.group_stem), once each row is
    checked against its image's TSV and report."""
    rows = read_table(out / f"{stem}.tsv")
    for row in rows:
        stem = row["bids_name"].removesuffix("_FLAIR")
        assert read_table(out / row["participant_id"] / "anat" / f"{stem}_desc-flairqc_FLAIR.tsv") == [row]
        assert (out / f"{row['bids_name']}.html").is_file()
    return [(row["bids_name"], row["status"], row["tier"]) for row in rows]


def bosh(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([BOSH, *args], capture_output=True, text=True, cwd=cwd)


def simulate(descriptor: Path, invocation: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "invocation.json"
    path.write_text(json.dumps(invocation))
    return bosh("exec", "simulate", "-i", str(path), str(descriptor))


def launch(descriptor: Path, invocation: dict, cwd: Path, *options: str) -> subprocess.CompletedProcess:
    """`bosh exec launch`, by default without a container (the local install)."""
    path = cwd / "invocation.json"
    path.write_text(json.dumps(invocation))
    return bosh(
        "exec",
        "launch",
        "--skip-data-collection",
        *(options or ["--no-container"]),
        str(descriptor),
        str(path),
        cwd=cwd,
    )


def generated_command(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split("Generated Command:\n", 1)[1].strip()


def test_bids_app_descriptor_passes_bosh_validate_bids():
    proc = bosh("validate", "--bids", str(DESCRIPTOR))
    assert proc.returncode == 0 and "BIDS validation OK" in proc.stdout + proc.stderr, (
        proc.stdout + proc.stderr
    )


def test_vip_descriptor_passes_bosh_validate():
    proc = bosh("validate", str(VIP))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_package_ships_the_repository_descriptor():
    assert (config.DATA_DIR / "boutiques.json").read_bytes() == DESCRIPTOR.read_bytes()


def test_bids_exec_spec_prints_the_descriptor_without_positionals():
    proc = subprocess.run(["flairqc", "--bids-exec-spec"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == DESCRIPTOR.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", [DESCRIPTOR, VIP], ids=["bids-app", "vip"])
def test_error_codes_and_version_match_flairqc(path):
    descriptor = json.loads(path.read_text())
    exit_codes = {value for name, value in vars(config).items() if name.startswith("EXIT_")} - {
        config.EXIT_OK
    }
    assert sorted(e["code"] for e in descriptor["error-codes"]) == sorted(exit_codes)
    assert descriptor["tool-version"] == __version__
    assert descriptor["container-image"]["image"].endswith(f"/flairqc:{__version__}")


def test_participant_command_line_uses_flairqc_options(tmp_path):
    invocation = {
        "bids_dir": "/data/bids",
        "output_dir_name": "/data/out",
        "analysis_level": "participant",
        "participant_label": ["01", "sub-02"],
        "session_label": ["1"],
        "run_id": ["2"],
        "bids_filter_file": "/f.json",
        "models_dir": "/models",
        "device": "cpu",
        "thresholds": "/t.json",
        "gate_config": "/g.json",
        "preproc": "paper",
        "write_preproc": True,
        "force": True,
        "nprocs": 2,
        "omp_nthreads": 3,
        "mem": 8,
        "skip_bids_validation": True,
        "verbose": True,
    }
    command = generated_command(simulate(DESCRIPTOR, invocation, tmp_path))
    assert command == (
        "mkdir -p /data/out; flairqc /data/bids /data/out participant --participant-label 01 sub-02 "
        "--session-id 1 --run-id 2 --bids-filter-file /f.json --models-dir /models --device cpu "
        "--thresholds /t.json --gate-config /g.json --preproc paper --write-preproc --force "
        "--nprocs 2 --omp-nthreads 3 "
        "--mem 8 --skip-bids-validation -v"
    )
    args = build_parser().parse_args(shlex.split(command.split("; flairqc ", 1)[1]))
    assert (args.participant_label, args.session_id, args.run_id) == (["01", "sub-02"], ["1"], ["2"])
    assert (
        str(args.bids_filter_file),
        str(args.models_dir),
        str(args.thresholds),
        str(args.gate_config),
    ) == ("/f.json", "/models", "/t.json", "/g.json")
    assert (args.device, args.preproc, args.nprocs, args.omp_nthreads, args.mem) == (
        "cpu",
        "paper",
        2,
        3,
        8.0,
    )
    assert args.write_preproc and args.force and args.skip_bids_validation and args.verbose == 1


def test_group_command_line(tmp_path):
    invocation = {
        "bids_dir": "/data/bids",
        "output_dir_name": "/data/out",
        "analysis_level": "group",
        "participant_label": ["01"],
    }
    command = generated_command(simulate(DESCRIPTOR, invocation, tmp_path))
    assert command == "mkdir -p /data/out; flairqc /data/bids /data/out group --participant-label 01"


def test_output_directory_inputs_are_mutually_exclusive(tmp_path):
    invocation = {
        "bids_dir": "/data/bids",
        "output_dir_name": "/data/out",
        "analysis_level": "group",
        "participant_level_analysis_dir": "/data/out",
    }
    assert simulate(DESCRIPTOR, invocation, tmp_path).returncode != 0


def test_descriptor_test_cases_hold(tmp_path):
    """The descriptor's own `tests` (what `bosh test` runs in the container), run here without a container."""
    for case in json.loads(DESCRIPTOR.read_text())["tests"]:
        cwd = tmp_path / case["name"]
        cwd.mkdir()
        proc = launch(DESCRIPTOR, case["invocation"], cwd)
        assert proc.returncode == case["assertions"]["exit-code"], proc.stdout + proc.stderr


def test_vip_command_line_unzips_runs_and_archives(tmp_path):
    command = generated_command(
        simulate(VIP, {"bids_zip": "ds.zip", "participant_label": ["01"], "output_name": "qc"}, tmp_path)
    )
    assert "python3 -m zipfile -e ds.zip flairqc_bids" in command
    assert 'flairqc "$bids" qc participant group $models_opt --participant-label 01;' in command
    assert command.endswith("tar czf qc.tgz qc && exit $code")


@pytest.mark.slow
def test_launch_participant_then_group(tmp_path):
    bids, models = small_dataset(tmp_path)
    out = tmp_path / "out"
    participant = launch(
        DESCRIPTOR,
        {
            "bids_dir": str(bids),
            "output_dir_name": str(out),
            "analysis_level": "participant",
            "models_dir": str(models),
            "participant_label": ["01", "02"],
        },
        tmp_path,
    )
    assert participant.returncode == 0, participant.stdout + participant.stderr
    assert not (out / "group_FLAIR.tsv").exists()
    group = launch(
        DESCRIPTOR, {"bids_dir": str(bids), "output_dir_name": str(out), "analysis_level": "group"}, tmp_path
    )
    assert group.returncode == 0, group.stdout + group.stderr
    assert verdicts(out) == EXPECTED


@pytest.mark.slow
def test_vip_launch_returns_the_derivatives_archive(tmp_path):
    bids, models = small_dataset(tmp_path / "src")
    with zipfile.ZipFile(tmp_path / "ds.zip", "w") as archive:  # the dataset in a top folder, as users zip it
        for path in bids.rglob("*"):
            archive.write(path, Path("my_dataset") / path.relative_to(bids))
    with zipfile.ZipFile(tmp_path / "models.zip", "w") as archive:
        for path in models.iterdir():
            archive.write(path, path.name)
    proc = launch(VIP, {"bids_zip": "ds.zip", "models_zip": "models.zip", "output_name": "qc"}, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with tarfile.open(tmp_path / "qc.tgz") as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    assert verdicts(tmp_path / "unpacked" / "qc") == EXPECTED
