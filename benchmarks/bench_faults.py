"""Faults: how fast a run stops after SIGINT and SIGTERM, and what memory a huge header and a normal FLAIR take.

1. Time from the signal to the exit of `flairqc participant`, at --nprocs 1 and 2, for SIGINT to the process group
   (Ctrl-C in a terminal) and SIGTERM to the main process (kill, SLURM, Kubernetes), sent while the workers
   preprocess (target: at most 5 s), with a check that no worker and no scratch folder is left.
2. Peak RSS of a run given a 1024^3 .nii.gz (4.6 MB of zeros), under RLIMIT_AS 3 GiB: the image must be refused
   (too_large) before it is read. Reported beside a run given a tiny image (the run's own baseline: Python, ANTs,
   onnxruntime, pybids) and `memory.too_large` alone in a fresh Python (target: under 200 MB).
3. Peak memory of the run's processes (RSS of the largest, PSS of the whole tree summed) on the real 3D FLAIR, at
   --nprocs 1 and 2; with --baseline-tree, the same runs of another checkout (e.g. /work/main) side by side.

    python benchmarks/bench_faults.py [--repeats 3] [--baseline-tree /work/main]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from helpers import (  # noqa: E402
    IN_TREE,
    REALDATA,
    alive,
    build_models_dir,
    make_dataset,
    participant_command,
    process_tree,
    template_head,
    write_claimed_grid,
)

from flairqc_app.tsv import read_table  # noqa: E402

MEMORY_CAP = 3 << 30
TINY = np.zeros((4, 4, 4), np.float32)


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process in MB: PSS shares the pages a forked worker has in common with its parent, so the
    sum over a process tree is what the tree takes from the machine."""
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        )
        return int(fields["Rss"].split()[0]) / 1024, int(fields["Pss"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return 0.0, 0.0


def run(
    bids: Path, out: Path, models: Path, *extra: str, tree_path: Path = REPO, preexec=None
) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(tree_path))
    return subprocess.Popen(
        participant_command(bids, out, models, *extra, launcher=IN_TREE),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=preexec,
    )


def watch(proc: subprocess.Popen) -> tuple[float, float]:
    """Sample the process tree until it exits: (peak RSS of one process, peak PSS of the tree summed), MB."""
    single = summed = 0.0
    while proc.poll() is None:
        sizes = [memory_mb(p) for p in process_tree(proc.pid)]
        single = max(single, max(rss for rss, _ in sizes))
        summed = max(summed, sum(pss for _, pss in sizes))
        time.sleep(0.1)
    return single, summed


def stop_time(root: Path, head: Path, nprocs: int, how: str) -> float:
    """Seconds from the signal to the exit; checks the exit code and that nothing is left behind."""
    shutil.rmtree(root, ignore_errors=True)
    bids = make_dataset(root / "bids", {"sub-01/anat/sub-01_FLAIR.nii.gz": TINY})
    for index in (2, 3, 4):
        target = bids / f"sub-{index:02d}/anat/sub-{index:02d}_FLAIR.nii.gz"
        target.parent.mkdir(parents=True)
        shutil.copy(head, target)
    out, work = root / "out", root / "work"
    proc = run(bids, out, build_models_dir(root / "models"), "--nprocs", str(nprocs), "-w", str(work))
    first = out / "sub-01/anat/sub-01_desc-flairqc_FLAIR.tsv"
    while not (first.exists() and len(process_tree(proc.pid)) >= nprocs + 2):  # main, guardian, workers
        if proc.poll() is not None:
            raise RuntimeError(proc.communicate()[0])
        time.sleep(0.05)
    time.sleep(1.0)
    processes = process_tree(proc.pid)
    sent = time.monotonic()
    if how == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    proc.communicate()
    took = time.monotonic() - sent
    expected = 130 if how == "SIGINT" else 143
    time.sleep(0.5)
    left = [p for p in processes if alive(p)]
    if proc.returncode != expected or left or list(work.glob("flairqc-work-*")):
        raise RuntimeError(f"{how} at --nprocs {nprocs}: exit {proc.returncode}, processes left {left}")
    return took


def capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def huge_header(root: Path) -> dict:
    models = build_models_dir(root / "models")
    figures = {}
    for name, image in (("1024^3 (4.6 MB .nii.gz)", None), ("4^3 (baseline)", TINY)):
        bids = make_dataset(
            root / name.split()[0].replace("^", "_"),
            {} if image is None else {"sub-01/anat/sub-01_FLAIR.nii.gz": image},
        )
        if image is None:
            write_claimed_grid(bids / "sub-01/anat/sub-01_FLAIR.nii.gz", (1024, 1024, 1024), full=True)
        out = bids.parent / (bids.name + "-out")
        proc = run(bids, out, models, preexec=capped)
        single, summed = watch(proc)
        reason = read_table(out / "sub-01/anat/sub-01_desc-flairqc_FLAIR.tsv")[0]["reason"]
        figures[name] = {
            "exit": proc.returncode,
            "reason": reason,
            "peak_process_mb": round(single),
            "peak_tree_pss_mb": round(summed),
        }
    code = (
        "import resource, sys; from flairqc_app.memory import too_large; print(too_large(sys.argv[1], 8 << 30)); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    check = subprocess.run(
        [sys.executable, "-c", code, str(root / "1024_3/sub-01/anat/sub-01_FLAIR.nii.gz")],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        preexec_fn=capped,
        check=True,
    ).stdout.splitlines()
    figures["memory.too_large alone"] = {"verdict": check[0], "peak_process_mb": round(float(check[1]))}
    return figures


def normal_flair(root: Path, trees: dict[str, Path]) -> list[dict]:
    source = REALDATA / "flair3d_head_1mm.nii.gz"
    image = nib.load(str(source)) if source.exists() else template_head()
    bids = make_dataset(root / "bids-real", {f"sub-0{i}/anat/sub-0{i}_FLAIR.nii.gz": image for i in (1, 2)})
    models = build_models_dir(root / "models-real")
    rows = []
    for nprocs in (1, 2):
        for label, tree_path in trees.items():  # side by side, so that the machine's load touches both alike
            out = root / f"out-real-{label}-{nprocs}"
            shutil.rmtree(out, ignore_errors=True)
            started = time.monotonic()
            proc = run(bids, out, models, "--nprocs", str(nprocs), tree_path=tree_path)
            single, summed = watch(proc)
            rows.append(
                {
                    "tree": label,
                    "nprocs": nprocs,
                    "exit": proc.returncode,
                    "seconds": time.monotonic() - started,
                    "peak_process_mb": single,
                    "peak_tree_pss_mb": summed,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="signal runs per case (median reported)")
    parser.add_argument("--baseline-tree", type=Path, help="another checkout to measure beside this one")
    parser.add_argument("--skip", nargs="*", default=[], choices=["signals", "huge", "normal"])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")
    try:
        if "signals" not in args.skip:
            head = root / "head.nii.gz"
            nib.save(template_head(), str(head))
            print("\ntime to exit after the signal (s), sent while the workers preprocess; target <= 5 s")
            print("signal   nprocs  median    all")
            for how in ("SIGINT", "SIGTERM"):
                for nprocs in (1, 2):
                    times = [stop_time(root / "signal", head, nprocs, how) for _ in range(args.repeats)]
                    print(
                        f"{how:8} {nprocs:6}  {statistics.median(times):6.2f}    "
                        f"{' '.join(f'{t:.2f}' for t in times)}"
                    )
        if "huge" not in args.skip:
            print("\nhuge header under RLIMIT_AS 3 GiB; target: refused before it is read, under 200 MB")
            for name, figures in huge_header(root).items():
                print(f"{name:26} {json.dumps(figures)}")
        if "normal" not in args.skip:
            trees = {"this": REPO} | (
                {"baseline": args.baseline_tree.resolve()} if args.baseline_tree else {}
            )
            print(
                "\nreal 3D FLAIR, two images: peak RSS of the largest process, peak PSS of the process tree (MB)"
            )
            print("tree      nprocs  exit  seconds  peak_process_rss  peak_tree_pss")
            for r in normal_flair(root, trees):
                print(
                    f"{r['tree']:9} {r['nprocs']:6}  {r['exit']:4}  {r['seconds']:7.1f}  "
                    f"{r['peak_process_mb']:16.0f}  {r['peak_tree_pss_mb']:13.0f}"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\nload: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)"
    )


if __name__ == "__main__":
    main()
