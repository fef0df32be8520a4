"""Fault injection: real signals to real processes, dead workers, huge headers under a memory cap, broken sidecars
and filter files, read-only and full disks (tmpfs mounts, root only), the umask, and the messages users see.

Each case asserts the exit code, the message, the rows, and that no process or scratch folder is left behind.
Images that must be slow (a run to interrupt) are the shipped template as a head, preprocessed for real; images
that must be fast are tiny constant volumes, which the gate skips at once.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import (
    alive,
    build_models_dir,
    make_dataset,
    participant_command,
    process_tree,
    template_head,
    write_claimed_grid,
)

from flairqc_app.cli import main
from flairqc_app.tsv import read_table

FAST = np.zeros((4, 4, 4), np.float32)  # the gate skips it at once (constant_intensity)
MEMORY_CAP = 3 << 30  # RLIMIT_AS for runs given huge headers: a regression fails, not the machine
STOP_SECONDS = 5.0


# ---------------------------------------------------------------- helpers


def is_guardian(pid: int) -> bool:
    try:
        return b"flairqc_app.scratch" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def wait_until(condition, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            output = proc.communicate()[0] if proc is not None and proc.poll() is not None else ""
            raise AssertionError(f"condition not met within {timeout} s\n{output}")
        time.sleep(0.05)


LAUNCHED: list[
    subprocess.Popen
] = []  # this test's runs, killed at its end should an assertion leave one running


@pytest.fixture(autouse=True)
def kill_leftover_runs():
    yield
    while LAUNCHED:
        proc = LAUNCHED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def launch(argv: list[str], preexec=None) -> subprocess.Popen:
    """The command in its own process group (as a shell runs a job), output and errors together."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=preexec,
    )
    LAUNCHED.append(proc)
    return proc


def flairqc(bids: Path, out: Path, *extra: str, preexec=None) -> subprocess.Popen:
    return launch(["flairqc", str(bids), str(out), *extra], preexec)


def participant(bids: Path, out: Path, models: Path, *extra: str, preexec=None) -> subprocess.Popen:
    return launch(participant_command(bids, out, models, *extra), preexec)


def row(out: Path, subject: str) -> dict:
    rows = read_table(out / f"sub-{subject}/anat/sub-{subject}_desc-flairqc_FLAIR.tsv")
    assert len(rows) == 1
    return rows[0]


def scratch_folders(root: Path) -> list[Path]:
    return sorted(root.glob("flairqc-work-*")) if root.exists() else []


def assert_clean_exit(output: str) -> None:
    assert "Traceback" not in output and "Logging error" not in output, output


@pytest.fixture(scope="module")
def head_file(tmp_path_factory) -> Path:
    """One slow image (about 10 s of N4 and registration), written once and copied, never modified."""
    path = tmp_path_factory.mktemp("head") / "head.nii.gz"
    nib.save(template_head(), str(path))
    return path


def signal_dataset(root: Path, head_file: Path, heads: int, fast_last: bool) -> tuple[Path, Path]:
    """sub-01 is skipped at once (its row is written within a second of the start), sub-02.. take seconds each,
    and with `fast_last` one more fast image comes last."""
    bids = make_dataset(
        root / "bids",
        {"sub-01/anat/sub-01_FLAIR.nii.gz": FAST}
        | ({f"sub-{heads + 2:02d}/anat/sub-{heads + 2:02d}_FLAIR.nii.gz": FAST} if fast_last else {}),
    )
    for index in range(2, 2 + heads):
        target = bids / f"sub-{index:02d}/anat/sub-{index:02d}_FLAIR.nii.gz"
        target.parent.mkdir(parents=True)
        shutil.copy(head_file, target)
    return bids, build_models_dir(root / "models")


