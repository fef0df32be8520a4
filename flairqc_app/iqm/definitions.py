"""What each FLAIR image-quality metric (IQM) means: one spec per TSV column, for the data dictionary,
the README, the reports and the MRIQC-layout JSON export. Pure data (no numpy), so schema.py can import it.

Definitions follow Esteban et al. 2017 (MRIQC) and its documentation, adapted to FLAIR: CSF is nulled (dark),
grey matter is brighter than white matter, and white-matter hyperintensities (lesions) are bright.
"""

from __future__ import annotations

from dataclasses import dataclass

MRIQC = "Esteban O, et al. MRIQC. PLoS ONE 2017;12(9):e0184661, doi:10.1371/journal.pone.0184661"
MRIQC_URL = "https://doi.org/10.1371/journal.pone.0184661"
NO_BACKGROUND = (
    "n/a when the air is zeroed (skull-stripped image, or air masked by the scanner or a converter)."
)
MASKS = (
    "Tissue masks: the template's CSF, GM and WM labels brought into native space through the inverse of "
    "the preprocessing affine, refined by a three-class intensity fit (prior-weighted Gaussian mixture) of "
    "the N4-corrected image inside the brain mask; bright deep-WM voxels are lesions, kept out of GM and WM."
)
DIMENSIONLESS = "dimensionless"


@dataclass(frozen=True)
class Iqm:
    column: str  # TSV column
    mriqc_key: str  # key in the MRIQC-layout JSON export (MRIQC's own name where the measure is the same)
    family: str  # noise, contrast, artefacts, bias and lesions
    long_name: str
    definition: str
    units: str
    space: str  # where it is computed: native or template
    reference: str
    url: str
    better: (
        str  # "higher", "lower" or "neither": which direction means better quality (reports, second opinion)
    )
    not_available: str = "n/a when the tissue masks are empty or the computation fails (reason in iqm_notes)."

    @property
    def description(self) -> str:
        return f"{self.definition} Space: {self.space}. Reference: {self.reference}. {self.not_available}"


