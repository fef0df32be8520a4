"""Participant report: verdicts, escaping, self-containment and slice figures."""

from __future__ import annotations

import base64
import io
import re

import nibabel as nib
import numpy as np
import pytest
from helpers import MALICIOUS, Page, assert_self_contained, make_row
from PIL import Image

from flairqc_app.config import GRID_SHAPE, TASKS
from flairqc_app.report import render_participant_report
from flairqc_app.report.figures import (
    SLICES_PER_VIEW,
    TILE_GAP_PX,
    TILE_PX,
    VIEWS,
    central_slices,
    head_extent,
    mask_edge,
    montages,
    outline_layer,
)
from flairqc_app.report.participant import LOW_NCC, original_strips, probability_bars
from flairqc_app.report.verdict import as_number, category

THRESHOLDS = {task: 0.5 for task in TASKS}
PROBABILITIES = dict(zip((f"p_{t}" for t in TASKS), (0.1, 0.8, 0.3, 0.2, 0.05, 0.6, 0.4)))


def ok_row(**values: object) -> dict:
    defaults = dict(
        bids_name="sub-01_ses-1_FLAIR",
        status="ok",
        straight_reject=0,
        tier=2,
        motion=1,
        noise=0,
        contrast=0,
        manufacturer="Siemens",
        **PROBABILITIES,
    )
    return make_row(**{**defaults, **values})


def volume_image(shape: tuple[int, int, int], zooms: tuple[float, float, float]) -> nib.Nifti1Image:
    data = np.random.default_rng(0).random(shape).astype(np.float32) * 1000
    return nib.Nifti1Image(data, np.diag([*zooms, 1.0]))


@pytest.fixture(scope="module")
def preprocessed() -> np.ndarray:
    return np.random.default_rng(1).random(GRID_SHAPE).astype(np.float32)


def verdict_text(html: str) -> str:
    """The words of the verdict box, whitespace-normalised."""
    start = html.rindex("<section", 0, html.index('id="verdict"'))
    return " ".join(" ".join(Page(html[start : html.index("</section>", start)]).text).split())


def bar_tasks(html: str) -> list[str]:
    return re.findall(r'<g class="bar[^"]*" data-task="([^"]+)"', html)


def test_ok_tier_report(preprocessed: np.ndarray) -> None:
    html = render_participant_report(
        ok_row(), volume_image((60, 70, 50), (1, 1, 1)), preprocessed, THRESHOLDS
    )
    words = verdict_text(html)
    assert "Tier 2" in words and "motion: moderate" in words and "noise: none" in words
    page = Page(html)
    assert_self_contained(page)
    # original (3 views), its air window (axial, sagittal), preprocessed (3) and their 3 outline layers
    assert len(page.images()) == 11
    assert bar_tasks(html) == [t.replace("_", " ") for t in TASKS]
    assert "Plotly" not in html  # its size on real images: benchmarks/bench_reports.py
    assert 'id="registration-warning"' not in html


def test_straight_reject_by_model() -> None:
    row = ok_row(straight_reject=1, tier=None, reject_source="model")
    html = render_participant_report(row, None, None, THRESHOLDS)
    words = verdict_text(html)
    assert words.startswith("Straight reject") and "straight_reject model" in words
    assert "Tier" not in words and "motion" not in words
    assert bar_tasks(html) == ["straight reject"]  # no artefact bars for a reject


@pytest.mark.parametrize("grade", ["n/a", None, ""])
def test_reject_with_na_grades_and_tier(grade: object) -> None:
    """The gate writes n/a grades and tier for rejects: the page still says why, with no artefact verdict."""
    row = make_row(
        bids_name="sub-04_FLAIR",
        status="ok",
        straight_reject="1",
        tier=grade,
        motion=grade,
        noise=grade,
        contrast=grade,
        reject_source="model",
        p_straight_reject="0.97",
    )
    html = render_participant_report(row, None, None, THRESHOLDS)
    assert verdict_text(html).startswith("Straight reject")
    assert bar_tasks(html) == ["straight reject"]
    assert "0.970" in html