def busy_run(
    tmp_path: Path, head_file: Path, nprocs: int, heads: int, fast_last: bool = False
) -> tuple[subprocess.Popen, Path, list[int]]:
    """A run whose first row is written and whose `nprocs` workers are preprocessing heads; its workers."""
    bids, models = signal_dataset(tmp_path, head_file, heads, fast_last)
    out = tmp_path / "out"
    proc = participant(bids, out, models, "--nprocs", str(nprocs), "-w", str(tmp_path / "work"))
    first = out / "sub-01/anat/sub-01_desc-flairqc_FLAIR.tsv"
    wait_until(lambda: first.exists() and len(workers(proc.pid)) == nprocs, 120, proc)
    time.sleep(1.0)  # well inside N4 or the registration of the heads
    descendants = process_tree(proc.pid)[1:]
    assert len(workers(proc.pid)) == nprocs and any(is_guardian(p) for p in descendants)
    return proc, out, descendants


def workers(pid: int) -> list[int]:
    return [p for p in process_tree(pid)[1:] if not is_guardian(p)]


# ---------------------------------------------------------------- signals and workers


@pytest.mark.slow
@pytest.mark.parametrize(
    "how, code", [("SIGINT to the process group", 130), ("SIGTERM to the main process", 143)]
)
@pytest.mark.parametrize("nprocs", [1, 2])
def test_a_signal_stops_the_run_within_seconds(tmp_path, head_file, nprocs, how, code):
    proc, out, descendants = busy_run(tmp_path, head_file, nprocs, heads=3)
    sent = time.monotonic()
    if how.startswith("SIGINT"):
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        os.kill(proc.pid, signal.SIGTERM)  # a plain kill, a SLURM or Kubernetes stop
    output = proc.communicate(timeout=60)[0]
    took = time.monotonic() - sent
    assert proc.returncode == code and took <= STOP_SECONDS, (took, output)
    assert f"stopped by {how.split()[0]}" in output
    assert_clean_exit(output)
    assert row(out, "01")["status"] == "skipped"  # the finished row is kept
    # queued and running images: no row
    assert not (out / "sub-02/anat/sub-02_desc-flairqc_FLAIR.tsv").exists()
    assert not (out / "sub-04/anat/sub-04_desc-flairqc_FLAIR.tsv").exists()
    wait_until(lambda: not any(alive(p) for p in descendants), 5)
    assert scratch_folders(tmp_path / "work") == [] and (tmp_path / "work").is_dir()  # -w itself is kept


@pytest.mark.slow
def test_a_worker_killed_with_sigkill_fails_only_its_image(tmp_path, head_file):
    proc, out, descendants = busy_run(tmp_path, head_file, nprocs=2, heads=2, fast_last=True)
    victim = workers(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)  # what the out-of-memory killer sends
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 1, output
    assert_clean_exit(output)
    rows = {subject: row(out, subject) for subject in ("01", "02", "03", "04")}
    assert rows.pop("01")["status"] == "skipped"
    assert rows.pop("04")["status"] == "skipped"  # queued behind the dead worker: done by its replacement
    died = [r for r in rows.values() if r["status"] == "failed"]
    assert len(died) == 1 and died[0]["reason"] == "worker_died" and "SIGKILL" in died[0]["reason_detail"]
    assert [r["status"] for r in rows.values() if r is not died[0]] == ["ok"]  # the other image went on
    crash = out / "logs" / f"crash-{died[0]['bids_name']}.txt"
    assert "reason: worker_died" in crash.read_text()
    assert f"{died[0]['bids_name']}: failed: worker_died" in output
    wait_until(lambda: not any(alive(p) for p in descendants), 5)
    assert scratch_folders(tmp_path / "work") == []


@pytest.mark.slow
def test_workers_and_scratch_die_with_a_main_process_killed_with_sigkill(tmp_path, head_file):
    proc, out, descendants = busy_run(tmp_path, head_file, nprocs=2, heads=2)
    # no handler runs: the kernel ends the workers, the guardian the scratch
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    wait_until(lambda: not any(alive(p) for p in descendants), STOP_SECONDS)
    assert scratch_folders(tmp_path / "work") == []
    assert row(out, "01")["status"] == "skipped"


