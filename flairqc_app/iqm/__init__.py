"""FLAIR image-quality metrics (IQMs) after MRIQC (Esteban et al. 2017), computed beside the model verdicts.

definitions: what each metric means (data dictionary); masks: native-space head, air and tissue masks;
noise, contrast, artefacts, bias: the metrics by family; compute: all of them for one image, n/a with a reason
when one cannot be computed; ranking: percentiles within a run and the "second opinion" against the models.
"""
