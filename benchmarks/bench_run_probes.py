"""How trained runs or ensembles of one artefact read images unlike their training data (docs/model-card.md).

Before a run is exported, this answers the questions the CI guard and the real images ask of the shipped set: the
real 3D FLAIR of ../shared/realdata-dev, clean, with the engine's artefact of the runs' task at grades 1 and 2
(--draws each) and with the other artefacts at grade 2; and the CI guard's synthetic FLAIR (tests/
test_default_models.py), clean and with the artefact at grades 1 and 2. Every image goes through the BIDS-App's
preprocessing (fast recipe) and is resized to the runs' input; each probability is printed with the run's own
threshold ('+': at or over it). Probes are preprocessed once per --probe-cache file, which records what they
were made for (artefact, input shape, grading, draws) and is refused for other runs or options.

    python benchmarks/bench_run_probes.py --runs RUN_OR_ENSEMBLE ... [--draws 2] [--motion-grading visible]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from bench_default_models import REAL, REALDATA, degrade_real  # noqa: E402 (its own folder)
from bench_motion_grades import GUARD_SEED  # noqa: E402
from bench_real_cues import model_input  # noqa: E402

from flairqc_app.config import ARTEFACTS
from flairqc_app.synth import SynthConfig, generate_case
from flairqc_app.synth.params import MOTION_GRADINGS
from flairqc_app.train.ensemble import load_trained

MADE_FOR = "made_for"  # key of the probe cache's record of what its probes were made for


def probe_images(
    artefact: str, shape: tuple[int, int, int], motion_grading: str, draws: int = 1, others: bool = False
) -> dict[str, np.ndarray]:
    """The real FLAIR and the CI guard's FLAIR, clean and with the artefact at grades 1 and 2 (the real one `draws`
    times; with `others`, also with each other artefact at grade 2), as the BIDS-App preprocesses them."""
    clean = nib.load(str(REALDATA / f"{REAL['flair3d']}.nii.gz"))
    images = {"real FLAIR": clean}
    for grade in (1, 2):
        for draw in range(draws):
            name = f"real + {artefact} {grade}" + (f" ({draw})" if draws > 1 else "")
            images[name] = degrade_real(clean, artefact, grade, draw, motion_grading)
    if others:
        images |= {
            f"real + {other} 2": degrade_real(clean, other, 2, 0) for other in ARTEFACTS if other != artefact
        }
    config = SynthConfig(grid="1mm", motion_grading=motion_grading)
    images["guard clean"] = generate_case(GUARD_SEED, config=config)[0]
    images |= {
        f"guard {artefact} {g}": generate_case(GUARD_SEED, config=config, **{artefact: g})[0] for g in (1, 2)
    }
    return {name: model_input(image, shape).astype(np.float32) for name, image in images.items()}


@torch.no_grad()
def probabilities(model: torch.nn.Module, probes: dict[str, np.ndarray]) -> dict[str, float]:
    return {
        name: torch.softmax(model(torch.from_numpy(x[None, None])), 1)[0, 1].item()
        for name, x in probes.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=Path, nargs="+", required=True, help="run or ensemble directories, one task"
    )
    parser.add_argument(
        "--draws", type=int, default=2, help="draws of the artefact per grade on the real FLAIR"
    )
    parser.add_argument("--motion-grading", choices=MOTION_GRADINGS, default="visible")
    parser.add_argument(
        "--probe-cache", type=Path, help="npz file keeping the preprocessed probes between calls"
    )
    args = parser.parse_args()
    trained = [load_trained(path, torch.device("cpu")) for path in args.runs]
    tasks = {t.task for t in trained}
    if len(tasks) != 1:
        parser.error(f"the runs are of several tasks: {', '.join(sorted(tasks))}")
    artefact = tasks.pop().split("_")[0]
    shape = tuple(trained[0].cache.shape)
    made_for = json.dumps(
        {"artefact": artefact, "shape": shape, "motion_grading": args.motion_grading, "draws": args.draws}
    )
    if args.probe_cache and args.probe_cache.is_file():
        probes = dict(np.load(args.probe_cache))
        kept_for = str(probes.pop(MADE_FOR, ""))
        if kept_for != made_for:
            parser.error(
                f"{args.probe_cache} holds probes made for {kept_for or 'unknown settings'}, not for "
                f"{made_for}: give another --probe-cache file"
            )
    else:
        probes = probe_images(artefact, shape, args.motion_grading, args.draws, others=True)
        if args.probe_cache:
            np.savez(args.probe_cache, **probes, **{MADE_FOR: np.array(made_for)})
    print(f"task {trained[0].task}; artefacts applied with motion graded by {args.motion_grading}\n")
    print("| run | threshold | " + " | ".join(probes) + " |\n|---|---|" + "---|" * len(probes))
    for path, t in zip(args.runs, trained):
        threshold = float(t.record["threshold"])
        read = probabilities(t.model, probes)
        cells = [f"{p:.2f}{' +' if p >= threshold else ''}" for p in read.values()]
        print(f"| {path.name} | {threshold:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