# ---------------------------------------------------------------- memory


def capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def test_huge_grids_fail_alone_before_a_voxel_is_read(tmp_path):
    bids = make_dataset(tmp_path / "bids", {"sub-03/anat/sub-03_FLAIR.nii.gz": FAST})
    write_claimed_grid(bids / "sub-01/anat/sub-01_FLAIR.nii.gz", (1024, 1024, 1024), full=True)
    write_claimed_grid(bids / "sub-02/anat/sub-02_FLAIR.nii.gz", (1500, 1500, 1500))  # 1 KB claiming 1500^3
    out = tmp_path / "out"
    proc = participant(bids, out, build_models_dir(tmp_path / "models"), "--nprocs", "2", preexec=capped)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, output
    assert_clean_exit(output)
    for subject, grid in (("01", "1024x1024x1024"), ("02", "1500x1500x1500")):
        failed = row(out, subject)
        assert (failed["status"], failed["reason"]) == ("failed", "too_large")
        assert failed["reason_detail"].startswith(f"{grid} voxels of uint8 would take about")
        assert f"sub-{subject}_FLAIR: failed: too_large: {grid}" in output
    assert row(out, "03")["status"] == "skipped"  # the run went on


# Runs a command and prints the peak RSS of its process tree. A fresh, small process, because a child forked from
# pytest counts the pages it shares with pytest (hundreds of MB once ANTs is loaded) until it execs.
PEAK_RSS_OF = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)"
)


def test_a_run_of_refused_images_stays_small(tmp_path):
    """A run whose images all fail before preprocessing never loads ANTs (about 250 MB on its own): its process
    tree peaks under 200 MB (about 140 MB measured; 310 MB when ANTs was imported up front)."""
    bids = make_dataset(tmp_path / "bids", {})
    write_claimed_grid(bids / "sub-01/anat/sub-01_FLAIR.nii.gz", (1024, 1024, 1024), full=True)
    out, models = tmp_path / "out", build_models_dir(tmp_path / "models")
    command = participant_command(bids, out, models, "--nprocs", "1")
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_OF, *command],
        capture_output=True,
        text=True,
        preexec_fn=capped,
        timeout=300,
    )
    peak_kb, code = map(int, proc.stdout.split()[-2:])
    assert code == 1, proc.stderr
    assert_clean_exit(proc.stderr)
    assert row(out, "01")["reason"] == "too_large"
    assert peak_kb < 200 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"


def test_mem_sets_the_cap(tmp_path):
    """256^3 uint8 needs about 0.6 GiB: refused with --mem 0.5, read (and found truncated) without it."""
    bids = make_dataset(tmp_path / "bids", {})
    write_claimed_grid(bids / "sub-01/anat/sub-01_FLAIR.nii.gz", (256, 256, 256))
    models = build_models_dir(tmp_path / "models")
    for extra, reason in ((("--mem", "0.5"), "too_large"), ((), "unreadable")):
        out = tmp_path / f"out-{reason}"
        output = participant(bids, out, models, *extra, preexec=capped).communicate(timeout=300)[0]
        assert row(out, "01")["reason"] == reason, output


# ---------------------------------------------------------------- bad input

SIDECARS = {
    "01": b"{not json",
    "02": b'["a list", "not an object"]',
    "03": json.dumps({"MRAcquisitionType": "3D"}).encode("utf-16"),  # with its byte-order mark
}


