"""Benchmark: do the synthetic engine's motion grades say what shows? (docs/synthetic-data.md, Motion)

Renders one FLAIR per case seed and grade, with motion graded by the size of the moves (`displacement`, the
default) and by what shows (`visible`), and reports what shows of each (`gen_motion_visible`: mean |image - head
still in the pose held at the k-space centre| over that head, divided by its mean): range, quartiles, how many
grade-2 images show less than grade 1's median, and the CI guard's images (tests/test_default_models.py, seed
90001). Also the render time per image of each grading (worker processes in parallel, so per image of wall time).

    python benchmarks/bench_motion_grades.py [--n 20] [--grid 1mm] [--jobs 2]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from flairqc_app.synth import SynthConfig, render_case
from flairqc_app.synth.params import MOTION_GRADES, MOTION_GRADINGS

GUARD_SEED = 90_001


def shown(job: tuple[int, int, str, str]) -> float:
    seed, grade, grading, grid = job
    config = SynthConfig(grid=grid, motion_grading=grading)
    return float(render_case(seed, motion=grade, config=config).labels["gen_motion_visible"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20, help="case seeds per grade (1 .. n)")
    parser.add_argument("--grid", default="1mm")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    seeds = [GUARD_SEED] + list(range(1, args.n + 1))
    print(
        f"what shows of the engine's motion, {args.n} case seeds per grade, {args.grid} grid; "
        f"visible bands: "
        + ", ".join(f"grade {g} {m.visible.lo}-{m.visible.hi}" for g, m in MOTION_GRADES.items())
    )
    print(
        "\n| grading | grade | min | quartiles | median | max | CI guard | grade 2 under grade 1's median | "
        "s per image |\n|---|---|---|---|---|---|---|---|---|"
    )
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for grading in MOTION_GRADINGS:
            tic = time.perf_counter()
            jobs = [(seed, grade, grading, args.grid) for grade in (1, 2) for seed in seeds]
            values = dict(zip([(grade, seed) for seed, grade, _, _ in jobs], pool.map(shown, jobs)))
            seconds = (time.perf_counter() - tic) / len(jobs)
            by_grade = {g: np.array([values[(g, s)] for s in seeds[1:]]) for g in (1, 2)}
            under = int(np.sum(by_grade[2] < np.median(by_grade[1])))
            for grade, v in by_grade.items():
                q1, median, q3 = np.percentile(v, (25, 50, 75))
                print(
                    f"| {grading} | {grade} | {v.min():.3f} | {q1:.3f}-{q3:.3f} | {median:.3f} | {v.max():.3f} | "
                    f"{values[(grade, GUARD_SEED)]:.3f} | {f'{under} of {len(v)}' if grade == 2 else ''} | "
                    f"{seconds:.1f} |"
                )


if __name__ == "__main__":
    main()