def test_low_registration_ncc_warns() -> None:
    html = render_participant_report(ok_row(registration_ncc=LOW_NCC - 0.1), None, None, THRESHOLDS)
    assert 'id="registration-warning"' in html and f"NCC {LOW_NCC - 0.1:.2f} &lt; {LOW_NCC}" in html
    assert 'id="registration-warning"' not in render_participant_report(
        ok_row(registration_ncc=LOW_NCC), None, None, None
    )


def test_skipped_shows_reason_and_original_but_no_probabilities() -> None:
    row = make_row(
        bids_name="sub-02_FLAIR",
        status="skipped",
        straight_reject=1,
        reject_source="gate",
        reason="thick_slices",
        reason_detail="5 mm slices: a 2D acquisition",
    )
    html = render_participant_report(row, volume_image((64, 64, 20), (1, 1, 5)), None, None)
    words = verdict_text(html)
    assert (
        words.startswith("Skipped") and "thick_slices" in words and "5 mm slices: a 2D acquisition" in words
    )
    page = Page(html)
    assert len(page.images()) == 5  # the original's three views and its air window (axial, sagittal)
    assert 'id="probabilities"' not in html


def test_failed_without_images() -> None:
    row = make_row(
        bids_name="sub-03_FLAIR", status="failed", reason="read_error", reason_detail="truncated gzip"
    )
    html = render_participant_report(row, None, None, None)
    assert (verdict_text(html)).startswith("Failed")
    assert "truncated gzip" in html
    assert Page(html).images() == []
    assert "<img" not in html


def test_untrusted_sidecar_text_is_escaped() -> None:
    row = ok_row(manufacturer=MALICIOUS, manufacturers_model_name='"><img src=x onerror=alert(2)>')
    html = render_participant_report(row, None, None, THRESHOLDS)
    assert MALICIOUS not in html and "<img src=x" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;!--" in html
    page = Page(html)
    assert not [body for _, body in page.scripts if "alert(" in body]
    assert MALICIOUS in "".join(page.text)  # shown as text, as the user typed it


def test_missing_values_show_na() -> None:
    html = render_participant_report(ok_row(echo_time=None, seconds=float("nan")), None, None, None)
    assert html.count("<td>n/a</td>") >= 2


def test_probability_colours_follow_thresholds() -> None:
    bars = probability_bars(ok_row(), THRESHOLDS)
    assert [b.above for b in bars] == [p >= 0.5 for p in PROBABILITIES.values()]
    html = render_participant_report(ok_row(), None, None, THRESHOLDS)
    assert len(re.findall(r'<g class="bar above"', html)) == 2  # motion moderate 0.8, noise severe 0.6
    assert html.count('class="threshold"') == len(TASKS)
    assert 'class="threshold"' not in render_participant_report(ok_row(), None, None, None)


def png_sizes(images: list[Image.Image]) -> list[tuple[int, int]]:
    return [image.size for image in images]


def test_anisotropic_slices_keep_their_aspect() -> None:
    # 60 x 70 x 20 voxels of 1 x 1 x 5 mm: 60 x 70 x 100 mm.
    (axial, sagittal, coronal) = png_sizes(central_slices(np.ones((60, 70, 20)), (1.0, 1.0, 5.0)))
    assert axial[0] / axial[1] == pytest.approx(60 / 70, rel=0.02)
    assert sagittal[0] / sagittal[1] == pytest.approx(70 / 100, rel=0.02)
    assert coronal[0] / coronal[1] == pytest.approx(60 / 100, rel=0.02)
    assert max(sagittal[1], coronal[1]) == 256


