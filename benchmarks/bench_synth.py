"""Time to generate N synthetic heads (default 100) as the dataset planner mixes them, on this machine.

Prints the median and total per head; the model build (once per process) is timed apart.
Run: python benchmarks/bench_synth.py [--n 100] [--grid 1mm] [--modality FLAIR]
"""

from __future__ import annotations

import argparse
import statistics
import time

from flairqc_app.synth.anatomy import head_model
from flairqc_app.synth.bids import nifti_gz_bytes
from flairqc_app.synth.case import SynthConfig
from flairqc_app.synth.plan import plan_dataset, render_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100, help="number of heads (default 100)")
    parser.add_argument("--grid", default="1mm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modality", default="FLAIR")
    parser.add_argument("--no-write", action="store_true", help="skip the gzip encoding of each image")
    args = parser.parse_args()
    start = time.perf_counter()
    head_model()
    print(f"head model build: {time.perf_counter() - start:.1f} s (once per process)")
    config = SynthConfig(grid=args.grid)
    times = []
    for spec in plan_dataset(
        args.n, args.seed, (args.modality,), reject_fraction=0.1, artefact_fraction=0.5, grid=args.grid
    ):
        tick = time.perf_counter()
        case = render_spec(spec, config)
        if not args.no_write:
            nifti_gz_bytes(case.image)
        times.append(time.perf_counter() - tick)
        print(
            f"  {len(times):4d} {spec.reject or '-':20s} m/n/c={spec.motion}/{spec.noise}/{spec.contrast} "
            f"{times[-1]:.2f} s",
            flush=True,
        )
    print(
        f"{args.n} heads ({args.grid}, {args.modality}): median {statistics.median(times):.2f} s, "
        f"mean {statistics.mean(times):.2f} s, max {max(times):.2f} s, total {sum(times):.0f} s"
    )


if __name__ == "__main__":
    main()
