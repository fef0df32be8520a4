"""Tissue intensities of a sequence, drawn per image from params.SEQUENCE_INTENSITIES."""

from __future__ import annotations

import numpy as np

from flairqc_app.synth.params import RATIO_TO_WM, SEQUENCE_INTENSITIES


def draw_levels(rng: np.random.Generator, sequence: str) -> dict[str, float]:
    """Per-class intensities; classes in RATIO_TO_WM are drawn as ratios to WM so their order always holds."""
    ranges = SEQUENCE_INTENSITIES[sequence]
    levels = {name: r.draw(rng) for name, r in ranges.items()}
    for name in RATIO_TO_WM[sequence]:
        levels[name] *= levels["wm"]
    return levels
