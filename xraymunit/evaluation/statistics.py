"""The study's statistics: per arm the metrics with patient-bootstrap CIs, paired arm-vs-arm
differences with Holm-adjusted p-values, each synthetic arm against its controls (`answer`), per
source dataset, and the val-chosen threshold.

The numeric primitives (AUROC, bootstrap weights, percentile CIs) are in `metrics`; this
module decides what is compared with what. One (B, n) weight matrix per test set serves every
arm, generator and seed, and `resampling` draws generators and seeds once per level: that is what
makes the differences paired.
"""

from __future__ import annotations

import numpy as np

from xraymunit.config.evaluate import EvaluateConfig, needs_synthetic
from xraymunit.evaluation import answer
from xraymunit.evaluation import metrics as M
from xraymunit.evaluation import resampling as R
from xraymunit.evaluation.datasets import ImageSet


def threshold(y_val, v, cfg: EvaluateConfig) -> float:
    """The operating threshold for balanced accuracy, chosen on val (never on test)."""
    if len(y_val) == 0 or np.min(y_val) == np.max(y_val):
        return 0.5
    if cfg.stats.threshold == "youden":
        return M.youden_threshold(y_val, v)
    return M.threshold_at_specificity(y_val, v, cfg.stats.specificity)


def study_statistics(runs: list[dict], plan, cfg: EvaluateConfig) -> dict:
    """Per level: each arm's metrics (mean over generators and seeds, bootstrap CI) and the paired comparisons.

    One generator per level: the patient bootstrap (seeds fixed); several: the hierarchical bootstrap of
    `resampling` (generators, seeds and patients resampled), the same draws for every arm of the level.
    """
    st, test = cfg.stats, plan.sets["test"]
    groups = test.patients if st.bootstrap_unit == "patient" else test.keys
    W = M.bootstrap_weights(test.labels, groups, st.bootstrap, cfg.seed_base)
    per_source = len({s for s in test.sources if isinstance(s, str)}) > 1
    out = {}
    for level in plan.levels:
        n_gen = plan.n_generators(level.name)
        draws = R.Draws.make(len(W), n_gen, len(plan.seeds), cfg.seed_base)
        grids, arm_res = {}, {}
        arms_here = [a for a in plan.arms if any(r["level"] == level.name and r["arm"] == a for r in runs)]
        for arm in arms_here:
            rs = arm_runs(runs, plan, level.name, arm)
            grids[arm] = grid_of(rs, len(plan.seeds), needs_synthetic(arm), test, W, st.specificity)
            arm_res[arm] = {name: R.summary(draws, grids[arm], name, st.ci) for name in grids[arm].point}
            arm_res[arm]["train_counts"] = rs[0]["train_counts"]
            if grids[arm].depends:
                for entry, counts in zip(arm_res[arm]["auroc"]["per_generator"], grids[arm].counts):
                    entry["train_counts"] = counts
            if per_source:
                arm_res[arm]["per_source"] = per_source_auroc(test, np.stack([r["_test_scores"] for r in rs]),
                                                              [r["threshold"] for r in rs], cfg)

        def diff(a: str, b: str, name: str) -> dict:
            return R.difference(draws, grids[a], grids[b], name, st.ci)

        out[level.name] = {"n_real_abnormal": level.n_abnormal, "n_generators": n_gen, "n_seeds": len(plan.seeds),
                           "bootstrap": {"method": draws.describe(), "hierarchical": draws.hierarchical,
                                         "n_boot": int(len(W)), "unit": st.bootstrap_unit},
                           "arms": arm_res, "comparisons": comparisons(grids, arms_here, diff),
                           "synthetic_vs_controls": answer.families(grids, arms_here, st.ci, diff)}
    return out


def arm_runs(runs: list[dict], plan, level: str, arm: str) -> list[dict]:
    """An arm's runs at a level, generator-major then by seed; for generator g the run that stands for it
    (duplicate_real: the generator with its synthetic count) — so an arm's runs form a (G, k) grid."""
    mine = [r for r in runs if r["level"] == level and r["arm"] == arm]
    if not needs_synthetic(arm):
        return sorted(mine, key=lambda r: r["seed"])
    by = {(r.get("generator") or 1, r["seed"]): r for r in mine}
    return [by[plan.run_generator(level, arm, g) + 1, seed] for g in range(plan.n_generators(level))
            for seed in plan.seeds]


def grid_of(rs: list[dict], n_seeds: int, depends: bool, test: ImageSet, W: np.ndarray, specificity: float) -> R.Grid:
    """The arm's metric distributions over its runs, shaped (G, k) and (B, G, k)."""
    dists = M.metric_distributions(test.labels, np.stack([r["_test_scores"] for r in rs]),
                                   [r["threshold"] for r in rs], W, specificity)
    n_gen = len(rs) // n_seeds
    return R.Grid(point={k: p.reshape(n_gen, n_seeds) for k, (p, _) in dists.items()},
                  boot={k: b.reshape(len(b), n_gen, n_seeds) for k, (_, b) in dists.items()}, depends=depends,
                  counts=[rs[g * n_seeds]["train_counts"] for g in range(n_gen)])


def comparisons(grids: dict, arms_here: list[str], diff) -> dict:
    """Every arm vs (1) real and vs (2) classical: paired differences, Holm over the AUROC p-values."""
    found = {}
    for ref in ("real", "classical"):
        if ref not in arms_here:
            continue
        for arm in arms_here:
            if arm == ref or (ref == "classical" and arm == "real"):
                continue  # "real vs classical" is just −("classical vs real")
            found[f"{arm} vs {ref}"] = {name: diff(arm, ref, name) for name in grids[arm].point}
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
