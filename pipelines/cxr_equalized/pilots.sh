#!/usr/bin/env bash
# Issue-20 pilots: which CPU recipe for the equalised-cohort study (results/cxr_nih_equalized/).
# Four variants of configs/munit_cxr_128_cpu.yaml at 64² for the same number of steps on the NIH
# cohort ingested with --contrast equalize (pipelines/cxr_study/prepare.py --only nih --contrast
# equalize --judge --work runs/cxr_equalized: the study's salt and split), quality tracked by that
# cohort's judge. Equal steps, not equal minutes: other jobs shared the 2 cores while they ran, so
# wall-clock budgets would have measured the load, not the recipe (quality.csv still has the seconds).
#   [PARALLEL=1] bash pipelines/cxr_equalized/pilots.sh [STEPS] [NAME ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-600}; shift || true
PY=${XRAYMUNIT_PYTHON:-${XRAYMUNIT_VENV:-.venv}/bin/python}
COHORT=${COHORT:-runs/cxr_equalized/cohort_nih_equalize}
OUT=${PILOT_OUT:-runs/cxr_equalized/pilots}
RES=${PILOT_RES:-results/cxr_nih_equalized/pilots}
BASE=(--config configs/munit_cxr_128_cpu.yaml --cohort "$COHORT" --no-progress
      --set "train.steps=$STEPS" --set train.time_limit_minutes=0 --set train.quality_every=150
      --set train.checkpoint_every=50 --set data.load_size=64 --set data.crop_size=64
      --set model.n_res=4 --set model.dis_scales=3 --set model.dis_layers=3)
AUG="loss.d_augment=[brightness,contrast,translation,cutout]"
RESID="model.output=residual_mask loss.identity=1.0 loss.mask_sparsity=0.1 loss.mask_smoothness=0.1"
declare -A PILOT=(
  [base]=""                 # today's model (the CPU recipe at 64²)
  [aug]="$AUG"              # + differentiable augmentation of everything the discriminators see
  [resid]="$RESID"          # + the local-change output with its identity / mask terms
  [both]="$AUG $RESID"      # both
  # second round, after the first one's grids: resid changed one region, the same for every style
  [resid_div]="$RESID loss.diversity=1.0"   # + the mode-seeking term: do styles then change different places?
  [resid_noid]="model.output=residual_mask loss.mask_sparsity=0.1 loss.mask_smoothness=0.1"  # no identity term (+22-46 % per step)
)
NAMES=("$@"); [ ${#NAMES[@]} -eq 0 ] && NAMES=(base aug resid both)
mkdir -p "$OUT" "$RES"
run_pilot() {
  local name=$1 sets=() resume=()
  for kv in ${PILOT[$name]}; do sets+=(--set "$kv"); done
  [ -f "$OUT/$name/checkpoints/last.pt" ] && resume=(--resume)
  echo "[pilot] $name: ${PILOT[$name]:-(recipe)} for $STEPS steps; $(date -u +%H:%M) load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$PY" -m xraymunit train "${BASE[@]}" "${sets[@]}" --out "$OUT/$name" "${resume[@]}" > "$OUT/$name.log" 2>&1
  # a look at the translations: 4 val normals × 4 styles with change maps, from the last checkpoint
  "$PY" -m xraymunit synthesize --checkpoint "$OUT/$name/checkpoints/last.pt" --cohort "$COHORT" \
      --out "$OUT/$name/synth_val" --split val --limit 4 --n-styles 4 --change-maps --no-progress >> "$OUT/$name.log" 2>&1
  mkdir -p "$RES/$name"
  "$PY" pipelines/cxr_equalized/pilot_grid.py "$OUT/$name/synth_val" "$COHORT" "$RES/$name/grid.png"
  cp "$OUT/$name/quality.csv" "$OUT/$name/config.yaml" "$RES/$name/"
  "$PY" pipelines/cxr_study/results_files.py "$OUT/$name/quality.png" "$RES/$name/quality.png" --palette  # a line plot: 256 colours
  echo "${PILOT[$name]}" > "$RES/$name/overrides.txt"
  echo "[pilot] $name done; $(date -u +%H:%M) load $(cut -d' ' -f1-3 /proc/loadavg)"
}
# PARALLEL=1: every pilot at once, one thread each, so that whenever the sitting ends they have all
# trained about as many steps (rerun the same command to resume them from their last checkpoints).
for name in "${NAMES[@]}"; do
  if [ "${PARALLEL:-0}" = 1 ]; then OMP_NUM_THREADS=1 run_pilot "$name" & else run_pilot "$name"; fi
done
wait
"$PY" pipelines/cxr_equalized/pilot_table.py "$RES"
