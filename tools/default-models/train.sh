#!/usr/bin/env bash
# Train, evaluate and export flairqc's default models (docs/model-card.md), from the repository root:
#   bash tools/default-models/train.sh WORK_DIR [JOBS]
# WORK_DIR receives the synthetic caches (reused: only missing images are rendered), the runs and the test evaluation;
# the ONNX models and models.json go to flairqc_app/data/models. JOBS (default 2) parallel workers render
# the caches and, with one torch thread each, train the models side by side. Seeds are fixed
# (data.toml, data-motion.toml, train.toml, train-motion.sh): a rerun gives the same models on the same kind of
# machine. The straight-reject, noise and contrast models train on data.toml's cache (set 1.1.0's), the motion
# models on data-motion.toml's, as ensembles (train-motion.sh, attempt 16).
set -euo pipefail
here=$(dirname "$0")
work=${1:?usage: train.sh WORK_DIR [JOBS]}
jobs=${2:-2}
cache=$work/cache
# one thread per worker: JOBS workers fill JOBS cores
export OMP_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1

# renders only the images not cached yet (journalled), so an interrupted or extended cache resumes
flairqc-train synth-cache --recipe "$here/data.toml" --cache "$cache" --jobs "$jobs"

# task:method[:option] of each model but the motion models: straight reject target-only (the paper has no SSDA
# model for it), with the synthetic T1w as further rejects (a T1w saved as FLAIR is one); the artefact models SSDA
# (paper section 2.4), each its own model; the contrast models see only the brain (+ 6 mm), where grey/white
# contrast is judged, not the engine's scalp (docs/model-history.md#attempt-7).
models="straight_reject:target-only:--source-as-rejects noise_moderate:ssda noise_severe:ssda
contrast_moderate:ssda:--input-region=brain contrast_severe:ssda:--input-region=brain"
rm -rf "$work/runs"  # every model is trained afresh
printf '%s\n' $models | xargs -P "$jobs" -I{} sh -c 'task=${4%%:*} rest=${4#*:}; method=${rest%%:*} option=
  [ "$rest" = "$method" ] || option=${rest#*:}
  flairqc-train train --cache "$1" --config "$2/train.toml" --only-fold 0 --threads 1 --run "$3/runs/$task" \
    --task "$task" --method "$method" $option > "$3/train-$task.log" 2>&1' _ "$cache" "$here" "$work" {}

bash "$here/train-motion.sh" "$work" "$jobs"

# each model's test figures on its own cache's test split (the manifest's provenance), then the set as shipped,
# tiers included, on the motion cache's test split (data.toml's test images, motion drawn as the motion models')
flairqc-train evaluate --runs "$work"/runs/* --name flairqc-default --out "$work/eval-runs"
flairqc-train evaluate --runs "$work"/ensembles/* --name flairqc-default --out "$work/eval-ensembles"
rm -rf "$work/models"
describe="flairqc default models: trained on synthetic data only (docs/model-card.md)"
# model versions: 1.1.0 for the five models unchanged since set 1.1.0 (same data, settings and seeds), 1.2.0 for
# the motion ensembles
flairqc-train export --runs "$work"/runs/* --models-dir "$work/models" --metrics "$work/eval-runs" \
    --name flairqc-default --model-version 1.1.0 --manifest-version 1.2.0 --description "$describe"
flairqc-train export --runs "$work"/ensembles/* --models-dir "$work/models" --metrics "$work/eval-ensembles" \
    --model-version 1.2.0
flairqc-train evaluate --models-dir "$work/models" --cache "$work/cache-motion" --name flairqc-default \
    --out "$work/eval"
rm -rf flairqc_app/data/models && cp -r "$work/models" flairqc_app/data/models
