"""A head on an acquisition grid, and its degradations: what every image but the no-head rejects is made of.

Image formation order follows the physics: tissue contrast (and contrast failures) -> receive bias ->
k-space motion -> complex thermal noise -> magnitude; `case` then scales it like a scanner.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from flairqc_app.synth import anatomy as anat
from flairqc_app.synth import artefacts, fields, geometry, randomise
from flairqc_app.synth.measures import foreground_mask, reference_signal
from flairqc_app.synth.params import (
    BACKGROUND_MARGIN_MM,
    BIAS_AMPLITUDE,
    PARTIAL_VOLUME_SIGMA_VOX,
    ZERO_BACKGROUND_PROBABILITY,
)


def acquire_head(
    anatomy: anat.Anatomy,
    levels: dict[str, float],
    acq: geometry.Acquisition,
    pose: geometry.Pose,
    with_tissue: bool,
    rand: randomise.Randomisation | None = None,
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Sample the subject's template image on the acquisition grid, with the slice profile and PSF blur."""
    image, labels, lesion_ml = anat.template_image(anatomy, levels, with_labels=with_tissue)
    if rand is not None:
        image = randomise.add_pathology(image, labels, levels, rand)
    per_slice = max(1, int(round(acq.voxel_mm[2])))
    sampling = acq.with_slices(per_slice) if per_slice > 1 else acq
    coords = geometry.template_coordinates(sampling, pose, anatomy, anat.head_model())
    clean = geometry.sample(image, coords)
    tissue = geometry.sample(labels, coords, order=0) if labels is not None else None
    if per_slice > 1:  # thick slice = mean of thin ones (box slice profile)
        clean = clean.reshape(*acq.shape, per_slice).mean(axis=3)
        tissue = tissue[..., per_slice // 2 :: per_slice] if tissue is not None else None
    return ndimage.gaussian_filter(clean, PARTIAL_VOLUME_SIGMA_VOX), tissue, lesion_ml


def background(
    data: np.ndarray,
    clean: np.ndarray,
    voxel_mm: tuple[float, float, float],
    seed: int,
    zero: bool | None,
    params: dict[str, object],
) -> np.ndarray:
    """Air kept noisy, or set to exactly 0 beyond BACKGROUND_MARGIN_MM of the object as by scanners'
    background suppression, converters and defacing (the real 3D FLAIR of realdata-dev is 48 % exact zeros).
    Drawn from its own stream, so the other draws of a seed stay what they were."""
    if zero is None:
        zero = bool(np.random.default_rng([seed, 3]).random() < ZERO_BACKGROUND_PROBABILITY)
    params["zero_background"] = int(zero)
    if not zero:
        return data
    inside = ndimage.binary_fill_holes(foreground_mask(clean))
    steps = max(1, int(round(BACKGROUND_MARGIN_MM / min(voxel_mm))))  # at least the margin along every axis
    inside = ndimage.binary_dilation(inside, iterations=steps)
    return np.where(inside, data, 0.0).astype(data.dtype)


def degrade(
    rng: np.random.Generator,
    clean: np.ndarray,
    levels: dict[str, float],
    acq: geometry.Acquisition,
    grades: tuple[int, int, int],
    contrast_mode: str,
    field_t: float,
    motion_grading: str = "displacement",
    rand: randomise.Randomisation | None = None,
) -> tuple[np.ndarray, dict[str, object]]:
    """Contrast failure, bias, motion, Rician noise on a clean float image; returns magnitude and parameters.
    With `rand`, its bias amplitude and clean-image SNR, and its intensity warp after the bias."""
    motion, noise, contrast = grades
    params: dict[str, object] = {}
    plan = artefacts.draw_contrast(rng, contrast, contrast_mode)
    if plan is not None:
        clean = artefacts.reduce_contrast(clean, plan, levels)
        params.update(plan.summary())
    amplitude = BIAS_AMPLITUDE[field_t].draw(rng)
    amplitude = rand.bias_amplitude if rand is not None else amplitude
    clean = clean * fields.bias_field(rng, clean.shape, amplitude)
    if rand is not None:
        clean = randomise.warp_intensities(clean, rand)
    params["bias_amplitude"] = round(amplitude, 4)
    reference = reference_signal(clean)
    signal = clean
    if motion:
        signal, summary = artefacts.draw_moved(clean, motion, rng, acq.voxel_mm, motion_grading)
        params.update(summary)
    snr = artefacts.draw_snr(rng, noise)
    snr = rand.snr if rand is not None and noise == 0 else snr
    sigma = reference / snr if reference > 0 else 1.0
    params.update(snr=round(snr, 3), noise_sigma=round(sigma, 6))
    return artefacts.add_rician_noise(signal, sigma, rng), params
