"""The straight-reject kinds as transforms: parameters drawn first, applied after, one table for all kinds."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from flairqc_app.synth import rejects
from flairqc_app.synth.geometry import draw_acquisition
from flairqc_app.synth.kinds import KINDS
from flairqc_app.synth.params import REJECT_REASONS


def test_the_doctest_examples_hold():
    assert doctest.testmod(rejects).failed == 0


def test_every_reject_reason_and_the_graded_head_have_one_kind():
    assert set(KINDS) == {None, *REJECT_REASONS}
    assert {reason for reason, kind in KINDS.items() if not kind.graded} == {
        "segmentation",
        "near_empty",
        "noise_only",
        "non_brain",
    }


@pytest.mark.parametrize(("cut_top", "expected"), [(True, (0, 12)), (False, (8, 20))])
def test_truncation_cuts_its_drawn_fraction_of_the_head_extent(cut_top, expected):
    clean = np.zeros((20, 20, 20), np.float32)
    clean[5:15, 5:15, 5:15] = 1.0  # a head 10 voxels long on every axis
    assert rejects.Truncation(0, 0.3, cut_top).bounds(clean) == expected


def test_near_empty_renders_exactly_the_spots_it_drew():
    shape = (16, 16, 16)
    drawn = rejects.NearEmpty.draw(np.random.default_rng(4), shape)
    image = drawn.render(shape)
    values = {np.float32(value) for _, _, value in drawn.spots}  # stored as float32
    assert drawn.summary() == {"near_empty_spots": len(drawn.spots)} and 1 <= len(drawn.spots) <= 3
    for centre, radius, value in drawn.spots:
        assert 1 <= radius <= 3 and 0.2 <= value <= 1.0
        assert image[tuple(centre)] in values  # a later spot may cover an earlier one
    assert set(np.unique(image)) == {np.float32(0.0)} | values


def test_phantom_draws_its_parameters_once_and_renders_them():
    first, second = (rejects.Phantom.draw(np.random.default_rng(9)) for _ in range(2))
    assert first.summary() == second.summary() and first.tilt_deg == second.tilt_deg
    assert 4 <= len(first.rods) <= 9 and 2 <= len(first.spheres) <= 5
    assert all(abs(angle) <= 8.0 for angle in first.tilt_deg)
    acq = draw_acquisition(np.random.default_rng(0), "2mm")
    image = first.render(acq)
    inserts = {np.float32(value) for *_, value in first.rods + first.spheres}
    assert set(np.unique(image)) <= {np.float32(0.0), np.float32(1.0)} | inserts
    assert (image == 1.0).any() and (image == 0.0).any()  # a phantom body in air
