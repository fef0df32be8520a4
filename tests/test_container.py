"""The Docker image (CPU variant) built from the Dockerfile and run the way HPC and platforms run it.

No Docker daemon or registry here: ../shared/tools/podman-local.sh installs podman (apt), builds a local Debian
base, then the image, and runs it with podman; without root or that tool the tests are skipped with the reason.
The runs are offline (--network none), as an arbitrary UID, with a read-only root, the dataset and models mounted
read-only, and only /tmp (tmpfs) and the output directory writable.
"""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from helpers import make_dataset
from test_boutiques import DESCRIPTOR, EXPECTED, launch, small_dataset, verdicts

from flairqc_app import __version__
from flairqc_app.config import DEFAULT_MODELS_DIR, TASKS
from flairqc_app.group import group_stem
from flairqc_app.manifest import read_manifest
from flairqc_app.synth import SynthConfig, generate_case
from flairqc_app.tsv import read_table

ROOT = Path(__file__).resolve().parents[1]
TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "podman-local.sh"
BASE = "localhost/debian-python:bookworm"
TAG = f"localhost/flairqc:{__version__}"
UID = "12345"
LOCKED_DOWN = [
    "--network",
    "none",
    "--user",
    f"{UID}:{UID}",
    "--read-only",
    "--read-only-tmpfs=false",
    "--tmpfs",
    "/tmp",
]


