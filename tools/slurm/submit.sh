#!/usr/bin/env bash
# flairqc on SLURM: one participant job per subject (a job array, all into one output directory: safe, every file is
# written to a temporary name, then renamed), then the group level as a job that waits for the array. `afterany`:
# the group level also runs when some task exits 1 (its failed images are rows with status `failed`).
#
# usage: tools/slurm/submit.sh BIDS_DIR OUTPUT_DIR [participant options, e.g. --models-dir /data/models]
#   FLAIRQC_SIF   the Singularity image (default flairqc-<version>.sif in the current directory)
#   FLAIRQC       how a job starts flairqc (default: singularity run --cleanenv on FLAIRQC_SIF, with the two
#                 directories bound at the same paths); tests/test_slurm.py sets it to the local install
#   FLAIRQC_CPUS, FLAIRQC_MEM, FLAIRQC_TIME   per participant task (default 2, 4G, 00:30:00); --nprocs
#                 follows FLAIRQC_CPUS (one image per CPU)
#   FLAIRQC_PER_TASK   subjects per array task (default 1): more pay the start-up once for several subjects
# Prints the two job ids; job logs go to OUTPUT_DIR/logs/slurm-<job>_<task>.out.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 BIDS_DIR OUTPUT_DIR [participant options]" >&2
    exit 64
fi
bids=$(realpath "$1")
out=$(realpath -m "$2")
shift 2
here=$(dirname "$(realpath "$0")")
sif=${FLAIRQC_SIF:-flairqc-0.1.0.sif}
export FLAIRQC=${FLAIRQC:-singularity run --cleanenv -B $bids:$bids:ro -B $out:$out $sif}

mkdir -p "$out/logs"
subjects="$out/logs/slurm-subjects-$(date +%Y%m%d-%H%M%S)-$$.txt"  # fixed at submission: tasks index into it
find "$bids" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' -printf '%f\n' | sort > "$subjects"
count=$(wc -l < "$subjects")
if [ "$count" -eq 0 ]; then
    echo "no sub-* folder in $bids" >&2
    exit 66
fi
per_task=${FLAIRQC_PER_TASK:-1}
tasks=$(( (count + per_task - 1) / per_task ))

array=$(sbatch --parsable --job-name=flairqc-participant --array="1-$tasks" \
    --cpus-per-task="${FLAIRQC_CPUS:-2}" --mem="${FLAIRQC_MEM:-4G}" --time="${FLAIRQC_TIME:-00:30:00}" \
    --output="$out/logs/slurm-%A_%a.out" "$here/participant.sbatch" "$subjects" "$per_task" "$bids" "$out" "$@")
group=$(sbatch --parsable --job-name=flairqc-group --dependency="afterany:$array" \
    --cpus-per-task=1 --mem=2G --time=00:10:00 --output="$out/logs/slurm-%j.out" \
    --wrap "$FLAIRQC $(printf '%q ' "$bids" "$out") group")
echo "participant array job $array ($tasks tasks for $count subjects), group job $group"