def test_montage_strips_are_jpegs_of_the_expected_size() -> None:
    # 60 x 70 x 20 voxels of 1 x 1 x 5 mm: 60 x 70 x 100 mm, so a tile's longest side is the 100 mm one.
    html = render_participant_report(ok_row(), volume_image((60, 70, 20), (1, 1, 5)), None, None)
    images = Page(html).images()
    assert {image.format for image in images} == {"JPEG"}
    scale = TILE_PX / 100
    tiles = {"axial": (60, 70), "sagittal": (70, 100), "coronal": (60, 100)}
    expected = [
        (n * round(tiles[v][0] * scale) + (n - 1) * TILE_GAP_PX, round(tiles[v][1] * scale))
        for v, n in ((v, SLICES_PER_VIEW[v]) for v in VIEWS)
    ]
    assert png_sizes(images[:3]) == expected


def test_montage_slices_spread_over_the_head() -> None:
    volume = np.zeros((100, 120, 90), np.float32)
    volume[20:80, 10:110, 30:90] = 1.0  # the head, in air
    cuts = montages(volume, (0.0, 1.0))
    assert [len(m.indices) for m in cuts] == [SLICES_PER_VIEW[v] for v in VIEWS]
    assert head_extent(volume, 2, (0.0, 1.0)) == (30, 89)
    for cut, (first, last) in zip(cuts, ((30, 89), (20, 79), (10, 109))):
        assert first < cut.indices[0] and cut.indices[-1] < last and cut.indices == sorted(set(cut.indices))


def test_slices_are_shown_in_neurological_orientation() -> None:
    volume = np.zeros((40, 50, 30))
    volume[20:, 25:, 15:] = 1.0  # right, anterior, superior octant, cut by the three central planes
    axial, sagittal, coronal = (np.asarray(i) for i in central_slices(volume, (1.0, 1.0, 1.0)))
    assert axial[:10, -10:].mean() > 200 and axial[-10:, :10].mean() < 50  # right on the right, anterior up
    assert sagittal[:5, -5:].mean() > 200 and sagittal[-5:, :5].mean() < 50  # anterior right, superior up
    assert coronal[:5, -5:].mean() > 200 and coronal[-5:, :5].mean() < 50  # right on the right, superior up


def test_original_is_reoriented_to_ras() -> None:
    data = np.zeros((40, 50, 30), np.float32)
    data[:10] = 1.0  # first array voxels: with an x flip (L->R becomes R->L), these are on the right
    flipped = nib.Nifti1Image(data, np.diag([-1.0, 1.0, 1.0, 1.0]))
    tissue, _ = original_strips(flipped)
    axial = np.asarray(Image.open(io.BytesIO(base64.b64decode(tissue[0].uri.split(",")[1]))).convert("L"))
    assert axial[:, -20:-10].mean() > 200 and axial[:, 20:30].mean() < 50  # away from the L/R letters


def test_outline_is_drawn_on_the_mask_edge_only() -> None:
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    edge = mask_edge(mask, width=1)
    assert edge.sum() == 36 and not edge[6:14, 6:14].any()
    layer = outline_layer(mask, (40, 40))  # mask upsampled to 40 x 40; index 1 gets the outline colour
    outline = np.asarray(layer) == 1
    assert layer.mode == "P"
    assert outline[10, 10:30].all() and not outline[15:25, 15:25].any() and not outline[:9].any()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"status": "ok", "tier": "2", "straight_reject": "0"}, "tier2"),  # read back from a TSV
        ({"status": "ok", "tier": "n/a", "straight_reject": "1"}, "reject"),
        ({"status": "ok", "tier": None, "straight_reject": None}, "unknown"),
        ({"status": "skipped", "straight_reject": 1}, "skipped"),
        ({"status": "failed", "tier": 1}, "failed"),
    ],
)
def test_category_of_rows(values: dict, expected: str) -> None:
    assert category(make_row(**values)) == expected


def test_as_number() -> None:
    values = (1, "0.25", "n/a", "", None, float("nan"), "abc")
    assert [as_number(v) for v in values] == [1.0, 0.25, None, None, None, None, None]
