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
from flairqc_app.icbm import MNI_COPYRIGHT, load_icbm_maps

# Relative FLAIR signal per tissue class (0..1): nulled CSF, WM darker than GM.
FLAIR_CSF, FLAIR_GM, FLAIR_WM = 0.06, 0.80, 0.55
PARTIAL_VOLUME_SIGMA_MM = 0.5


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
    notice = {
        "Name": "flairqc templates in MNI152NLin2009aSym",
        "DerivedFrom": "ICBM 2009a nonlinear symmetric T1, GM and WM maps as shipped by nilearn",
        "Script": "tools/derive_templates.py",
        "FLAIRClassIntensities": {"CSF": FLAIR_CSF, "GM": FLAIR_GM, "WM": FLAIR_WM},
        "License": MNI_COPYRIGHT,
    }
    (out / "templates.json").write_text(json.dumps(notice, indent=2) + "\n")
    print(f"wrote templates to {out}")


if __name__ == "__main__":
    main()
