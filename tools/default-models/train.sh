#!/usr/bin/env bash
# Train, evaluate and export flairqc's default models (docs/model-card.md), from the repository root:
#   bash tools/default-models/train.sh WORK_DIR [JOBS]
# WORK_DIR receives the synthetic cache, the runs and the test evaluation; the ONNX models and models.json go
# to flairqc_app/data/models. Seeds are fixed (data.toml, train.toml): a rerun on CPU gives the same models.
set -euo pipefail
here=$(dirname "$0")
work=${1:?usage: train.sh WORK_DIR [JOBS]}
jobs=${2:-2}
cache=$work/cache
train() { flairqc-train train --cache "$cache" --config "$here/train.toml" --only-fold 0 --run "$work/runs/$1" --task "$1" --method "$2"; }

flairqc-train synth-cache --recipe "$here/data.toml" --cache "$cache" --jobs "$jobs"

# straight reject: target-only (the paper has no SSDA model for it; the synthetic T1w source has no rejects)
train straight_reject target-only
# the six artefact models: SSDA (paper section 2.4), each its own model
train motion_moderate ssda
train motion_severe ssda
train noise_moderate ssda
train noise_severe ssda
train contrast_moderate ssda
train contrast_severe ssda

flairqc-train evaluate --runs "$work"/runs/* --name flairqc-default --out "$work/eval"
rm -rf "$work/models"
flairqc-train export --runs "$work"/runs/* --models-dir "$work/models" --metrics "$work/eval" \
    --name flairqc-default --model-version 1.0.0 \
    --description "flairqc default models: trained on synthetic data only (docs/model-card.md)"
rm -rf flairqc_app/data/models && cp -r "$work/models" flairqc_app/data/models
