"""Synthetic data engine: measured artefact strength per grade, tissue contrasts, rejects, BIDS, determinism.

Most renders use the 2 mm grid to keep the module fast; one test renders a 1 mm head.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from dataclasses import replace
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from flairqc_app.synth import (
    SynthConfig,
    apply_artefact,
    artefacts,
    cli,
    generate_case,
    geometry,
    iter_cases,
    measures,
    render_case,
)
from flairqc_app.synth.anatomy import draw_anatomy, head_model, template_image, tissue_fractions
from flairqc_app.synth.artefacts import ContrastPlan, reduce_contrast
from flairqc_app.synth.bids import nifti_gz_bytes
from flairqc_app.synth.contrasts import draw_levels
from flairqc_app.synth.labels import COLUMNS
from flairqc_app.synth.params import (
    BACKGROUND_MARGIN_MM,
    CONTRAST_GRADES,
    MOTION_GRADES,
    REJECT_REASONS,
    SEQUENCE_INTENSITIES,
    TISSUE_LABELS,
    UINT8_MAX,
)
from flairqc_app.synth.plan import plan_dataset, render_spec

FAST = SynthConfig(grid="2mm", lesions=True, zero_background=False)  # air noise measured below
SEED, SUBJECT = 1234, 99


@cache
def head(
    modality: str = "FLAIR",
    motion: int = 0,
    noise: int = 0,
    contrast: int = 0,
    reject: str | None = None,
    contrast_mode: str | None = "gm_wm",
):
    """One subject and acquisition (same seeds) at each grade, so only the artefact differs."""
    return render_case(
        SEED,
        modality,
        motion,
        noise,
        contrast,
        reject,
        FAST,
        subject_seed=SUBJECT,
        with_tissue=True,
        contrast_mode=contrast_mode,
    )


def data(case) -> np.ndarray:
    return np.asarray(case.image.dataobj, dtype=np.float32)


def tissue_median(case, name: str) -> float:
    return float(np.median(data(case)[case.tissue == TISSUE_LABELS[name]]))


# ---------------------------------------------------------------- artefact strength grows with the grade
def test_snr_estimate_falls_with_noise_grade():
    snrs = [measures.snr(data(head(noise=g)), head(noise=g).tissue) for g in (0, 1, 2)]
    assert snrs[0] > snrs[1] > snrs[2], snrs
    assert snrs[0] > 20 and 5 < snrs[1] < 16 and snrs[2] < 4.5, snrs


def test_grey_white_contrast_falls_with_contrast_grade():
    contrasts = [measures.gm_wm_contrast(data(head(contrast=g)), head(contrast=g).tissue) for g in (0, 1, 2)]
    assert contrasts[0] > contrasts[1] > contrasts[2], contrasts
    assert contrasts[2] < 0.35 * contrasts[0], contrasts


def test_contrast_grade_2_stays_below_the_flattest_grade_0_across_images():
    """The most contrasted FLAIR squeezed at the grade-2 maximum keeps a lower GM/WM ratio than the least
    contrasted untouched FLAIR, so the grade cannot be read off the base contrast of an image."""
    ranges, grade2 = SEQUENCE_INTENSITIES["FLAIR"], CONTRAST_GRADES[2]
    wm, csf = ranges["wm"].hi, ranges["csf"].lo
    levels = {"csf": csf, "wm": wm, "gm": wm * ranges["gm"].hi}
    plan = ContrastPlan("gm_wm", grade2.residual.hi, 1.0, grade2.outside_residual.hi, None, 0)
    squeezed = reduce_contrast(np.array([csf, levels["wm"], levels["gm"], 2.0], np.float32), plan, levels)
    assert squeezed[2] / squeezed[1] < ranges["gm"].lo - 0.05, squeezed


def test_csf_suppression_failure_lifts_csf_with_grade():
    ratios = [
        tissue_median(c, "csf") / tissue_median(c, "wm")
        for c in (head(contrast=g, contrast_mode="csf") for g in (0, 1, 2))
    ]
    assert ratios[0] < ratios[1] < ratios[2] and ratios[2] > 0.8, ratios  # 2 mm: CSF label is partial-volumed


def test_ghost_energy_rises_with_motion_grade():
    ghosts = [measures.ghost_ratio(data(head(motion=g)), head(motion=g).tissue) for g in (0, 1, 2)]
    assert ghosts[0] < ghosts[1] < ghosts[2], ghosts
    assert ghosts[2] > 2 * ghosts[0], ghosts


# ---------------------------------------------------------------- sequence contrasts
def test_motion_visibility_counts_ghosts_not_the_pose_registration_undoes():
    still = data(head())
    voxel = tuple(float(z) for z in head().image.header.get_zooms()[:3])
    move = ((0.0, 0.0, 0.0),), ((0.0, 6.0, 0.0),)  # one moved pose: 6 mm along the phase-encode axis

    def shown(times, poses):
        plan = artefacts.MotionPlan(times, poses, *move)
        moved = artefacts.corrupt_motion(still, plan, voxel)
        return artefacts.motion_visibility(still, moved, plan, voxel), float(
            np.abs(np.abs(moved) - still).mean()
        )

    # moved at once and held: a shifted head, little else
    shifted, shifted_difference = shown((0.02,), (0, 1))
    half, _ = shown((0.5,), (0, 1))  # half of k-space (one side of the centre) from each pose: ghosts
    assert shifted < 0.03 and half > 3 * shifted
    # a plain difference would call the shift motion
    assert shifted_difference > 4 * shown((0.98,), (0, 1))[1]


@pytest.mark.parametrize("grade", [1, 2])
def test_visible_motion_grading_keeps_what_shows_within_the_grade(grade):
    band = MOTION_GRADES[grade].visible
    visible = replace(FAST, motion_grading="visible")
    shown = [
        float(render_case(seed, motion=grade, config=visible).labels["gen_motion_visible"])
        for seed in (90_001, 3, 4)
    ]
    assert all(band.lo <= v <= band.hi for v in shown), shown
    by_size = render_case(3, motion=grade, config=FAST).labels  # displacement grading records what shows too
    assert float(by_size["gen_motion_visible"]) > 0.0 and by_size["gen_motion_times"]
    with pytest.raises(ValueError, match="motion grading must be one of displacement, visible, not 'size'"):
        replace(FAST, motion_grading="size")


def test_flair_nulls_csf_and_shows_bright_lesions():
    case = head()
    csf, wm, gm, lesion = (tissue_median(case, k) for k in ("csf", "wm", "gm", "lesion"))
    assert csf < wm < gm < lesion, (csf, wm, gm, lesion)


def test_t1w_orders_white_grey_csf():
    case = head("T1w")
    assert tissue_median(case, "wm") > tissue_median(case, "gm") > tissue_median(case, "csf")


def test_t2w_and_pd_have_bright_csf():
    t2 = head(reject="wrong_contrast_t2w")
    assert tissue_median(t2, "csf") > tissue_median(t2, "gm") > tissue_median(t2, "wm")
    pd = head(reject="wrong_contrast_pd")
    assert tissue_median(pd, "csf") > tissue_median(pd, "wm")


# ---------------------------------------------------------------- straight rejects
@pytest.mark.parametrize("reason", REJECT_REASONS)
def test_straight_rejects_carry_their_reason(reason):
    case = head(reject=reason)
    values = data(case)
    assert case.labels["straight_reject"] == 1 and case.labels["reject_reason"] == reason
    assert case.labels["modality"] == "FLAIR" and "InversionTime" in case.sidecar
    if reason == "acquisition_2d":
        assert case.sidecar["MRAcquisitionType"] == "2D" and max(case.image.header.get_zooms()) >= 3.0
    elif reason == "truncated":
        fg = measures.foreground_mask(values)
        assert any(fg.take(0, axis=a).any() or fg.take(-1, axis=a).any() for a in range(3))
    elif reason == "segmentation":
        assert len(np.unique(values)) <= 4 or values.max() <= 1.0
    elif reason == "near_empty":
        assert np.mean(values == 0) > 0.99
    elif reason == "noise_only":
        assert measures.foreground_mask(values).mean() > 0.5  # Rayleigh noise everywhere, no air
    else:
        assert case.labels["gen_sequence"] in ("n/a", "T1w", "T2w", "PD")


# ---------------------------------------------------------------- scanner output, individual cortex
def test_zero_background_sets_air_to_zero_and_keeps_the_head():
    noisy = head()
    zeroed = render_case(
        SEED,
        "FLAIR",
        config=replace(FAST, zero_background=True),
        subject_seed=SUBJECT,
        with_tissue=True,
        contrast_mode="gm_wm",
    )
    air = measures.air_mask(zeroed.tissue, margin=int(BACKGROUND_MARGIN_MM) + 2)
    head_voxels = zeroed.tissue > 0
    assert (noisy.labels["gen_zero_background"], zeroed.labels["gen_zero_background"]) == (0, 1)
    assert np.all(data(zeroed)[air] == 0) and np.mean(data(noisy)[air] == 0) < 0.05
    assert np.mean(data(zeroed)[head_voxels] == 0) < 0.01  # bone is dark, not zeroed
    ratio = data(zeroed)[head_voxels] / np.maximum(data(noisy)[head_voxels], 1)
    # same image inside (integer scaling may differ slightly)
    assert abs(float(np.median(ratio)) - 1.0) < 0.05


def test_drawn_background_and_uint8_storage_occur():
    cases = [render_case(seed, "FLAIR", config=SynthConfig(grid="2mm", reorient=False)) for seed in range(12)]
    zero = [c.labels["gen_zero_background"] for c in cases]
    assert 0 < sum(zero) < len(zero), zero  # drawn with ZERO_BACKGROUND_PROBABILITY
    uint8 = [c for c in cases if c.labels["gen_dtype"] == "uint8"]
    assert uint8, [c.labels["gen_dtype"] for c in cases]
    for case in uint8:
        values = np.asarray(case.image.dataobj)
        assert values.dtype == np.uint8 and np.percentile(values, 99.9) <= UINT8_MAX.hi + 1
        assert np.mean(values == 255) < 0.001  # headroom: the head is not clipped


def test_sharpened_tissue_fractions_sum_to_one_and_thin_partial_volume():
    model = head_model()
    band = []
    for k in (1.0, 4.0):
        gm, wm, csf = tissue_fractions(model, k)
        assert np.allclose(gm + wm + csf, 1.0, atol=1e-4) or k == 1.0
        band.append(float(np.mean(np.maximum(np.maximum(gm, wm), csf) < 0.7)))
    assert band[1] < 0.5 * band[0], band  # fewer voxels left as a mixture of tissues
    assert np.array_equal(tissue_fractions(model, 1.0)[0], model.gm)  # k = 1 is the ICBM average


def test_texture_roughens_white_matter():
    anatomy = draw_anatomy(np.random.default_rng(SUBJECT))
    levels = draw_levels(np.random.default_rng(0), "FLAIR")
    wm_mask = head_model().labels == TISSUE_LABELS["wm"]

    def spread(texture: float) -> float:
        wm = template_image(replace(anatomy, texture=texture), levels)[0][wm_mask]
        return float(np.std(wm) / np.median(wm))

    assert spread(0.05) > 1.5 * spread(0.0)


def test_fine_folding_moves_the_sampled_head_within_its_amplitude():
    anatomy = draw_anatomy(np.random.default_rng(SUBJECT))
    acq = geometry.draw_acquisition(np.random.default_rng(1), "2mm")
    pose = geometry.draw_pose(np.random.default_rng(2))
    flat, folded = (
        geometry.template_coordinates(acq, pose, replace(anatomy, fine_elastic_mm=mm), head_model())
        for mm in (0.0, 1.5)
    )
    shift = np.linalg.norm(folded - flat, axis=0)
    assert shift.max() <= 1.5 + 1e-3 and shift.mean() > 0.2


# ---------------------------------------------------------------- one 1 mm head
def test_one_millimetre_head_with_artefacts():
    image, labels = generate_case(7, "FLAIR", motion=1, noise=1, contrast=1, config=SynthConfig(grid="1mm"))
    assert np.allclose(image.header.get_zooms(), 1.0)
    assert min(image.shape) >= 150 and image.get_data_dtype().kind in "iu"
    assert (labels["motion"], labels["noise"], labels["contrast"]) == (1, 1, 1)
    assert labels["gen_voxel_mm"] == "1.00x1.00x1.00"


# ---------------------------------------------------------------- determinism and in-memory API
def test_same_seed_same_bytes_other_seed_other_bytes():
    a = render_case(5, "T1w", noise=1, config=FAST)
    b = render_case(5, "T1w", noise=1, config=FAST)
    c = render_case(6, "T1w", noise=1, config=FAST)
    assert nifti_gz_bytes(a.image) == nifti_gz_bytes(b.image) != nifti_gz_bytes(c.image)
    assert a.labels == b.labels


def test_iter_cases_and_generator_seed_reproduce():
    pairs = list(iter_cases(1, seed=3, config=FAST, reject_fraction=0.0))
    assert len(pairs) == 1 and all(isinstance(img, nib.Nifti1Image) for img, _ in pairs)
    image, labels = generate_case(np.random.default_rng(0), "T1w", config=FAST)
    again, _ = generate_case(int(labels["gen_seed"]), "T1w", config=FAST)
    assert nifti_gz_bytes(image) == nifti_gz_bytes(again)


def test_apply_artefact_degrades_any_image():
    clean = head()
    img = clean.image
    rng = np.random.default_rng
    assert np.array_equal(apply_artefact(img, "noise", 0, rng(0)).get_fdata(), img.get_fdata())
    noisy = [measures.snr(apply_artefact(img, "noise", g, rng(0)).get_fdata(), clean.tissue) for g in (1, 2)]
    flat = measures.gm_wm_contrast(apply_artefact(img, "contrast", 2, rng(0)).get_fdata(), clean.tissue)
    moved = measures.ghost_ratio(apply_artefact(img, "motion", 2, rng(0)).get_fdata(), clean.tissue)
    assert noisy[0] > noisy[1] and noisy[0] < measures.snr(data(clean), clean.tissue)
    assert flat < 0.5 * measures.gm_wm_contrast(data(clean), clean.tissue)
    # ghosts of a dimmer scalp (FLAIR fat 0.4-1.1)
    assert moved > 1.5 * measures.ghost_ratio(data(clean), clean.tissue)
    with pytest.raises(ValueError):
        apply_artefact(img, "blur", 1, rng(0))


# ---------------------------------------------------------------- BIDS dataset and labels table
@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "ds"
    code = cli.main(
        [
            str(root),
            "--n-subjects",
            "3",
            "--seed",
            "11",
            "--grid",
            "2mm",
            "--straight-reject-fraction",
            "0.5",
            "--artefact-fraction",
            "0.5",
            "--quiet",
        ]
    )
    assert code == 0
    return root


def read_labels(root: Path) -> list[dict[str, str]]:
    with open(root / "labels.tsv", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_labels_table_layout(dataset):
    header = (dataset / "labels.tsv").read_text().splitlines()[0].split("\t")
    assert tuple(header) == COLUMNS and "tier" not in header
    rows = read_labels(dataset)
    assert len(rows) == 6 and {r["modality"] for r in rows} == {"FLAIR", "T1w"}
    for row in rows:
        assert (dataset / row["filename"]).is_file() and row["filename"].endswith(
            f"_{row['modality']}.nii.gz"
        )
        assert row["participant_id"].startswith("sub-") and row["session_id"] == "n/a"
        assert (row["reject_reason"] in REJECT_REASONS) == (row["straight_reject"] == "1")
        assert all(value != "" for value in row.values())
    assert "labels.tsv" in (dataset / ".bidsignore").read_text().split()


def test_dataset_files_are_reproducible(dataset):
    for spec in plan_dataset(3, 11, reject_fraction=0.5, artefact_fraction=0.5, grid="2mm")[:2]:
        path = (
            dataset
            / f"sub-{spec.subject + 1:04d}"
            / "anat"
            / f"sub-{spec.subject + 1:04d}_{spec.modality}.nii.gz"
        )
        assert path.read_bytes() == nifti_gz_bytes(render_spec(spec, FAST.__class__(grid="2mm")).image)


def test_sidecars_are_plausible(dataset):
    for sidecar in dataset.glob("sub-*/anat/*.json"):
        meta = json.loads(sidecar.read_text())
        assert meta["Manufacturer"] in ("Siemens", "GE", "Philips") and meta["MagneticFieldStrength"] in (
            1.5,
            3.0,
        )
        if sidecar.name.endswith("FLAIR.json"):
            assert 1.0 < meta["InversionTime"] < 3.0 and meta["RepetitionTime"] > meta["InversionTime"]


def test_bids_validator_passes(dataset):
    if shutil.which("bids-validator-deno") is None:
        pytest.skip("bids-validator-deno is not on PATH")
    done = subprocess.run(
        ["bids-validator-deno", str(dataset), "--format", "json"], capture_output=True, text=True
    )
    issues = json.loads(done.stdout)["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert not errors, errors


def test_cli_help_documents_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for option in (
        "--n-subjects",
        "--seed",
        "--modalities",
        "--straight-reject-fraction",
        "--artefact-fraction",
        "--nprocs",
        "--grid",
    ):
        assert option in text
