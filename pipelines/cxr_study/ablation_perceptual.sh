#!/usr/bin/env bash
# Issue-12 study, step 4: the perceptual-loss ablation at equal budget. The K = 25 generator of
# the per-level study again, same 25 real abnormals, same seed, same 10-minute wall-clock budget
# as that generator's first sitting, with loss.perceptual = 1 (seeded random VGG16 relu2_2: no
# ImageNet weights offline). Compared with the perceptual-0 generator's first 10 minutes
# (its quality.csv rows up to 600 s, and the first study's K = 25 classifier arms).
# Run after pipeline_nih.yaml (it reuses that cohort, its judge and train_25's resolved config).
#   bash pipelines/cxr_study/ablation_perceptual.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/../.."
MIN=${1:-10}
PY=${XRAYMUNIT_VENV:-.venv}/bin/python
STUDY=runs/cxr_study/nih_per_level
OUT=runs/cxr_study/ablation_perceptual_25
resume=(); [ -f "$OUT/train/checkpoints/last.pt" ] && resume=(--resume)
"$PY" -m xraymunit train --config "$STUDY/train_25/config.yaml" --cohort "$STUDY/cohort" \
  --out "$OUT/train" --no-progress "${resume[@]}" \
  --set "train.time_limit_minutes=$MIN" --set loss.perceptual=1.0
"$PY" -m xraymunit synthesize --checkpoint "$OUT/train/last" --cohort "$STUDY/cohort" \
  --out "$OUT/synth_25" --n-styles 10 --split train --direction a2b --seed 0 --no-progress
"$PY" -m xraymunit evaluate --cohort "$STUDY/cohort" --config configs/evaluate_cpu.yaml \
  --set "real_abnormal_subset=shared" --real-abnormal 25 \
  --synthetic "25=$OUT/synth_25" --training-run "25=$OUT/train" --out "$OUT/report" --no-progress
