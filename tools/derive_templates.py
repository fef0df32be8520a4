"""Derive the templates flairqc ships, reproducibly, from the ICBM 2009a maps that nilearn ships.

Run: python tools/derive_templates.py   (writes flairqc_app/data/; bytes are identical run to run)

Why a derived FLAIR template: Clinica registers FLAIR to Winkler's GG-853 template, which cannot be
downloaded here and has no clear licence. FLAIR contrast is well described by tissue classes (CSF nulled,
white matter darker than grey matter), so we paint it from the ICBM 2009a tissue probability maps, in the
same MNI152NLin2009aSym space as the T1w template. benchmarks/bench_registration.py compares it with
cross-modal registration to the T1w template.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from flairqc_app import config
from flairqc_app.synth.icbm import MNI_COPYRIGHT, load_icbm_maps

# Relative FLAIR signal per tissue class (0..1): nulled CSF, WM darker than GM.
FLAIR_CSF, FLAIR_GM, FLAIR_WM = 0.06, 0.80, 0.55
PARTIAL_VOLUME_SIGMA_MM = 0.5
TISSUE_LABELS = {"CSF": 1, "GM": 2, "WM": 3}  # 0: outside the brain mask


def tissue_labels(csf: np.ndarray, gm: np.ndarray, wm: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """The most probable class per voxel inside the brain mask: the priors of the image-quality metrics.

    >>> tissue_labels(np.array([.6, .1]), np.array([.3, .2]), np.array([.1, .7]), np.array([True, True]))
    array([1, 3], dtype=uint8)
    """
    return np.where(brain, 1 + np.argmax(np.stack([csf, gm, wm]), axis=0), 0).astype(np.uint8)


def write_nifti_reproducibly(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """gzip with a fixed mtime so the same data gives the same bytes."""
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=4)  # MNI152
    img.set_sform(affine, code=4)
    raw = io.BytesIO()
    raw.write(img.to_bytes())
    with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())


def main() -> None:
    maps = load_icbm_maps()
    flair = FLAIR_CSF * maps.csf + FLAIR_GM * maps.gm + FLAIR_WM * maps.wm
    flair = ndimage.gaussian_filter(flair, PARTIAL_VOLUME_SIGMA_MM)
    flair = np.where(maps.brain_mask, flair, 0.0)
    to_uint8 = lambda v: np.clip(np.round(v / v.max() * 255), 0, 255).astype(np.uint8)  # noqa: E731
    out = config.DATA_DIR
    out.mkdir(parents=True, exist_ok=True)
    write_nifti_reproducibly(to_uint8(flair), maps.affine, config.FLAIR_TEMPLATE)
    write_nifti_reproducibly(to_uint8(maps.t1), maps.affine, config.T1W_TEMPLATE)
    write_nifti_reproducibly(maps.brain_mask.astype(np.uint8), maps.affine, config.BRAIN_MASK)
    write_nifti_reproducibly(
        tissue_labels(maps.csf, maps.gm, maps.wm, maps.brain_mask), maps.affine, config.TISSUE_LABELS
    )
    notice = {
        "Name": "flairqc templates in MNI152NLin2009aSym",
        "DerivedFrom": "ICBM 2009a nonlinear symmetric T1, GM and WM maps as shipped by nilearn "
        "(tissue labels: the most probable of CSF, GM, WM)",
        "Script": "tools/derive_templates.py",
        "FLAIRClassIntensities": {"CSF": FLAIR_CSF, "GM": FLAIR_GM, "WM": FLAIR_WM},
        "TissueLabels": TISSUE_LABELS,
        "License": MNI_COPYRIGHT,
    }
    (out / "templates.json").write_text(json.dumps(notice, indent=2) + "\n")
    print(f"wrote templates to {out}")


if __name__ == "__main__":
    main()
