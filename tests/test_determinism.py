"""The same input with the same settings gives byte-identical results whatever the thread count (issue #32).

Two real `flairqc` runs of the same dataset, one on one thread and one image at a time, the other with two
threads asked for everywhere (--omp-nthreads 2, the ITK and OpenMP variables set to 2 in its environment) and two
images in parallel: the probabilities, the ANTs transforms and the preprocessed images must be the same bytes.
Before ANTs was pinned to one thread, the real FLAIR's straight_reject probability moved from 0.273 to 0.339.
"""

import os
import subprocess

import nibabel as nib
import numpy as np
import pytest
from helpers import REALDATA, make_dataset

from flairqc_app import tsv
from flairqc_app.config import TASKS
from flairqc_app.synth import SynthConfig, generate_case

pytestmark = pytest.mark.slow
FLAIR = REALDATA / "flair3d_head_1mm.nii.gz"


def run_flairqc(bids, out, threads: int) -> None:
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [
            "flairqc",
            str(bids),
            str(out),
            "participant",
            "--skip-bids-validation",
            "--write-preproc",
            "--omp-nthreads",
            str(threads),
            "--nprocs",
            str(threads),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def outputs(out) -> dict[str, bytes]:
    """Per image: the probabilities as written in the TSV, the transform and the preprocessed voxels."""
    found = {}
    for table in sorted(out.glob("sub-*/anat/*_desc-flairqc_FLAIR.tsv")):
        row = tsv.read_table(table)[0]
        assert row["status"] == "ok", row
        found[table.name] = repr([row[f"p_{task}"] for task in TASKS]).encode()
    for path in sorted(out.glob("sub-*/anat/*_xfm.mat")):
        found[path.name] = path.read_bytes()
    for path in sorted(out.glob("sub-*/anat/*_desc-preproc_FLAIR.nii.gz")):
        found[path.name] = np.asarray(nib.load(str(path)).dataobj).tobytes()
    return found


@pytest.mark.skipif(not FLAIR.exists(), reason=f"{FLAIR} not available")
def test_one_or_two_threads_give_the_same_bytes(tmp_path):
    synthetic, _ = generate_case(32_011, "FLAIR", motion=1, config=SynthConfig(grid="1mm"))
    bids = make_dataset(
        tmp_path / "bids",
        {
            "sub-01/anat/sub-01_FLAIR.nii.gz": nib.load(str(FLAIR)),
            "sub-02/anat/sub-02_FLAIR.nii.gz": synthetic,
        },
    )
    run_flairqc(bids, tmp_path / "one", 1)
    run_flairqc(bids, tmp_path / "two", 2)
    one, two = outputs(tmp_path / "one"), outputs(tmp_path / "two")
    assert len(one) == 6  # two images: TSV, transform, preprocessed image each
    assert one == two, [name for name in one if one[name] != two.get(name)]
