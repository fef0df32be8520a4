#!/usr/bin/env bash
# The default motion models (docs/model-history.md#attempt-16), from the repository root:
#   bash tools/default-models/train-motion.sh WORK_DIR [JOBS]
# Renders data-motion.toml's cache into WORK_DIR/cache-motion (reused: only missing images are rendered), trains
# each motion model four times (seeds 0-3: initial weights, batch order, augmentations, validation fold) and makes
# each task the median ensemble of its four runs, its threshold on the validation part (WORK_DIR/ensembles/<task>).
# train.sh calls it; run alone, it is the motion half of the recipe. Why four runs and a median: one run's reading
# of an image unlike the synthetic ones depends on its seed (attempt 13), and a mean follows one member (attempt 15).
set -euo pipefail
here=$(dirname "$0")
work=${1:?usage: train-motion.sh WORK_DIR [JOBS]}
jobs=${2:-2}
cache=$work/cache-motion
export OMP_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1  # JOBS workers of one thread fill JOBS cores

flairqc-train synth-cache --recipe "$here/data-motion.toml" --cache "$cache" --jobs "$jobs"

# SSDA as the other artefact models, with each image's head (all outside the brain + 6 mm) swapped with another's
# half the time, so that the head carries no label (attempt 14)
tasks="motion_moderate motion_severe"
rm -rf "$work/runs-motion" "$work/ensembles"  # every run is trained afresh
for task in $tasks; do for seed in 0 1 2 3; do echo "$task $seed"; done; done |
  xargs -P "$jobs" -L 1 sh -c 'flairqc-train train --cache "$1" --config "$2/train.toml" --only-fold 0 --threads 1 \
    --task "$4" --seed "$5" --method ssda --augment=flip,fov_cut,head_swap --run "$3/runs-motion/$4-seed$5" \
    > "$3/train-$4-seed$5.log" 2>&1' _ "$cache" "$here" "$work"

for task in $tasks; do
  flairqc-train ensemble --combine median --runs "$work/runs-motion/$task"-seed* --out "$work/ensembles/$task"
done
