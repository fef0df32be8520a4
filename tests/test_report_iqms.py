"""The IQM sections of the reports: the per-image table, its refresh with the run's percentiles and second
opinions at group level (the rest of the page untouched), and the group figures."""

from __future__ import annotations

import json
import re

import pytest
from helpers import MALICIOUS, Page, assert_self_contained, browser, dump_dom, make_row

from flairqc_app.config import DEFAULT_MODELS_DIR
from flairqc_app.group import run_group
from flairqc_app.iqm.definitions import IQMS
from flairqc_app.iqm.ranking import percentiles, second_opinion
from flairqc_app.report import render_group_report, render_participant_report
from flairqc_app.report.iqms import END, START
from flairqc_app.tsv import write_table

RUN_SIZE = 40


def iqm_values(i: int) -> dict:
    """IQMs that grow with i (SNR, CNR ...); the image's quality rank is its index."""
    return {iqm.column: float(i + 1) if iqm.better != "lower" else 1.0 / (i + 1) for iqm in IQMS}


def run_rows(n: int = RUN_SIZE) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append(
            make_row(
                bids_name=f"sub-{i:02d}_FLAIR",
                participant_id=f"sub-{i:02d}",
                status="ok",
                straight_reject=0,
                tier=1,
                motion=0,
                noise=0,
                contrast=0 if i else 2,
                p_noise_moderate=0.1,
                p_contrast_moderate=0.2,
                p_motion_moderate=0.3,
                **iqm_values(i),
            )
        )
    return rows


def section_of(page: str) -> str:
    return page[page.index(START) : page.index(END)]


def test_participant_report_shows_the_iqms_and_waits_for_the_group_level_for_percentiles():
    row = run_rows(1)[0]
    row["iqm_fber"], row["iqm_notes"] = None, "iqm_fber: background zeroed (skull-stripped or air masked)"
    page = render_participant_report(row, None, None, None)
    part = section_of(page)
    assert "Image-quality metrics" in part and "appear once the group level has run" in part
    assert part.count("<tr data-iqm=") == len(IQMS)
    assert re.search(r'data-iqm="iqm_fwhm_avg">.*?<td class="num">1 mm</td>', part)
    assert "n/a: iqm_fber: background zeroed" in part
    assert "Second opinion" not in part


def test_failed_image_has_an_empty_iqm_section():
    page = render_participant_report(make_row(bids_name="sub-01_FLAIR", status="failed"), None, None, None)
    assert section_of(page).strip() == START


def test_percentiles_follow_the_rank_within_the_run():
    rows = run_rows()
    ranks = percentiles(rows)
    assert ranks["sub-00_FLAIR"]["iqm_snr_wm"] == 1.2 and ranks["sub-39_FLAIR"]["iqm_snr_wm"] == 98.8
    assert ranks["sub-00_FLAIR"]["iqm_efc"] == 98.8  # lower is better: the worst image has the highest EFC


def test_second_opinion_flags_strong_disagreement_only():
    rows = run_rows()
    ranks = percentiles(rows)
    worst = second_opinion(rows[0], ranks["sub-00_FLAIR"], RUN_SIZE)
    assert any(
        line.startswith("noise models say none, but SNR in white matter is in the run's worst 5 %")
        for line in worst
    )
    assert any(line.startswith("motion models say none, but Entropy focus criterion") for line in worst)
    assert not any(line.startswith("contrast") for line in worst)  # its contrast grade is severe: they agree
    assert second_opinion(rows[20], ranks["sub-20_FLAIR"], RUN_SIZE) == []
    assert second_opinion(rows[0], ranks["sub-00_FLAIR"], 19) == []  # too small a run for "worst 5 %"
    best = dict(rows[39], contrast=2)
    assert second_opinion(best, ranks["sub-39_FLAIR"], RUN_SIZE) == [
        "contrast models say severe, but GM/WM contrast-to-noise ratio is in the run's best 5 % (percentile 98.8)"
    ]


