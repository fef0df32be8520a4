"""Motion, noise and poor-contrast artefacts, graded 0/1/2, on arrays and on any NIfTI image.

The same functions degrade synthetic heads inside the generator and real images through `apply_artefact`,
so a model's response to a grade can be checked on real scans with exactly the training-time corruption.
Grade ranges come from `params` (MOTION_GRADES, NOISE_GRADES, CONTRAST_GRADES).
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import fft, ndimage

from flairqc_app.config import ARTEFACTS
from flairqc_app.synth import fields
from flairqc_app.synth.geometry import rotation_matrix
from flairqc_app.synth.measures import foreground_mask, reference_signal
from flairqc_app.synth.params import (
    CONTRAST_GRADES,
    MOTION_GRADES,
    MOTION_GRADINGS,
    MOTION_VISIBLE_DRAWS,
    NOISE_GRADES,
)
from flairqc_app.tsv import NA


# ---------------------------------------------------------------- motion
@dataclass(frozen=True)
class MotionPlan:
    """Head poses over the acquisition: segment i (between switch times) is held at pose segment_poses[i];
    pose 0 is the reference, pose p > 0 is (rotations_deg[p-1], translations_mm[p-1]).

    Phase-encode lines are acquired in linear order along `axis`, so k-space centre is acquired at t = 0.5.
    """

    times: tuple[float, ...]
    segment_poses: tuple[int, ...]
    rotations_deg: tuple[tuple[float, float, float], ...]
    translations_mm: tuple[tuple[float, float, float], ...]
    axis: int = 1

    def summary(self) -> dict[str, float | int | str]:
        return {
            "motion_poses": len(self.rotations_deg),
            "motion_switches": len(self.times),
            "motion_times": ";".join(f"{t:.3f}" for t in self.times),
            "motion_max_rot_deg": round(max(max(map(abs, r)) for r in self.rotations_deg), 3),
            "motion_max_trans_mm": round(max(max(map(abs, t)) for t in self.translations_mm), 3),
        }


def draw_motion(rng: np.random.Generator, grade: int, axis: int = 1) -> MotionPlan | None:
    """Switch times uniform over the middle 90 % of the acquisition; each segment takes a pose other than the
    previous one. Every moved pose has one axis at the full drawn size and the others at random fractions of
    it, so the grade sets the size of the largest displacement, not only its upper bound.
    """
    if grade == 0:
        return None
    spec = MOTION_GRADES[grade]
    poses = int(rng.integers(spec.poses[0], spec.poses[1] + 1))
    switches = int(rng.integers(spec.switches[0], spec.switches[1] + 1))
    times = tuple(sorted(float(t) for t in rng.uniform(0.05, 0.95, switches)))
    sequence = [0]
    for _ in range(switches):
        sequence.append(int(rng.choice([p for p in range(poses + 1) if p != sequence[-1]])))

    def vector(size: float) -> tuple[float, float, float]:
        shares = rng.uniform(0.0, 1.0, 3)
        shares[rng.integers(3)] = 1.0
        return tuple(size * s * float(rng.choice([-1.0, 1.0])) for s in shares)  # type: ignore[return-value]

    rotations = tuple(vector(spec.rotation_deg.draw(rng)) for _ in range(poses))
    translations = tuple(vector(spec.translation_mm.draw(rng)) for _ in range(poses))
    return MotionPlan(times, tuple(sequence), rotations, translations, axis)


def _moved(
    volume: np.ndarray, voxel_mm: np.ndarray, rotation_deg: tuple, translation_mm: tuple
) -> np.ndarray:
    """The volume as the scanner sees it after a rigid move about the array centre (trilinear)."""
    scale = np.diag(voxel_mm)
    inverse = np.linalg.inv(scale) @ rotation_matrix(rotation_deg).T @ scale
    centre = (np.asarray(volume.shape) - 1) / 2.0
    shift = np.asarray(translation_mm) / voxel_mm
    offset = centre - inverse @ (centre + shift)
    return ndimage.affine_transform(volume, inverse, offset=offset, order=1, mode="constant", cval=0.0)


def _lines_of(volume: np.ndarray, axis: int, lines: np.ndarray) -> np.ndarray:
    """Spectrum of a real volume along `axis` at the given FFT indices, from a half-size real FFT."""
    n = volume.shape[axis]
    signed = np.where(lines <= n // 2, lines, lines - n)
    half = np.take(fft.rfft(volume, axis=axis, workers=-1), np.abs(signed), axis=axis)
    shape = [1] * volume.ndim
    shape[axis] = lines.size
    return np.where((signed < 0).reshape(shape), np.conj(half), half)


def corrupt_motion(volume: np.ndarray, plan: MotionPlan, voxel_mm: tuple[float, float, float]) -> np.ndarray:
    """Complex image whose k-space lines along `plan.axis` come from the pose held when they were acquired.

    Lines are selected along one axis only, so the FFTs along the other two axes cancel: a 1D FFT per pose
    is exact and three times cheaper than a 3D one.
    """
    volume = volume.astype(np.float32)
    n = volume.shape[plan.axis]
    acquired_at = (np.arange(n) + 0.5) / n  # time of each line in fftshifted (k = -n/2 .. n/2-1) order
    segment = np.fft.ifftshift(np.searchsorted(np.asarray(plan.times), acquired_at))
    pose_of_line = np.asarray(plan.segment_poses)[segment]
    kspace = fft.fft(volume, axis=plan.axis, workers=-1)
    for pose, (rot, trans) in enumerate(zip(plan.rotations_deg, plan.translations_mm), start=1):
        lines = np.flatnonzero(pose_of_line == pose)
        if lines.size:
            moved = _moved(volume, np.asarray(voxel_mm, float), rot, trans)
            index = [slice(None)] * volume.ndim
            index[plan.axis] = lines
            kspace[tuple(index)] = _lines_of(moved, plan.axis, lines)
    return fft.ifft(kspace, axis=plan.axis, workers=-1).astype(np.complex64)


def centre_pose(volume: np.ndarray, plan: MotionPlan, voxel_mm: tuple[float, float, float]) -> np.ndarray:
    """The volume in the pose held when the k-space centre was acquired: the image a still head in that pose
    gives, and what registration brings back to the template."""
    pose = plan.segment_poses[int(np.searchsorted(np.asarray(plan.times), 0.5))]
    if pose == 0:
        return volume
    return _moved(
        volume, np.asarray(voxel_mm, float), plan.rotations_deg[pose - 1], plan.translations_mm[pose - 1]
    )


def motion_visibility(
    volume: np.ndarray, moved: np.ndarray, plan: MotionPlan, voxel_mm: tuple[float, float, float]
) -> float:
    """What shows of the motion: mean |moved image - head still in the centre pose| over that head, divided by
    the head's mean. A pose change that registration undoes does not count; ghosts and blur do."""
    still = centre_pose(volume, plan, voxel_mm)
    head = still > 0.2 * np.percentile(still, 99)
    return float(np.abs(np.abs(moved) - still)[head].mean() / still[head].mean())


