#!/usr/bin/env bash
# Ingest a large DICOM archive on a SLURM cluster: a job array whose task I ingests shard I of N
# (`xraymunit ingest INPUT --out WORK/shard_I --shard I/N`), then one job, started only when every
# task succeeded (--dependency=afterok), merges the shards into the cohort.
#
# SUBMIT (from the folder the jobs should start in; xraymunit installed where the jobs run):
#
#   INPUT=/data/dicom LABELS=/data/labels.csv WORK=/scratch/ingest COHORT=/data/cohort SHARDS=16 \
#       bash pipelines/slurm/ingest_array.sh submit
#
# which runs `sbatch --array=1-16 ingest_array.sh task` and
# `sbatch --dependency=afterok:<array job> ingest_array.sh merge` and prints both job ids.
#
# WHAT TO EDIT: the #SBATCH lines below for your cluster (partition, account, time, memory,
# CPUs: each task decodes with --workers = its CPUs), and the settings (or set them in the
# environment when submitting: sbatch passes the environment on to the jobs):
#   INPUT        folder of DICOM studies (required)
#   COHORT       the cohort folder to write (required)
#   WORK         folder for the shard folders shard_1..shard_N (default: $COHORT.shards)
#   SHARDS       N, the number of array tasks (default 16)
#   LABELS       labels CSV, applied by the merge (optional)
#   SIZE         side of the cached images (default 256)
#   SALT_FILE    shared secret salt file (optional; default: COHORT/private/salt.key)
#   INGEST_ARGS  further ingest options, given to the tasks and to the merge alike, e.g.
#                "--window percentile --contrast equalize --modalities CR,DX"
#   XRAYMUNIT    the command (default: "python -m xraymunit"; e.g. "/opt/venv/bin/python -m xraymunit")
#   MERGE_SBATCH_ARGS  extra sbatch options of the merge job (e.g. "--cpus-per-task=2 --mem=8G")
#
# RERUNS RESUME. A task that is requeued (preemption, node failure: --requeue below) or simply
# resubmitted reruns the same command into the same shard folder and decodes only what its
# journal does not hold yet; a crashed run leaves no half entry (docs/guide/ingest.md, "Resume, scale,
# shards"). The merge checks that every shard finished with the same settings; rerun it after
# fixing a failed task with `sbatch --dependency=afterok:<job> ingest_array.sh merge`, or
# `bash ingest_array.sh merge` on a login node. The shards are numbered 1..N, as --shard I/N
# counts them, so the array is --array=1-N; it is given on the sbatch command line by `submit`
# (not as an #SBATCH line) because this same file is the merge job's script.
#
# SUBCOMMANDS
#   submit     submit the array and the dependent merge (needs sbatch)
#   task [I]   ingest shard I (default $SLURM_ARRAY_TASK_ID) into $WORK/shard_I
#   merge      merge $WORK/shard_1..shard_N into $COHORT
#   local      no scheduler: run the N tasks here, all at once, then the merge
#
#SBATCH --job-name=xraymunit-ingest
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=xraymunit-ingest-%A_%a.log

set -euo pipefail

SHARDS="${SHARDS:-16}"
SIZE="${SIZE:-256}"
read -r -a XM <<< "${XRAYMUNIT:-python -m xraymunit}"
read -r -a EXTRA <<< "${INGEST_ARGS:-}"

need() {
    if [[ -z "${!1:-}" ]]; then
        echo "ingest_array.sh: set $1 (see the top of this file)" >&2
        exit 2
    fi
}

common_args() {  # the options the tasks and the merge must share
    printf '%s\n' --size "$SIZE" --no-progress
    if [[ -n "${SALT_FILE:-}" ]]; then printf '%s\n' --salt-file "$SALT_FILE"; fi
    if (( ${#EXTRA[@]} )); then printf '%s\n' "${EXTRA[@]}"; fi
}

task() {
    need INPUT; need COHORT
    local i="${1:-${SLURM_ARRAY_TASK_ID:-}}"
    if [[ ! "$i" =~ ^[0-9]+$ ]] || (( i < 1 || i > SHARDS )); then
        echo "ingest_array.sh task: shard '$i' is not in 1..$SHARDS (give I, or run as array task 1-$SHARDS)" >&2
        exit 2
    fi
    local work="${WORK:-$COHORT.shards}" args
    mapfile -t args < <(common_args)
    mkdir -p "$work"
    "${XM[@]}" ingest "$INPUT" --out "$work/shard_$i" --shard "$i/$SHARDS" \
        --workers "${WORKERS:-${SLURM_CPUS_PER_TASK:-1}}" "${args[@]}"
}

merge() {
    need COHORT
    local work="${WORK:-$COHORT.shards}" parts=() args i
    for (( i = 1; i <= SHARDS; i++ )); do parts+=("$work/shard_$i"); done
    mapfile -t args < <(common_args)
    if [[ -n "${LABELS:-}" ]]; then args+=(--labels "$LABELS"); fi
    "${XM[@]}" ingest --merge "${parts[@]}" --out "$COHORT" "${args[@]}"
}

submit() {
    need INPUT; need COHORT
    local script array_job merge_job merge_args=()
    script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
    read -r -a merge_args <<< "${MERGE_SBATCH_ARGS:-}"
    array_job=$(sbatch --parsable --array="1-$SHARDS" "$script" task)
    array_job="${array_job%%;*}"  # --parsable prints "jobid[;cluster]"
    merge_job=$(sbatch --parsable --dependency="afterok:$array_job" --job-name=xraymunit-ingest-merge \
        --output=xraymunit-ingest-merge-%j.log "${merge_args[@]}" "$script" merge)
    echo "array job $array_job (shards 1-$SHARDS), merge job ${merge_job%%;*} (after every shard succeeded)"
}

run_local() {
    local pids=() i failed=0
    for (( i = 1; i <= SHARDS; i++ )); do task "$i" & pids+=($!); done
    for i in "${pids[@]}"; do wait "$i" || failed=1; done
    if (( failed )); then
        echo "ingest_array.sh local: a shard failed; rerun to resume" >&2
        exit 1
    fi
    merge
}

case "${1:-}" in
    submit) submit ;;
    task) task "${2:-}" ;;
    merge) merge ;;
    local) run_local ;;
    *) sed -n '2,42p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