def write_run(folder) -> dict[str, str]:
    """The run's participant TSVs and per-image pages as the participant level leaves them; name -> page."""
    before = {}
    for row in run_rows():
        stem = row["bids_name"].removesuffix("_FLAIR")
        write_table(folder / row["participant_id"] / "anat" / f"{stem}_desc-flairqc_FLAIR.tsv", [row])
        page = render_participant_report(row, None, None, None)
        (folder / f"{row['bids_name']}.html").write_text(page, encoding="utf-8")
        before[row["bids_name"]] = page
    return before


def test_group_level_refreshes_only_the_iqm_section_of_each_report(tmp_path):
    before = write_run(tmp_path)
    assert len(run_group(tmp_path, {})) == RUN_SIZE
    for name, old in before.items():
        new = (tmp_path / f"{name}.html").read_text(encoding="utf-8")
        assert (
            new[: new.index(START)] == old[: old.index(START)]
            and new[new.index(END) :] == old[old.index(END) :]
        )
    worst = section_of((tmp_path / "sub-00_FLAIR.html").read_text(encoding="utf-8"))
    assert f"among the {RUN_SIZE} images of the run" in worst
    assert re.search(r'data-iqm="iqm_snr_wm">.*?<td class="num">1.2</td></tr>', worst)
    assert 'id="second-opinion"' in worst and "worst 5 %" in worst
    assert 'id="second-opinion"' not in section_of(
        (tmp_path / "sub-20_FLAIR.html").read_text(encoding="utf-8")
    )
    assert_self_contained(Page((tmp_path / "sub-00_FLAIR.html").read_text(encoding="utf-8")))
    group = (tmp_path / "group_FLAIR.html").read_text(encoding="utf-8")
    assert 'id="iqm-distribution"' in group and 'id="iqm-scatter"' in group
    assert group.count("<tr><td>sub-00_FLAIR</td>") >= 2  # its second opinions are listed


def test_a_selection_or_a_recompute_leaves_the_per_image_reports_alone(tmp_path):
    """Percentiles are those of the whole run; a selection's or a recompute's group run writes only group files."""
    before = write_run(tmp_path)
    (tmp_path / "t.json").write_text('{"motion_moderate": 0.5}', encoding="utf-8")
    assert len(run_group(tmp_path, {"subject": ["00", "01"]})) == 2
    assert len(run_group(tmp_path, {}, DEFAULT_MODELS_DIR, tmp_path / "t.json")) == RUN_SIZE
    assert {name: (tmp_path / f"{name}.html").read_text(encoding="utf-8") for name in before} == before


@pytest.mark.browser
@pytest.mark.skipif(browser() is None, reason="no chromium, chromium-browser or google-chrome binary on PATH")
def test_group_iqm_figures_draw_in_a_browser(tmp_path):
    path = tmp_path / "group_FLAIR.html"
    path.write_text(render_group_report(run_rows()), encoding="utf-8")
    dom = dump_dom(path)
    for plot in ("iqm-distribution", "iqm-scatter"):
        drawn = dom[dom.index(f'id="{plot}"') :]
        assert drawn.index('class="main-svg"') < drawn.index("</section>")  # plotly drew it (SVG, no WebGL)


def test_group_figures_hold_every_iqm_and_escape_names():
    rows = run_rows()
    rows[3]["bids_name"] = MALICIOUS
    page = render_group_report(rows)
    figures = {
        attrs["data-plot-for"]: json.loads(body)
        for attrs, body in Page(page).scripts
        if attrs.get("data-plot-for")
    }
    distribution, scatter = figures["iqm-distribution"], figures["iqm-scatter"]
    assert (
        len(distribution["data"]) == len(IQMS)
        and [t["visible"] for t in distribution["data"]].count(True) == 1
    )
    assert all(len(trace["x"]) == RUN_SIZE for trace in distribution["data"])
    assert all(max(trace["y"]) <= 1 for trace in scatter["data"])
    assert all(MALICIOUS not in trace["text"] for trace in scatter["data"])
    assert "</script><script>alert(1)" not in page