def check_motion_grading(grading: str) -> str:
    """The grading, if it is one the engine knows (MOTION_GRADINGS); a clear error otherwise."""
    if grading not in MOTION_GRADINGS:
        raise ValueError(f"motion grading must be one of {', '.join(MOTION_GRADINGS)}, not {grading!r}")
    return grading


def draw_moved(
    volume: np.ndarray,
    grade: int,
    rng: np.random.Generator,
    voxel_mm: tuple[float, float, float],
    grading: str = "displacement",
) -> tuple[np.ndarray, dict[str, float | int | str]]:
    """The volume with motion of the grade (complex), and the plan's summary with what shows of it.

    grading "displacement": the first plan drawn (the grade sets the size of the moves). "visible": plans are
    drawn until one shows within the grade's visible band (MotionGrade.visible), so a grade-2 image cannot look
    like a grade 1 because the pose at the k-space centre took most lines.
    """
    band = MOTION_GRADES[grade].visible
    for _ in range(MOTION_VISIBLE_DRAWS if check_motion_grading(grading) == "visible" else 1):
        plan = draw_motion(rng, grade)
        assert plan is not None, "grade 0 has no motion to draw"
        moved = corrupt_motion(volume, plan, voxel_mm)
        visible = motion_visibility(volume, moved, plan, voxel_mm)
        if grading == "displacement" or band.lo <= visible <= band.hi:
            return moved, {**plan.summary(), "motion_visible": round(visible, 4)}
    raise RuntimeError(
        f"no motion plan of grade {grade} showed within {band.lo}-{band.hi} in {MOTION_VISIBLE_DRAWS} draws"
    )


