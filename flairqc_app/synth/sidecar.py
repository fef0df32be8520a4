"""Plausible BIDS sidecars: scanner and sequence timings (seconds) of routine clinical acquisitions."""

from __future__ import annotations

import numpy as np

from flairqc_app.config import SIDECAR_FIELDS
from flairqc_app.synth.params import SCANNERS, TIMINGS, Scanner


def draw_scanner(rng: np.random.Generator) -> Scanner:
    return SCANNERS[int(rng.integers(len(SCANNERS)))]


def sidecar(rng: np.random.Generator, scanner: Scanner, suffix: str, mr_acquisition_type: str) -> dict:
    """The sidecar a `suffix` image of this scanner would carry (straight rejects keep their file's suffix)."""
    timings = {name: round(r.draw(rng), 4) for name, r in TIMINGS[(suffix, mr_acquisition_type)].items()}
    values = {
        "Manufacturer": scanner.manufacturer,
        "ManufacturersModelName": scanner.model,
        "MagneticFieldStrength": scanner.field_t,
        "MRAcquisitionType": mr_acquisition_type,
        **timings,
    }
    return {key: values[key] for key in SIDECAR_FIELDS if key in values}