def podman(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(TOOL), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image():
    if not TOOL.is_file():
        pytest.skip(f"{TOOL} is missing")
    if os.geteuid() != 0:
        pytest.skip("podman-local.sh needs root")
    started = time.perf_counter()
    base = podman("base", timeout=1800)
    if base.returncode:
        pytest.skip(
            f"podman or the local base image could not be set up: {(base.stdout + base.stderr)[-1000:]}"
        )
    build = podman(
        "build",
        str(ROOT),
        TAG,
        "--build-arg",
        f"BASE_IMAGE={BASE}",
        "--build-arg",
        "EXTRAS=validator",
        "--build-arg",
        f"VERSION={__version__}",
        timeout=1800,
    )
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    yield TAG
    print(f"container tests: {time.perf_counter() - started:.0f} s (base image, build and runs)")


def sections(path: Path) -> dict[str, str]:
    """The %sections of a Singularity definition file."""
    return dict(re.findall(r"^%(\w+)\n(.*?)(?=^%|\Z)", path.read_text(), flags=re.M | re.S))


def test_image_versions_match_the_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG VERSION=(\S+)$", dockerfile, re.M).group(1) == __version__
    definition = (ROOT / "Singularity.def").read_text()
    assert re.search(r"^From: (\S+)$", definition, re.M).group(1) == f"flairqc:{__version__}"
    assert f"org.opencontainers.image.version {__version__}" in sections(ROOT / "Singularity.def")["labels"]


@pytest.mark.slow
@pytest.mark.container
def test_version_label_and_descriptor_inside_the_image(image):
    label = subprocess.run(
        [
            "podman",
            "image",
            "inspect",
            "--format",
            '{{ index .Labels "org.opencontainers.image.version" }}',
            image,
        ],
        capture_output=True,
        text=True,
    )
    assert label.stdout.strip() == __version__
    version = podman("run", *LOCKED_DOWN, image, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"flairqc {__version__}", version.stderr
    spec = podman("run", *LOCKED_DOWN, image, "--bids-exec-spec")
    assert spec.returncode == 0 and spec.stdout == DESCRIPTOR.read_text(encoding="utf-8"), spec.stderr


@pytest.mark.slow
@pytest.mark.container
def test_participant_then_group_locked_down(image, tmp_path):
    bids, models = small_dataset(tmp_path)
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)  # mkdir's mode is masked by the umask
    mounts = ["-v", f"{bids}:/bids:ro", "-v", f"{models}:/models:ro", "-v", f"{out}:/out"]
    participant = podman(
        "run", *LOCKED_DOWN, *mounts, image, "/bids", "/out", "participant", "--models-dir", "/models"
    )
    assert participant.returncode == 0, participant.stderr[-3000:]
    assert "bids-validator-deno" in participant.stderr  # the real validator ran, offline, as an arbitrary UID
    assert "Matplotlib created a temporary" not in participant.stderr
    group = podman("run", *LOCKED_DOWN, *mounts, image, "/bids", "/out", "group")
    assert group.returncode == 0, group.stderr[-3000:]
    assert verdicts(out) == EXPECTED
    assert (out / "group_FLAIR.tsv").stat().st_uid == int(UID)
    assert (
        json.loads((out / "dataset_description.json").read_text())["GeneratedBy"][0]["Version"] == __version__
    )


@pytest.mark.slow
@pytest.mark.container
@pytest.mark.skipif(
    not (DEFAULT_MODELS_DIR / "models.json").is_file(), reason="no default models are shipped"
)
def test_the_image_grades_with_its_own_default_models(image, tmp_path):
    """`docker run flairqc /bids /out participant`: nothing mounted but the data, the verdict from the shipped
    models."""
    # the clean FLAIR of tests/test_default_models.py
    img, _ = generate_case(90_001, config=SynthConfig(grid="1mm"))
    bids = make_dataset(tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": img})
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    run = podman(
        "run",
        *LOCKED_DOWN,
        "-v",
        f"{bids}:/bids:ro",
        "-v",
        f"{out}:/out",
        image,
        "/bids",
        "/out",
        "participant",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (row,) = read_table(out / "sub-01" / "anat" / "sub-01_desc-flairqc_FLAIR.tsv")
    assert (row["status"], row["straight_reject"], row["tier"]) == ("ok", 0, 1)
    _, specs = read_manifest(DEFAULT_MODELS_DIR)
    assert row["model_hashes"] == ";".join(f"{task}={specs[task].sha256[:16]}" for task in TASKS)


@pytest.mark.slow
@pytest.mark.container
def test_singularity_sections_run_in_the_image(image):
    """What `singularity run` and `singularity test` execute: %environment, then %runscript or %test, in sh."""
    parts = sections(ROOT / "Singularity.def")
    run = podman(
        "run",
        *LOCKED_DOWN,
        "--entrypoint",
        "sh",
        image,
        "-c",
        parts["environment"] + parts["runscript"],
        "flairqc",
        "--version",
    )
    assert run.returncode == 0 and run.stdout.strip() == f"flairqc {__version__}", run.stderr
    check = podman(
        "run", *LOCKED_DOWN, "--entrypoint", "sh", image, "-c", parts["environment"] + parts["test"]
    )
    assert check.returncode == 0, check.stderr
    configdir = podman(
        "run",
        *LOCKED_DOWN,
        "--entrypoint",
        "sh",
        image,
        "-c",
        parts["environment"] + "python3 -c 'import matplotlib; print(matplotlib.get_configdir())'",
    )
    assert configdir.stdout.strip() == f"/tmp/flairqc-{UID}/config/matplotlib", configdir.stderr


@pytest.mark.slow
@pytest.mark.container
def test_bosh_runs_the_descriptor_in_the_image(image, tmp_path, monkeypatch):
    """bosh's Docker mode (`docker run --entrypoint=/bin/sh` with a login shell script), `docker` being podman."""
    subprocess.run(
        [
            "podman",
            "tag",
            image,
            "docker.io/" + json.loads(DESCRIPTOR.read_text())["container-image"]["image"],
        ],
        check=True,
    )
    shim = tmp_path / "bin" / "docker"
    shim.parent.mkdir()
    shim.write_text(f"""#!/bin/sh
case "$1" in
  --version) exec podman --version ;;
  run) shift; exec bash {TOOL} run {" ".join(LOCKED_DOWN)} "$@" ;;
esac
exit 1
""")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}:{os.environ['PATH']}")
    tmp_path.chmod(0o777)  # bosh mounts the working directory, where the output directory is made, as itself
    small_dataset(tmp_path)  # bids/ and models/, named relative to the working directory below
    invocation = {
        "bids_dir": "bids",
        "output_dir_name": "out",
        "models_dir": "models",
        "participant_label": ["02"],
    }
    for level in ("participant", "group"):
        proc = launch(DESCRIPTOR, {**invocation, "analysis_level": level}, tmp_path, "--no-pull")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # sub-02 only: the gate skips it, no registration; the group level of a selection has its own table
    assert verdicts(tmp_path / "out", group_stem({"subject": ["02"]})) == EXPECTED[1:]