def test_broken_sidecars_fail_only_their_images(tmp_path):
    bids = make_dataset(
        tmp_path / "bids",
        {f"sub-{s}/anat/sub-{s}_FLAIR.nii.gz": FAST for s in ("01", "02", "03", "04", "05")},
    )
    for subject, payload in SIDECARS.items():
        (bids / f"sub-{subject}/anat/sub-{subject}_FLAIR.json").write_bytes(payload)
    (bids / "sub-04/sub-04_FLAIR.json").write_text("{")  # inherited by sub-04/anat/sub-04_FLAIR.nii.gz
    (bids / "sub-05/anat/sub-05_T1w.json").write_text("{")  # applies to no FLAIR
    out = tmp_path / "out"
    proc = participant(bids, out, build_models_dir(tmp_path / "models"))
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, output
    assert_clean_exit(output)
    expected = {
        "01": ("sub-01/anat/sub-01_FLAIR.json", "is not valid JSON"),
        "02": ("sub-02/anat/sub-02_FLAIR.json", "is a JSON list, not an object"),
        "03": ("sub-03/anat/sub-03_FLAIR.json", "is UTF-16 text"),
        "04": ("sub-04/sub-04_FLAIR.json", "is not valid JSON"),
    }
    for subject, (sidecar, problem) in expected.items():
        failed = row(out, subject)
        assert (failed["status"], failed["reason"]) == ("failed", "sidecar_invalid")
        assert failed["reason_detail"].startswith(f"sidecar {sidecar} {problem}")
        assert (
            sum(
                line.endswith(
                    f"sub-{subject}_FLAIR: failed: sidecar_invalid: sidecar {sidecar} "
                    f"{failed['reason_detail'].split(sidecar + ' ', 1)[1]}"
                )
                for line in output.splitlines()
            )
            == 1
        )
    assert row(out, "05")["status"] == "skipped"


