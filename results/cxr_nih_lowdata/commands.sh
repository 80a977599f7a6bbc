#!/usr/bin/env bash
# The exact commands behind results/cxr_nih_lowdata/ (run from the repository root, after
# `bash pipelines/setup_env.sh`; they read ../shared/data/cxr, which a user's clone does not have).
set -euo pipefail
PY=.venv/bin/python
# 1. cohorts (NIH part, COVID radiography part, whole set) + the shortcut test on each
$PY pipelines/cxr_study/prepare.py
$PY pipelines/cxr_study/prepare.py --only nih --window percentile   # does percentile windowing remove it?
$PY pipelines/cxr_study/view_check.py                              # is the NIH intensity shortcut the view?
$PY pipelines/cxr_study/prepare.py --only nih --contrast equalize --judge   # does histogram equalisation remove it?
# 2. pilots of the CPU recipe, 7 minutes each on all NIH train images (the judge is trained on first use)
bash pipelines/cxr_study/pilots.sh 7
bash pipelines/cxr_study/pilots.sh 7 p128_div01                   # after the weight-1 pilot destroyed anatomy
# 3. the low-data study: one generator per level (K = 5, 10, 25), synthesis, classifier arms 1-4, 3 seeds.
#    First sitting with train.time_limit_minutes=10 in pipeline_nih.yaml; its report and quality rows were
#    kept before the second sitting resumed the same generators to 40 minutes (the yaml's value now):
#      cp -r runs/cxr_study/nih_per_level/report runs/cxr_study/report_10min
#      for k in 5 10 25; do cp runs/cxr_study/nih_per_level/train_$k/quality.csv runs/cxr_study/quality_10min_$k.csv; done
$PY pipelines/normal_to_abnormal.py --config pipelines/cxr_study/pipeline_nih.yaml
# 4. does the judge call translations abnormal for more than their intensities? (histogram-matching control)
#    (run once after each sitting: K25_10min.json from the 10-minute generator, K25_40min.json from the 40-minute one)
$PY pipelines/cxr_study/intensity_control.py --synth runs/cxr_study/nih_per_level/synth_25 \
    --train-run runs/cxr_study/nih_per_level/train_25 --out results/cxr_nih_lowdata/intensity_control/K25_40min.json
# 4b. the same control as a classifier arm: histogram-matched normals in place of the translations
$PY pipelines/cxr_study/histogram_arm.py
# 5. perceptual-loss ablation at equal budget (K = 25, 10 minutes, loss.perceptual=1)
bash pipelines/cxr_study/ablation_perceptual.sh 10
# The second sitting ran steps 3, 4 and 5 from a git worktree of commit a323d7b (so edits to the working
# tree could not change a running job): PYTHONPATH=<worktree> with runs/ linked into it; 4b and the
# --contrast equalize prepare ran from commit 8e26a90 (the option is new there).
# 6. gather metrics.json + summary.md (+ small PNGs)
$PY pipelines/cxr_study/publish.py
# 7. (issue 21, a later sitting; the work folder was gone) interpretation.md rewritten as a template whose every
#    number is a metrics.json path; Holm-adjusted p and point differences derived from the stored numbers:
$PY pipelines/cxr_study/publish.py --rederive
