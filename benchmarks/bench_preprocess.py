"""Preprocessing benchmark: time per stage and peak memory per recipe, and registration accuracy.

Accuracy is measured where the truth is known: an image moved by a known affine must come back to the
template (error in mm over the template brain). Three cases:
  * the FLAIR template moved, registered to the FLAIR template (same contrast);
  * the FLAIR template moved, registered cross-modally (MI) to the T1w template (the design asks
    which template registers FLAIR better; both templates share one space, so the truth is the same);
  * a synthetic FLAIR head (skull, neck, deformed anatomy; flairqc_app.synth) registered twice, as is and
    moved by a known affine: the two recovered transforms must differ by exactly that affine.
On the real 3D FLAIR: time, peak memory, NCC with the template and the share of the template brain
covered by the registered head, for the FLAIR and T1w templates.

Usage: python benchmarks/bench_preprocess.py [--recipes fast,paper] [--cases 3] [--kinds real,template,synth]
The moved template is brain-only with a zero background, where the paper recipe's unmasked N4 runs for about
10 minutes per image (config.PreprocSettings): leave `template` out of `--kinds` to measure `paper` in minutes.
Each measurement runs in a fresh subprocess so that peak memory (ru_maxrss) is per image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # alignment_helpers
REAL_FLAIR = Path(__file__).resolve().parents[2] / "shared" / "realdata-dev" / "flair3d_head_1mm.nii.gz"
POSES = [
    ((6, -4, 10), (8.0, -6.0, 5.0), 1.04),
    ((-10, 5, -6), (-12.0, 10.0, -8.0), 0.95),
    ((3, 12, -3), (5.0, 15.0, 10.0), 1.08),
    ((-5, -8, 15), (-6.0, -4.0, 12.0), 1.0),
]


def measure(job: dict) -> dict:
    """Run in a subprocess: one preprocessing, its timings, errors and peak memory."""
    import nibabel as nib
    from alignment_helpers import alignment_error, brain_points, map_points, move_image, world_map

    from flairqc_app import config
    from flairqc_app.grid import template_brain_mask
    from flairqc_app.preprocess import preprocess_image

    recipe = config.PREPROC_RECIPES[job["recipe"]]
    template = config.T1W_TEMPLATE if job["template"] == "T1w" else config.FLAIR_TEMPLATE
    out: dict = {}
    work = Path(tempfile.mkdtemp(prefix="bench-prep-"))
    if job["kind"] == "real":
        img = nib.load(job["path"])
    elif job["kind"] == "template":
        a = world_map(*POSES[job["pose"]])
        img = move_image(nib.load(str(config.FLAIR_TEMPLATE)), a)
    else:  # synthetic head, as is (pose None) or moved
        from flairqc_app.synth import SynthConfig, generate_case

        img, _ = generate_case(job["seed"], "FLAIR", config=SynthConfig(grid="1mm"))
        if job["pose"] is not None:
            img = move_image(img, world_map(*POSES[job["pose"]]))
    tic = time.perf_counter()
    result = preprocess_image(img, template, recipe, work)
    out["seconds"] = time.perf_counter() - tic
    out["timings"] = result.timings
    out["ncc"] = result.registration_ncc
    out["covered"] = float((result.volume[template_brain_mask()] > 0.1).mean())
    if job["kind"] == "template":
        out["error_mm"] = float(alignment_error(result.transform, world_map(*POSES[job["pose"]])).mean())
    if job["kind"] == "synth":
        out["mapped"] = map_points(result.transform, brain_points(200)).tolist()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_job(job: dict) -> dict:
    code = (
        f"import json,sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_preprocess as b; "
        f"print(json.dumps(b.measure(json.loads(sys.argv[1]))))"
    )
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(job)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def consistency_error(as_is: dict, moved: dict, pose: int) -> float:
    """Registering a head and the same head moved by A: the moved transform must equal A^-1 after the first."""
    import numpy as np
    from alignment_helpers import world_map

    a_inv = np.linalg.inv(world_map(*POSES[pose]))
    first = np.array(as_is["mapped"])
    expected = (a_inv @ np.c_[first, np.ones(len(first))].T).T[:, :3]
    return float(np.linalg.norm(np.array(moved["mapped"]) - expected, axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipes", default="fast,paper")
    parser.add_argument("--cases", type=int, default=3, help="known poses per measurement (max 4)")
    parser.add_argument(
        "--kinds", default="real,template,synth", help="which of the three measurements to run"
    )
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    recipes = args.recipes.split(",")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}"
    )
    for recipe in recipes:
        print(f"\n== recipe {recipe}")
        if "real" in kinds and REAL_FLAIR.exists():
            for template in ("FLAIR", "T1w"):
                r = run_job({"kind": "real", "path": str(REAL_FLAIR), "recipe": recipe, "template": template})
                print(
                    f"real 3D FLAIR -> {template} template: {r['seconds']:.1f} s {r['timings']}, "
                    f"peak {r['peak_rss_mb']:.0f} MB, NCC {r['ncc']:.3f}, brain covered {r['covered']:.3f}"
                )
        for template in ("FLAIR", "T1w") if "template" in kinds else ():
            errors = [
                run_job({"kind": "template", "pose": p, "recipe": recipe, "template": template})["error_mm"]
                for p in range(args.cases)
            ]
            print(
                f"moved FLAIR template -> {template} template: mean error per pose "
                f"{[round(e, 2) for e in errors]} mm, median {statistics.median(errors):.2f} mm"
            )
        synth, seconds, nccs, retried = [], [], [], 0
        for p in range(args.cases if "synth" in kinds else 0):
            as_is = run_job(
                {"kind": "synth", "seed": 100 + p, "pose": None, "recipe": recipe, "template": "FLAIR"}
            )
            moved = run_job(
                {"kind": "synth", "seed": 100 + p, "pose": p, "recipe": recipe, "template": "FLAIR"}
            )
            synth.append(consistency_error(as_is, moved, p))
            seconds += [as_is["seconds"], moved["seconds"]]
            nccs.append((round(as_is["ncc"], 3), round(moved["ncc"], 3)))
            retried += sum("registration_retry" in r["timings"] for r in (as_is, moved))
        if synth:
            print(
                f"synthetic FLAIR heads, as is vs moved by a known affine (FLAIR template): consistency error "
                f"{[round(e, 2) for e in synth]} mm, median {statistics.median(synth):.2f} mm; preprocessing "
                f"median {statistics.median(seconds):.1f} s per head; NCC (as is, moved) {nccs}; "
                f"registrations retried {retried} of {2 * len(synth)}"
            )


if __name__ == "__main__":
    main()
