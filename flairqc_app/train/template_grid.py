"""The template brain on a model grid: what augmentations spare and what a brain-windowed network sees.

Every image reaching a network is on the registered template grid, resized to the model's input shape
(RAS array order), so one mask drawn on the template fits all of them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from flairqc_app.grid import resize_to, template_brain_mask

# How far past the template brain a brain-windowed network sees, and what a head swap leaves an image of its own:
# registration error and the brain's own variation, so no cortex is cut, and little scalp is left (6 mm took the
# real FLAIR's motion cue away in attempt 5's probe, docs/model-history.md#attempt-5).
BRAIN_WINDOW_MARGIN_MM = 6.0


@lru_cache(maxsize=8)
def template_brain(shape: tuple[int, int, int], margin_mm: float = 0.0) -> np.ndarray:
    """The template brain grown by `margin_mm` (on the 1 mm grid, before resizing), on a grid of `shape`."""
    brain = template_brain_mask()
    if margin_mm > 0:
        brain = ndimage.distance_transform_edt(~brain) <= margin_mm
    mask = resize_to(brain.astype(np.float32), shape) > 0.5
    mask.flags.writeable = False  # shared by every caller through the cache
    return mask
