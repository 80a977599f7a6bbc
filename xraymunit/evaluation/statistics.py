"""The study's statistics: per arm the metrics with patient-bootstrap CIs, paired arm-vs-arm
differences with Holm-adjusted p-values, each synthetic arm against its controls (`answer`), per
source dataset, and the val-chosen threshold.

The numeric primitives (AUROC, bootstrap weights, percentile CIs) are in `metrics`; this
module decides what is compared with what. One (B, n) weight matrix per test set serves every
arm and seed, which is what makes the differences paired.
"""

from __future__ import annotations

import numpy as np

from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.evaluation import answer
from xraymunit.evaluation import metrics as M
from xraymunit.evaluation.datasets import ImageSet


def threshold(y_val, v, cfg: EvaluateConfig) -> float:
    """The operating threshold for balanced accuracy, chosen on val (never on test)."""
    if len(y_val) == 0 or np.min(y_val) == np.max(y_val):
        return 0.5
    if cfg.stats.threshold == "youden":
        return M.youden_threshold(y_val, v)
    return M.threshold_at_specificity(y_val, v, cfg.stats.specificity)


def study_statistics(runs: list[dict], levels, arms: list[str], test: ImageSet, cfg: EvaluateConfig) -> dict:
    """Per level: each arm's metrics (mean over seeds, bootstrap CI) and the paired comparisons."""
    st = cfg.stats
    groups = test.patients if st.bootstrap_unit == "patient" else test.keys
    W = M.bootstrap_weights(test.labels, groups, st.bootstrap, cfg.seed_base)
    per_source = len({s for s in test.sources if isinstance(s, str)}) > 1
    out = {}
    for level in levels:
        dists, arm_res = {}, {}
        arms_here = [a for a in arms if any(r["level"] == level.name and r["arm"] == a for r in runs)]
        for arm in arms_here:
            rs = sorted((r for r in runs if r["level"] == level.name and r["arm"] == arm), key=lambda r: r["seed"])
            scores = np.stack([r["_test_scores"] for r in rs])
            thr = [r["threshold"] for r in rs]
            dists[arm] = M.metric_distributions(test.labels, scores, thr, W, st.specificity)
            arm_res[arm] = {name: M.summarise(*d, st.ci) for name, d in dists[arm].items()}
            arm_res[arm]["train_counts"] = rs[0]["train_counts"]
            if per_source:
                arm_res[arm]["per_source"] = per_source_auroc(test, scores, thr, cfg)
        out[level.name] = {"n_real_abnormal": level.n_abnormal, "arms": arm_res,
                           "comparisons": comparisons(dists, arms_here, st.ci),
                           "synthetic_vs_controls": answer.families(dists, arms_here, st.ci)}
    return out


def comparisons(dists: dict, arms_here: list[str], ci: float) -> dict:
    """Every arm vs (1) real and vs (2) classical: paired differences, Holm over the AUROC p-values."""
    found = {}
    for ref in ("real", "classical"):
        if ref not in arms_here:
            continue
        for arm in arms_here:
            if arm == ref or (ref == "classical" and arm == "real"):
                continue  # "real vs classical" is just −("classical vs real")
            found[f"{arm} vs {ref}"] = {name: M.paired_difference(dists[arm][name], dists[ref][name], ci)
                                        for name in dists[arm]}
    adjusted = M.holm([c["auroc"]["p_bootstrap"] for c in found.values()])
    for c, p in zip(found.values(), adjusted):
        c["auroc"]["p_holm"] = p  # Holm over this level's AUROC comparisons
    return found


def per_source_auroc(test: ImageSet, scores: np.ndarray, thr, cfg: EvaluateConfig) -> dict:
    """AUROC with its CI within each source dataset of the test split (undefined for one class)."""
    st, res = cfg.stats, {}
    for src in sorted({s for s in test.sources if isinstance(s, str)}):
        idx = np.flatnonzero(test.sources == src)
        y = test.labels[idx]
        entry = {"n_images": int(len(idx)), "n_abnormal": int(y.sum())}
        if 0 < y.sum() < len(y):
            groups = test.patients[idx] if st.bootstrap_unit == "patient" else test.keys[idx]
            W = M.bootstrap_weights(y, groups, st.bootstrap, cfg.seed_base)
            d = M.metric_distributions(y, scores[:, idx], thr, W, st.specificity)
            entry["auroc"] = M.summarise(*d["auroc"], st.ci)
        else:
            entry["auroc"] = None
            entry["note"] = "one class only in this source's test images: AUROC undefined"
        res[src] = entry
    return res
