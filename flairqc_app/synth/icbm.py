"""The ICBM 2009a symmetric maps (T1, grey matter, white matter, brain mask) that nilearn ships, plus CSF.

Used to derive flairqc's FLAIR-contrast template and by the synthetic data engine. nilearn is only needed
here, at template-derivation or synthesis time, never by the BIDS-App at run time.

The ICBM 2009 maps are Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal
Neurological Institute, McGill University (see MNI_COPYRIGHT in this module).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MNI_COPYRIGHT = (
    "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, "
    "McGill University. Permission to use, copy, modify, and distribute this software and its documentation "
    "for any purpose and without fee is hereby granted, provided that the above copyright notice appear in "
    "all copies. The authors and McGill University make no representations about the suitability of this "
    "software for any purpose. It is provided 'as is' without express or implied warranty. The authors are "
    "not responsible for any data loss, equipment damage, property loss, or injury to subjects or patients "
    "resulting from the use or misuse of this software package."
)


@dataclass(frozen=True)
class IcbmMaps:
    """Probability maps in [0, 1] on the ICBM 2009a 1 mm grid (197 x 233 x 189, RAS)."""

    affine: np.ndarray
    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain_mask: np.ndarray  # bool
    csf: np.ndarray


def load_icbm_maps() -> IcbmMaps:
    """Load the maps from nilearn's package data (no download) and derive CSF as mask - GM - WM."""
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=1)
    t1 = np.asarray(t1_img.get_fdata(), dtype=np.float32)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).get_fdata(), dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).get_fdata(), dtype=np.float32)
    mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata() > 0
    csf = np.where(mask, np.clip(1.0 - gm - wm, 0.0, 1.0), 0.0).astype(np.float32)
    return IcbmMaps(affine=t1_img.affine.copy(), t1=t1, gm=gm, wm=wm, brain_mask=mask, csf=csf)