@pytest.mark.parametrize(
    "content, problem",
    [
        (b'{"flair": {"acq": "sag"}}', "unknown BIDS entity 'acq'"),
        (b'{"flair": {"run": {"from": 1}}}', 'run: {"from": 1} is not a label'),
        (b'{"flair": {"run": []}}', "run: [] is not a label"),
        ('{"flair": {"acquisition": "sag"}}'.encode("utf-16"), "cannot read the BIDS filter file"),
        (b'{"flair": ', "cannot read the BIDS filter file"),
    ],
)
def test_bad_filter_files_are_one_line_and_exit_64(tmp_path, capsys, content, problem):
    bids = make_dataset(tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": FAST})
    filters = tmp_path / "filters.json"
    filters.write_bytes(content)
    for level in ("participant", "group"):
        assert (
            main(
                [
                    str(bids),
                    str(tmp_path / "out"),
                    level,
                    "--bids-filter-file",
                    str(filters),
                    "--skip-bids-validation",
                ]
            )
            == 64
        )
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(errors) == 1 and str(filters) in errors[0] and problem in errors[0], errors


# ---------------------------------------------------------------- disks


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (root only); yields a function mount(size) -> its folder."""
    mounted = []

    def mount(size: str) -> Path:
        point = tmp_path / f"tmpfs-{len(mounted)}"
        point.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'}): needs root")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(folder: Path, leave_bytes: int = 0) -> None:
    """Fill the file system of `folder`, then free `leave_bytes` again."""
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(bytes(1 << 20))
                handle.flush()
        except OSError:
            pass
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave_bytes))


def test_read_only_output_dir_exits_73(tmp_path, tmpfs):
    bids = make_dataset(tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": FAST})
    point = tmpfs("1m")
    (point / "out" / "logs").mkdir(parents=True)
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
    proc = participant(bids, point / "out", build_models_dir(tmp_path / "models"))
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 73, output
    assert_clean_exit(output)
    assert output.strip() == (
        f"flairqc: error: cannot write in the output directory {point / 'out'}: Read-only file system"
    )


def test_full_disk_at_start_is_one_line_and_exit_74(tmp_path, tmpfs):
    bids = make_dataset(tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": FAST})
    point = tmpfs("2m")
    fill(point)
    proc = participant(
        bids, point / "out", build_models_dir(tmp_path / "models"), "-w", str(tmp_path / "work")
    )
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 74, output
    assert_clean_exit(output)
    assert "flairqc: warning: cannot write the log file" in output  # said once, not a traceback per line
    assert output.count("cannot write the log file") == 1
    assert f"No space left on device: '{point / 'out' / 'dataset_description.json'}'" in output
    assert scratch_folders(tmp_path / "work") == []


def test_full_disk_names_the_image_and_the_file(tmp_path, tmpfs):
    bids = make_dataset(tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": FAST})
    point = tmpfs("8m")
    fill(point, leave_bytes=24 << 10)  # room for the small files, not for the report (over 100 KB)
    proc = participant(bids, point / "out", build_models_dir(tmp_path / "models"))
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 74, output
    assert_clean_exit(output)
    assert (
        f"I/O error: [Errno 28] cannot write the outputs of sub-01_FLAIR: No space left on device: "
        f"'{point / 'out' / 'sub-01_FLAIR.html'}'"
    ) in output
    assert not list((point / "out").glob(".*.tmp"))


def test_full_disk_during_group_keeps_the_previous_table_and_report(tmp_path, tmpfs):
    bids = make_dataset(tmp_path / "bids", {f"sub-{s}/anat/sub-{s}_FLAIR.nii.gz": FAST for s in ("01", "02")})
    models = build_models_dir(tmp_path / "models")
    out = tmpfs("40m") / "out"
    first = participant(bids, out, models, "--participant-label", "01")
    assert first.wait(120) == 0
    assert flairqc(bids, out, "group").wait(120) == 0
    old = {
        name: (out / name).read_bytes()
        for name in ("group_FLAIR.tsv", "group_FLAIR.json", "group_FLAIR.html")
    }
    assert participant(bids, out, models, "--participant-label", "02").wait(120) == 0
    fill(out, leave_bytes=256 << 10)  # the table and its dictionary fit, the report does not
    proc = flairqc(bids, out, "group")
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 74, output
    assert_clean_exit(output)
    assert f"No space left on device: '{out / 'group_FLAIR.html'}'" in output
    assert {name: (out / name).read_bytes() for name in old} == old  # the old pair, not a new table beside it
    assert not list(out.glob(".*.tmp"))
    assert [r["bids_name"] for r in read_table(out / "group_FLAIR.tsv")] == ["sub-01_FLAIR"]


def test_outputs_follow_the_umask(tmp_path):
    bids = make_dataset(tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": FAST})
    out = tmp_path / "out"
    proc = flairqc(
        bids,
        out,
        "participant",
        "group",
        "--models-dir",
        str(build_models_dir(tmp_path / "models")),
        "--skip-bids-validation",
        preexec=lambda: os.umask(0o077),
    )
    assert proc.wait(120) == 0
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) >= 8 and out / "sub-01_FLAIR.html" in written
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o600"}


# ---------------------------------------------------------------- messages


def test_device_cuda_without_cuda_is_a_usage_error(tmp_path, capsys):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has a CUDA provider here")
    bids = make_dataset(tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": FAST})
    assert (
        main([str(bids), str(tmp_path / "out"), "participant", "--device", "cuda", "--skip-bids-validation"])
        == 64
    )
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("flairqc: error: --device cuda: onnxruntime has no CUDA")


def test_validator_messages_have_their_text(tmp_path, capsys):
    if not shutil.which("bids-validator-deno"):
        pytest.skip("bids-validator-deno not installed")
    bids = make_dataset(tmp_path / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": FAST})
    (bids / "dataset_description.json").unlink()
    assert main([str(bids), str(tmp_path / "out"), "participant"]) == 16
    assert re.search(
        r"MISSING_DATASET_DESCRIPTION: .*A dataset_description\.json file is required",
        capsys.readouterr().err,
    )


def test_synth_without_its_extra_says_what_to_install(tmp_path):
    blocker = tmp_path / "no-nilearn" / "nilearn"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'nilearn'\", name='nilearn')\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        ["flairqc-synth", str(tmp_path / "synth"), "--n-subjects", "1", "--seed", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "flairqc-synth needs the [synth] extra (No module named 'nilearn'): pip install "
        "'flairqc[synth]' (in a source tree: pip install '.[synth]')"
    )
    assert not (tmp_path / "synth").exists()