IQMS: tuple[Iqm, ...] = (
    Iqm(
        "iqm_snr_wm",
        "snr_wm",
        "noise",
        "SNR in white matter",
        "Mean over standard deviation (n-1) of N4-corrected WM intensities (lesions excluded), as MRIQC's snr_wm.",
        DIMENSIONLESS,
        "native",
        MRIQC,
        MRIQC_URL,
        "higher",
    ),
    Iqm(
        "iqm_snr_brain",
        "snr_total",
        "noise",
        "SNR in the brain",
        "Mean of the GM and WM SNRs; MRIQC's snr_total also averages CSF, left out because FLAIR nulls it.",
        DIMENSIONLESS,
        "native",
        MRIQC,
        MRIQC_URL,
        "higher",
    ),
    Iqm(
        "iqm_snrd_wm",
        "snrd_wm",
        "noise",
        "Dietrich SNR in white matter",
        "Mean raw WM intensity over the noise sigma of the air, sigma = std(air) * sqrt(2 / (4 - pi)) "
        "(the Rayleigh correction of a magnitude image's background), as MRIQC's snrd_wm.",
        DIMENSIONLESS,
        "native",
        "Dietrich O, et al. J Magn Reson Imaging 2007;26:375-385, doi:10.1002/jmri.20969; " + MRIQC,
        "https://doi.org/10.1002/jmri.20969",
        "higher",
        NO_BACKGROUND,
    ),
    Iqm(
        "iqm_noise_tissue",
        "flair_noise_tissue",
        "noise",
        "Noise sigma in tissue",
        "Robust noise sigma in white matter, from the median absolute deviation of 3D Laplacian responses "
        "inside the WM eroded by one voxel (Immerkaer's estimator in 3D), over the WM median: a relative noise "
        "level that needs no air, valid when the air was zeroed.",
        "fraction of the WM median",
        "native",
        "Immerkaer J. Comput Vis Image Underst 1996;64:300-302, doi:10.1006/cviu.1996.0060",
        "https://doi.org/10.1006/cviu.1996.0060",
        "lower",
    ),
    Iqm(
        "iqm_cnr",
        "cnr",
        "contrast",
        "GM/WM contrast-to-noise ratio",
        "|mean GM - mean WM| / sqrt(var GM + var WM), N4-corrected, lesions excluded. MRIQC adds the air "
        "variance under the root; FLAIR air is often zeroed, so the tissue variances (which carry the noise) "
        "stand alone and images with and without air compare.",
        DIMENSIONLESS,
        "native",
        "Magnotta VA, Friedman L. J Digit Imaging 2006;19:140-147, doi:10.1007/s10278-006-0264-x; " + MRIQC,
        "https://doi.org/10.1007/s10278-006-0264-x",
        "higher",
    ),
    Iqm(
        "iqm_cjv",
        "cjv",
        "contrast",
        "Coefficient of joint variation of GM and WM",
        "(std WM + std GM) / |mean WM - mean GM|, N4-corrected, lesions excluded, as MRIQC's cjv.",
        DIMENSIONLESS,
        "native",
        "Ganzetti M, et al. Front Neuroinform 2016;10:10, doi:10.3389/fninf.2016.00010; " + MRIQC,
        "https://doi.org/10.3389/fninf.2016.00010",
        "lower",
    ),
    Iqm(
        "iqm_wm2max",
        "wm2max",
        "contrast",
        "White matter to maximum intensity ratio",
        "Median WM intensity over the 99.95th percentile of the head, N4-corrected, as MRIQC's wm2max; "
        "bright lesions or fat lower it; MRIQC expects 0.6 to 0.8 in T1w.",
        DIMENSIONLESS,
        "native",
        MRIQC,
        MRIQC_URL,
        "neither",
    ),
    Iqm(
        "iqm_efc",
        "efc",
        "artefacts",
        "Entropy focus criterion",
        "Shannon entropy of the voxel intensities normalised by the image energy, over the whole raw image, "
        "scaled to [0, 1] by its value for a uniform image, as MRIQC's efc: ghosting and blurring raise it.",
        DIMENSIONLESS,
        "native",
        "Atkinson D, et al. IEEE Trans Med Imaging 1997;16:903-910, doi:10.1109/42.650886; " + MRIQC,
        "https://doi.org/10.1109/42.650886",
        "lower",
        "n/a when the image is empty.",
    ),
    Iqm(
        "iqm_fber",
        "fber",
        "artefacts",
        "Foreground-background energy ratio",
        "Median squared raw intensity in the head over the median squared intensity of the air, as MRIQC's fber.",
        DIMENSIONLESS,
        "native",
        "Shehzad Z, et al. The Preprocessed Connectomes Project Quality Assessment "
        "Protocol. Front Neuroinform 2015, doi:10.3389/conf.fninf.2015.91.00028; " + MRIQC,
        "https://doi.org/10.3389/conf.fninf.2015.91.00028",
        "higher",
        NO_BACKGROUND,
    ),
    Iqm(
        "iqm_qi1",
        "qi_1",
        "artefacts",
        "Artefact fraction of the background (QI1)",
        "Share of air voxels (more than 10 mm from the head) brighter than the air median + 4 robust sigmas "
        "after a 3D opening: signal that artefacts (motion, ghosts) put in the air, as MRIQC's qi_1.",
        "fraction of air voxels",
        "native",
        "Mortamet B, et al. Magn Reson Med 2009;62:365-372, doi:10.1002/mrm.21992; " + MRIQC,
        "https://doi.org/10.1002/mrm.21992",
        "lower",
        NO_BACKGROUND,
    ),
    Iqm(
        "iqm_gsr",
        "gsr",
        "artefacts",
        "Ghost-to-signal ratio along phase encoding",
        "(mean of the ghost region - mean of the other air) / mean of the head, the ghost region being the "
        "head shifted by half the field of view along PhaseEncodingDirection, as MRIQC's gsr.",
        DIMENSIONLESS,
        "native",
        "Giannelli M, et al. J Appl Clin Med Phys 2010;11(4):3237, doi:10.1120/jacmp.v11i4.3237; " + MRIQC,
        "https://doi.org/10.1120/jacmp.v11i4.3237",
        "lower",
        "n/a without PhaseEncodingDirection in the sidecar, and " + NO_BACKGROUND,
    ),
    *(
        Iqm(
            f"iqm_fwhm_{axis}",
            f"fwhm_{axis}",
            "artefacts",
            f"Smoothness along {axis}",
            f"Full width at half maximum of the image's spatial autocorrelation along the {axis} voxel axis, "
            "from the variance of first differences inside the brain (AFNI 3dFWHMx classic method), N4-corrected.",
            "mm",
            "native",
            "Forman SD, et al. Magn Reson Med 1995;33:636-647, doi:10.1002/mrm.1910330508; " + MRIQC,
            "https://doi.org/10.1002/mrm.1910330508",
            "lower",
        )
        for axis in ("x", "y", "z")
    ),
    Iqm(
        "iqm_fwhm_avg",
        "fwhm_avg",
        "artefacts",
        "Smoothness (mean FWHM)",
        "Mean of iqm_fwhm_x, iqm_fwhm_y and iqm_fwhm_z, as MRIQC's fwhm_avg.",
        "mm",
        "native",
        MRIQC,
        MRIQC_URL,
        "lower",
    ),
    Iqm(
        "iqm_inu_med",
        "inu_med",
        "bias and lesions",
        "Median of the bias field",
        "Median of the N4 bias field that preprocessing estimated, inside the brain, as MRIQC's inu_med.",
        DIMENSIONLESS,
        "native",
        "Tustison NJ, et al. N4ITK. IEEE Trans Med Imaging 2010;29:1310-1320, doi:10.1109/TMI.2010.2046908; "
        + MRIQC,
        "https://doi.org/10.1109/TMI.2010.2046908",
        "neither",
    ),
    Iqm(
        "iqm_inu_range",
        "inu_range",
        "bias and lesions",
        "Range of the bias field",
        "95th minus 5th percentile of the N4 bias field inside the brain, over its median (MRIQC's inu_range, "
        "made independent of N4's arbitrary scale): the intensity non-uniformity.",
        "fraction of the median",
        "native",
        "Tustison NJ, et al. N4ITK. IEEE Trans Med Imaging 2010;29:1310-1320, doi:10.1109/TMI.2010.2046908; "
        + MRIQC,
        "https://doi.org/10.1109/TMI.2010.2046908",
        "lower",
    ),
    Iqm(
        "iqm_wmh_fraction",
        "flair_wmh_fraction",
        "bias and lesions",
        "White-matter hyperintensity fraction",
        "Share of the brain parenchyma (GM, WM and lesions) taken by lesions: deep-WM voxels (2 mm inside the "
        "WM label) brighter than the GM mean + 2 GM sigmas, so that lesion load is not read as poor contrast.",
        "fraction of the parenchyma",
        "native",
        "Schmidt P, et al. NeuroImage 2012;59:3774-3783, doi:10.1016/j.neuroimage.2011.11.032 (hyperintensity "
        "relative to GM in FLAIR); flairqc's own threshold",
        "https://doi.org/10.1016/j.neuroimage.2011.11.032",
        "lower",
    ),
)
IQMS_BY_COLUMN = {iqm.column: iqm for iqm in IQMS}
IQM_COLUMNS = tuple(iqm.column for iqm in IQMS)
NOTES_COLUMN = "iqm_notes"
NOTES_DESCRIPTION = (
    "Why an image-quality metric is n/a for this image: 'column: reason' pairs, ';'-separated "
    "(e.g. 'iqm_fber: background zeroed'; 'all IQMs: failed (...)' when the masks could not be "
    "made); n/a when every metric was computed. " + MASKS
)
FAMILIES = ("noise", "contrast", "artefacts", "bias and lesions")
