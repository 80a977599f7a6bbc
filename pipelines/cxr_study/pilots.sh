#!/usr/bin/env bash
# Issue-12 study, step 2: short pilot runs of candidate CPU recipes on the NIH cohort (all train
# abnormals), each for the same wall-clock budget, quality tracked by the cohort's judge.
# Run after prepare.py. Quality vs time: runs/cxr_study/pilots/<name>/quality.csv (copied to results/).
#   bash pipelines/cxr_study/pilots.sh [MINUTES] [NAME ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
MIN=${1:-10}; shift || true
PY=${XRAYMUNIT_VENV:-.venv}/bin/python
COHORT=runs/cxr_study/cohort_nih
OUT=runs/cxr_study/pilots
RES=results/cxr_nih_lowdata/pilots
BASE=(--config configs/munit_cxr_128_cpu.yaml --cohort "$COHORT" --no-progress
      --set "train.time_limit_minutes=$MIN" --set train.quality_every=100)
declare -A PILOT=(
  # the issue's earlier pilot shape: 64², dim 16, 4 residual blocks, 3 discriminator scales
  [p64]="model.n_res=4 model.dis_scales=3 model.dis_layers=3 data.load_size=64 data.crop_size=64 train.quality_every=200"
  [p128]=""                                        # the recipe candidate as configured
  [p128_div]="loss.diversity=1.0"                  # + mode-seeking diversity term
  [p128_div01]="loss.diversity=0.1"                # + the same term, ten times weaker
  [p128_style]="loss.style_recon=10.0 loss.cycle=10.0"  # the paper's own knobs: stronger style recon + cycle
  [p128_perc]="loss.perceptual=1.0"               # perceptual ablation (random VGG relu2_2)
)
NAMES=("$@"); [ ${#NAMES[@]} -eq 0 ] && NAMES=(p128 p128_div p128_style)
mkdir -p "$OUT" "$RES"
for name in "${NAMES[@]}"; do
  sets=(); for kv in ${PILOT[$name]}; do sets+=(--set "$kv"); done
  resume=(); [ -f "$OUT/$name/checkpoints/last.pt" ] && resume=(--resume)
  echo "[pilot] $name: ${PILOT[$name]:-(recipe)} for $MIN min; $(uptime)"
  "$PY" -m xraymunit train "${BASE[@]}" "${sets[@]}" --out "$OUT/$name" "${resume[@]}"
  mkdir -p "$RES/$name"
  cp "$OUT/$name/quality.csv" "$OUT/$name/config.yaml" "$RES/$name/"
  echo "${PILOT[$name]}" > "$RES/$name/overrides.txt"
  echo "[pilot] $name done; $(uptime)"
done
