#!/usr/bin/env bash
# The exact commands behind results/cxr_nih_equalized/ (run from the repository root after
# `bash pipelines/setup_env.sh`; they read ../shared/data/cxr, which a user's clone does not have).
set -euo pipefail
PY=.venv/bin/python
# 1. cohort with the committed salt, shortcut test, judge (issue 20 pilots and issue 21 study share the split)
mkdir -p runs/cxr_equalized && cp results/cxr_nih_equalized/salt.key runs/cxr_equalized/salt.key
$PY pipelines/cxr_study/prepare.py --only nih --contrast equalize --judge --work runs/cxr_equalized \
    --results results/cxr_nih_equalized
# 2. issue 20's pilots (600 steps at 64², see pilots/README.md)
PARALLEL=1 bash pipelines/cxr_equalized/pilots.sh 600
# 3. the study: 2 generators per level (K = 10, 25), 6,000 steps each, 6 classifier arms, 3 seeds. Started from a
#    git worktree of commit cd09381 (so edits to the working tree cannot change a running job), 1 CPU thread
#    beside other work; rerun the same command to resume after a stop:
#    Sitting 1 (cd09381): train_10_g1 finished (6000 steps) and synthesized; train_10_g2 stopped by SIGTERM at
#    step 356. Resume from a worktree of a commit whose evaluate takes several generators per level (c4cb04f or
#    later); on a shared machine give the job's session priority: echo -10 > /proc/<pid>/autogroup (BENCHMARKS.md)
PYTHONPATH=/path/to/worktree $PY pipelines/normal_to_abnormal.py --config pipelines/cxr_equalized/study.yaml \
    --threads 1 --no-progress
#    Sitting 3 (3fb8bcb): the pipeline resumed train_10_g2 while the next generator trained beside it on the
#    second core (same config, K keys and seed as the pipeline resolves; when the pipeline reaches a generator
#    trained this way it resumes the finished run — nothing left to train — and synthesizes from it; if it
#    reaches one still training, the run folder's lock refuses it: rerun the pipeline once that training ends):
PYTHONPATH=/path/to/worktree $PY pipelines/cxr_equalized/train_generator.py --config pipelines/cxr_equalized/study.yaml \
    --generator 25_g1 --threads 1
#    Sitting 4 (229f977, then 1ddafd8 for the last run): the pipeline finished train_10_g2 and trained
#    train_25_g1 while train_25_g2 trained beside it (the command above, --generator 25_g2); once both ended,
#    the pipeline rerun from a worktree of 1ddafd8 (evaluate with workers=2 and the eight arms of study.yaml)
#    synthesized synth_25_g2 and ran the classifier study. An unattended shell loop waited for both processes
#    to exit, then ran the pipeline command above once more (PYTHONPATH = that worktree), then steps 5-7 below.
# 4. is the remaining intensity signal the view? (the study cohort: same salt, same split as step 1)
$PY pipelines/cxr_study/view_check.py --cohort runs/cxr_equalized/study/cohort \
    --out results/cxr_nih_equalized/shortcut/nih_by_view.json
# 5. after each generator: does it change more than intensity? (one JSON + grid per generator)
for g in 10_g1 10_g2 25_g1 25_g2; do
    $PY pipelines/cxr_study/intensity_control.py --synth runs/cxr_equalized/study/synth_$g \
        --train-run runs/cxr_equalized/study/train_$g --out results/cxr_nih_equalized/intensity_control/K$g.json
done
# 6. where do the generators change an image? (every finished synth_K_gI; rerun after each generator)
$PY pipelines/cxr_equalized/change_maps.py --study runs/cxr_equalized/study \
    --out results/cxr_nih_equalized/change_maps.json --grid results/cxr_nih_equalized/study/change_maps.png
# 7. gather metrics.json + summary.md (+ small PNGs)
$PY pipelines/cxr_equalized/publish.py
