"""Confounds caught before training: what, besides the finding, separates the two domains.

MUNIT learns *whatever* tells domain A from domain B. If the abnormal images come from
another hospital, scanner, intensity window or view, the "abnormal style" it learns is that
acquisition difference, not the disease. Two tools, both on an opened `Cohort`:

- `domain_profile`: per domain, the distribution of each acquisition factor (source, vendor,
  window, view, photometric, bits stored, original size, black borders, intensity percentiles).
- `shortcut_test`: how well a *trivial* model separates the domains from (a) header metadata
  alone, (b) an 8×8 thumbnail alone, (c) a 16-bin intensity histogram alone. Each model is an
  L2-regularised logistic regression, cross-validated over the train + val patients
  (patient-grouped folds, `crossval`): every train + val image is scored by a model that never
  saw its patient, so a 120-image cohort has ~100 patients behind each AUROC instead of ~18
  val patients. The test split is left out of that and scored by one model fitted on train +
  val: does the test split share the shortcut?

Decision rule, three tiers. "Shortcut shown" (`warn`) when the *lower* bound of the AUROC
confidence interval exceeds `WARN_AUROC` (0.70, "acceptable discrimination" by the usual
reading of AUROC): evidence that the shortcut is strong, not a lucky draw. "Possible" when
only the point estimate exceeds it (too few patients to prove it). "None seen" otherwise;
"no domain shortcut found" is said only when every interval's upper bound is at or below the
threshold. The interval is the union of a patient-level bootstrap percentile CI (over the
out-of-fold scores) and a Wilson score interval with n = the smaller number of patients per
domain. The Wilson part rests on AUROC's maximum-variance bound, Var ≤ AUROC(1 − AUROC)/
min(n_a, n_b) (Birnbaum & Klose 1957), so, unlike the bootstrap or DeLong, it does not
collapse to a point when a small cohort happens to separate perfectly. A consequence, on
purpose: with fewer than `min_patients_to_warn` (9 at the defaults) patients in a domain
nothing is "shown", and the result says so.

The thumbnail and histogram tests see the images as cached (after windowing), so they also
see the disease itself when it changes global intensity (large effusions, white-outs): a
warning there is a prompt to look at `domain_profile`, not proof of a scanner artefact.
No torch: numpy, pandas and scipy only.

Modules: `features` (rows and feature matrices), `model` (the trivial model and the interval),
`crossval` (folds, out-of-fold scores, tiers), `shortcut` (the two tools and `check`, what train
runs first), `report` (messages, verdict, remedies, tables).
"""

from __future__ import annotations

from xraymunit.confounds.crossval import N_FOLDS, NONE_SEEN, POSSIBLE, SHOWN
from xraymunit.confounds.model import (CI_LEVEL, WARN_AUROC, auroc_ci, fit_logistic, held_out_scores,
                                       min_patients_to_warn, min_val_patients_to_warn)
from xraymunit.confounds.features import image_features
from xraymunit.confounds.report import (cautions, remedy, shortcut_table, summary_lines, verdict, warnings,
                                        write_shortcut_report)
from xraymunit.confounds.shortcut import check, domain_profile, shortcut_test

__all__ = ["domain_profile", "shortcut_test", "warnings", "cautions", "verdict", "write_shortcut_report",
           "shortcut_table", "summary_lines", "check", "remedy", "fit_logistic", "auroc_ci", "image_features",
           "min_patients_to_warn", "min_val_patients_to_warn", "WARN_AUROC", "CI_LEVEL", "N_FOLDS",
           "SHOWN", "POSSIBLE", "NONE_SEEN"]
