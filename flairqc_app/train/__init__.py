"""flairqc-train: train the paper's SSDA quality-control models on a site's own labels and export them.

Modules, one job each: `settings` (every hyperparameter), `labels` (labels.tsv, task labels, tiers),
`cache` (preprocess once into .npy volumes), `splits` (participant-grouped test split and k folds), `pools`
(which cached volumes feed which stream), `streams` (the three mini-batch streams), `models` (Conv5_FC3,
compact head, GRL, SSDA network), `schedules` (eq. 2 and 3), `methods` (SSDA and the baselines as settings
of one loop), `loop` (one fold), `runner` (k folds, selection, threshold), `metrics`, `evaluate`, `report`,
`export` (ONNX + models.json) and `cli`. torch is imported only by the modules that need it.
"""