# ---------------------------------------------------------------- noise
def draw_snr(rng: np.random.Generator, grade: int) -> float:
    return NOISE_GRADES[grade].snr.draw(rng)


def add_rician_noise(volume: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of (volume + complex Gaussian noise): Rician where there is signal, Rayleigh in air."""
    real = np.real(volume).astype(np.float32) + np.float32(sigma) * rng.standard_normal(
        volume.shape, np.float32
    )
    imag = np.imag(volume).astype(np.float32) + np.float32(sigma) * rng.standard_normal(
        volume.shape, np.float32
    )
    return np.hypot(real, imag)


# ---------------------------------------------------------------- contrast
@dataclass(frozen=True)
class ContrastPlan:
    """GM/WM contrast kept inside a random region and outside it; CSF lift toward WM (FLAIR suppression)."""

    mode: str
    residual: float
    region_fraction: float
    outside_residual: float
    csf_to_wm: float | None
    region_seed: int

    def summary(self) -> dict[str, float | str]:
        return {
            "contrast_mode": self.mode,
            "contrast_residual": round(self.residual, 3),
            "contrast_region_fraction": round(self.region_fraction, 3),
            "contrast_outside_residual": round(self.outside_residual, 3),
            "csf_to_wm": NA if self.csf_to_wm is None else round(self.csf_to_wm, 3),
        }


def draw_contrast(rng: np.random.Generator, grade: int, mode: str = "gm_wm") -> ContrastPlan | None:
    """Mode "gm_wm": grey/white contrast loss; "csf": incomplete CSF suppression only; "both"."""
    if grade == 0:
        return None
    spec = CONTRAST_GRADES[grade]
    draws = spec.residual.draw(rng), spec.region_fraction.draw(rng), spec.outside_residual.draw(rng)
    csf = spec.csf_to_wm.draw(rng)
    if mode == "csf":
        return ContrastPlan(mode, 1.0, 1.0, 1.0, csf, int(rng.integers(2**31)))
    return ContrastPlan(mode, *draws, csf if mode == "both" else None, int(rng.integers(2**31)))


def estimate_levels(volume: np.ndarray, iterations: int = 20) -> dict[str, float]:
    """CSF, WM and GM levels of a FLAIR-like image (dark < middle < bright) by 1D 3-means on the central head.

    For real images, where the tissue intensities are unknown; the central half of each axis is mostly brain.
    """
    centre = tuple(slice(n // 4, n - n // 4) for n in volume.shape)
    values = volume[centre][foreground_mask(volume)[centre]].astype(np.float64)
    centres = np.percentile(values, [10.0, 50.0, 90.0])
    for _ in range(iterations):
        nearest = np.argmin(np.abs(values[:, None] - centres[None, :]), axis=1)
        centres = np.array(
            [values[nearest == k].mean() if np.any(nearest == k) else centres[k] for k in range(3)]
        )
    csf, wm, gm = np.sort(centres)
    return {"csf": float(csf), "wm": float(wm), "gm": float(gm)}


def _contrast_curve(
    levels: dict[str, float], residual: float, csf_to_wm: float | None, top: float
) -> tuple[np.ndarray, np.ndarray]:
    """Monotone piecewise-linear intensity map squeezing GM and WM toward their mean, optionally lifting CSF."""
    lo, hi = sorted((levels["gm"], levels["wm"]))
    mid = (lo + hi) / 2.0
    csf = levels["csf"]
    csf_out = csf if csf_to_wm is None else csf + csf_to_wm * (levels["wm"] - csf)
    knots_in = [0.0, 0.5 * min(csf, lo), csf, lo, hi, max(1.6 * hi, top)]
    knots_out = [
        0.0,
        0.5 * min(csf, lo),
        csf_out,
        mid - residual * (mid - lo),
        mid + residual * (hi - mid),
        knots_in[-1],
    ]
    if csf >= lo:  # CSF is not the darkest tissue (T2w, PD): only squeeze GM/WM
        knots_in, knots_out = [0.0, lo, hi, knots_in[-1]], [0.0, knots_out[3], knots_out[4], knots_in[-1]]
    return np.asarray(knots_in), np.maximum.accumulate(np.asarray(knots_out))


def reduce_contrast(volume: np.ndarray, plan: ContrastPlan, levels: dict[str, float]) -> np.ndarray:
    """Apply the plan: regional squeeze blended by a smooth random region map, the rest squeezed less."""
    top = float(volume.max())
    inside_in, inside_out = _contrast_curve(levels, plan.residual, plan.csf_to_wm, top)
    outside_in, outside_out = _contrast_curve(levels, plan.outside_residual, plan.csf_to_wm, top)
    outside = np.interp(volume, outside_in, outside_out).astype(np.float32)
    if plan.region_fraction >= 1.0 and plan.residual == plan.outside_residual:
        return outside
    inside = np.interp(volume, inside_in, inside_out).astype(np.float32)
    weight = fields.region_weight(
        np.random.default_rng(plan.region_seed),
        volume.shape,
        plan.region_fraction,
        inside=foreground_mask(volume),
    )
    return outside + weight * (inside - outside)


# ---------------------------------------------------------------- any image
def apply_artefact(
    img: nib.Nifti1Image,
    artefact: str,
    grade: int,
    rng: np.random.Generator,
    mode: str = "gm_wm",
    motion_grading: str = "displacement",
) -> nib.Nifti1Image:
    """Degrade any image (e.g. a real 3D FLAIR) with one artefact at grade 0/1/2; returns float32 NIfTI.

    - motion: rigid moves of the grade's size across k-space segments; the phase-encode axis is array axis 1
      and lines are taken in linear order along it (real read-out axes are unknown in a NIfTI).
    - noise: complex Gaussian noise with sigma = foreground median / SNR of the grade, magnitude taken. The
      image's own noise adds in quadrature, so grade 1/2 on an already noisy scan is at least that grade.
    - contrast: GM/WM squeeze (and with mode "csf"/"both" a CSF lift), with tissue levels estimated by
      3-means on the central head assuming FLAIR order (CSF < WM < GM).
    Grade 0 returns the image unchanged (as float32). Same rng state, same output. `motion_grading` as in
    `draw_moved`.
    """
    if artefact not in ARTEFACTS:
        raise ValueError(f"artefact must be one of {ARTEFACTS}, not {artefact!r}")
    if grade not in (0, 1, 2):
        raise ValueError(f"grade must be 0, 1 or 2, not {grade!r}")
    data = np.asarray(img.dataobj, dtype=np.float32)
    if grade > 0 and artefact == "motion":
        voxel_mm = tuple(float(z) for z in img.header.get_zooms()[:3])
        data = np.abs(draw_moved(data, grade, rng, voxel_mm, motion_grading)[0])  # type: ignore[arg-type]
    elif grade > 0 and artefact == "noise":
        data = add_rician_noise(data, reference_signal(data) / draw_snr(rng, grade), rng)
    elif grade > 0:
        data = reduce_contrast(data, draw_contrast(rng, grade, mode), estimate_levels(data))
    out = nib.Nifti1Image(data.astype(np.float32), img.affine, img.header)
    out.set_data_dtype(np.float32)
    out.header.set_slope_inter(1.0, 0.0)
    return out
