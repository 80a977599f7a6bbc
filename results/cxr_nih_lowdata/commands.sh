#!/usr/bin/env bash
# The exact commands behind results/cxr_nih_lowdata/ (run from the repository root, after
# `bash pipelines/setup_env.sh`; they read ../shared/data/cxr, which a user's clone does not have).
set -euo pipefail
PY=.venv/bin/python
# 1. cohorts (NIH part, COVID radiography part, whole set) + the shortcut test on each
$PY pipelines/cxr_study/prepare.py
$PY pipelines/cxr_study/prepare.py --only nih --window percentile   # does percentile windowing remove it?
$PY pipelines/cxr_study/view_check.py                              # is the NIH intensity shortcut the view?
# 2. pilots of the CPU recipe, 7 minutes each on all NIH train images (the judge is trained on first use)
bash pipelines/cxr_study/pilots.sh 7
bash pipelines/cxr_study/pilots.sh 7 p128_div01                   # after the weight-1 pilot destroyed anatomy
# 3. the low-data study: one generator per level (K = 5, 10, 25), synthesis, classifier arms 1-4, 3 seeds
$PY pipelines/normal_to_abnormal.py --config pipelines/cxr_study/pipeline_nih.yaml
# 4. gather metrics.json + summary.md (+ small PNGs)
$PY pipelines/cxr_study/publish.py
