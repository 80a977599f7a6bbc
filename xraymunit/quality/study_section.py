"""The quality part of a study: the cohort's judge, the reference images, and `synthetic_set.assess`
on the synthetic set, plus translation success (the share the judge calls abnormal)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.evaluation.datasets import ImageSet, real_split, synthetic_images
from xraymunit.evaluation.plan import StudyPlan
from xraymunit.io.cohort import Cohort, SyntheticSet


def quality_section(plan: StudyPlan, cfg: EvaluateConfig, dev, show: bool, out: Path | None = None,
                    training_run=None) -> tuple[dict | None, dict | None]:
    """(quality metrics, styles grid) of the assessed synthetic set; notes go into plan.notes.

    The judge is the cohort's; when the cohort is read-only it is kept in OUT/judge/ (or reused from
    the training run's own judge/ folder, where training kept it for the same reason)."""
    from xraymunit.progress import progress
    from xraymunit.quality.judge import JUDGE_DIR, load_or_train as load_judge
    from xraymunit.quality.synthetic_set import assess

    syn, co, notes = plan.assessed, plan.cohort, plan.notes
    if syn is None:
        notes.append("no synthetic folder: quality metrics skipped")
        return None, None
    if not cfg.quality.enabled:
        return None, None
    rows = quality_rows(syn.manifest, co, cfg)
    if len(rows) == 0:
        notes.append("quality metrics skipped: no synthetic image with a PNG and a source in the cohort")
        return None, None
    judge = load_judge(co, cfg.quality.judge, fallback=None if out is None else Path(out) / JUDGE_DIR,
                       look_in=[Path(run) / JUDGE_DIR for run in _runs(training_run)], device=dev, progress=show)
    jsize = judge.image_size
    ref_all = _concat([real_split(co, s, jsize, cfg.normal_label, cfg.abnormal_label)
                       for s in cfg.quality.reference_splits])
    train_j = real_split(co, "train", jsize, cfg.normal_label, cfg.abnormal_label)
    with progress(5, "evaluate: quality metrics", "phase", bar=show) as qbar:
        quality, grid = assess(judge.model, co, syn, rows, ref_all.subset(ref_all.where(0)),
                               ref_all.subset(ref_all.where(1)), train_j, cfg.quality, jsize, dev,
                               seed=cfg.seed_base, bar=qbar)
    quality["judged_abnormal"] = judged_abnormal(judge, syn, rows, ref_all, cfg.quality, cfg.seed_base)
    quality["judge"] = {k: judge.info[k] for k in ("fingerprint", "val_auroc", "test_auroc", "threshold",
                                                   "n_train", "weak")}
    quality["judge"]["describe"] = judge.describe()
    quality["feature_network"] = (
        f"the cohort's judge (xraymunit/quality/judge.py; {judge.describe()}): {judge.info['config']['classifier']['arch']} "
        f"with one input channel at {jsize}px, trained on this cohort's real train split only; FID/KID use "
        f"its penultimate layer (global-average-pooled last dense block), the LPIPS-style distance its "
        f"stem and dense-block outputs")
    if judge.weak:
        notes.append(f"**Warning:** the judge is weak ({judge.describe()}): every quality number is unreliable")
    quality["reference_splits"] = list(cfg.quality.reference_splits)
    quality["synthetic_set"] = {"folder": str(syn.root),
                                "level": plan.with_synthetic[-1].name if plan.per_level else None}
    if len(plan.syn_of[plan.with_synthetic[-1].name]) > 1:
        quality["synthetic_set"]["generator"] = 1  # quality is measured on one generator's images
    if len({Path(s.root).resolve() for sets in plan.syn_of.values() for s in sets}) > 1:
        quality["per_generator"] = per_generator(plan, cfg, judge, ref_all)
    if cfg.quality.backbone.weights:
        quality["backbone"] = backbone_section(co, syn, rows, cfg, dev)
    return quality, grid


def per_generator(plan: StudyPlan, cfg: EvaluateConfig, judge, ref: ImageSet) -> list[dict]:
    """Every generator of every level measured alike (judge's realism, LPIPS-style diversity, translation
    success): how much the quality itself varies between generators trained the same way."""
    from xraymunit.quality.synthetic_set import assess_features

    out, seen = [], set()
    for level in plan.with_synthetic:
        for number, syn in enumerate(plan.syn_of[level.name], 1):
            if Path(syn.root).resolve() in seen:  # one folder given to several levels: measured once
                continue
            seen.add(Path(syn.root).resolve())
            entry = {"level": level.name, "generator": number, "folder": str(syn.root)}
            rows = quality_rows(syn.manifest, plan.cohort, cfg)
            if len(rows) == 0:
                out.append({**entry, "n_synthetic": 0})
                continue
            numbers = assess_features(judge, plan.cohort, syn, rows, ref.subset(ref.where(0)),
                                      ref.subset(ref.where(1)), cfg.quality, seed=cfg.seed_base)
            out.append({**entry, **numbers,
                        "judged_abnormal": judged_abnormal(judge, syn, rows, ref, cfg.quality, cfg.seed_base)})
    return out


def backbone_section(co: Cohort, syn: SyntheticSet, rows: pd.DataFrame, cfg: EvaluateConfig, dev) -> dict:
    """Realism and diversity of the same picked images in the pretrained backbone's feature space."""
    from xraymunit.quality.backbone import load_backbone
    from xraymunit.quality.synthetic_set import assess_features

    bcfg = cfg.quality.backbone
    net = load_backbone(bcfg.weights, bcfg.image_size, dev)
    ref = _concat([real_split(co, s, net.image_size, cfg.normal_label, cfg.abnormal_label)
                   for s in cfg.quality.reference_splits])
    numbers = assess_features(net, co, syn, rows, ref.subset(ref.where(0)), ref.subset(ref.where(1)),
                              cfg.quality, seed=cfg.seed_base)
    return {"network": net.describe(), "weights": str(bcfg.weights), "sha256": net.sha256,
            "input_convention": net.convention, **numbers}


def _runs(training_run) -> list:
    """The training run folders given to evaluate: None, one folder, a list, or {level: folder or [folders]}."""
    if training_run is None:
        return []
    values = training_run.values() if isinstance(training_run, Mapping) else [training_run]
    flat = [run for v in values for run in (v if isinstance(v, (list, tuple)) else [v])]
    return [run for run in flat if run is not None]


def quality_rows(manifest: pd.DataFrame, co: Cohort, cfg: EvaluateConfig) -> pd.DataFrame:
    """Synthetic rows to assess: intended abnormal, with a PNG, whose source image is in the cohort."""
    keys = set(co.ok()["image_key"])
    m = manifest
    ok = (m["intended_label"] == cfg.synthetic.intended_label) & m["png_path"].map(lambda p: isinstance(p, str) and bool(p))
    ok &= m["source_image_key"].isin(keys)
    return m[ok].reset_index(drop=True)


def judged_abnormal(judge, syn: SyntheticSet, rows: pd.DataFrame, ref: ImageSet, qcfg, seed: int) -> dict:
    """Translation success: the share of synthetic images the judge calls abnormal (at its val-chosen
    threshold), next to the same share for the real reference abnormal and normal images."""
    from xraymunit.quality.synthetic_set import pick_rows

    picked = pick_rows(rows, qcfg, seed)
    images = synthetic_images(syn, picked, judge.image_size).images
    t = judge.threshold
    real = judge.scores(ref.images)
    return {"synthetic": float(np.mean(judge.scores(images) > t)) if len(images) else None,
            "n_synthetic": int(len(images)),
            "yardstick_real_abnormal": float(np.mean(real[ref.labels == 1] > t)) if (ref.labels == 1).any() else None,
            "yardstick_real_normal": float(np.mean(real[ref.labels == 0] > t)) if (ref.labels == 0).any() else None,
            "threshold": t, "note": "share judged abnormal at the judge's val-chosen (Youden) threshold"}


def _concat(sets: list[ImageSet]) -> ImageSet:
    return ImageSet(torch.cat([s.images for s in sets]), np.concatenate([s.labels for s in sets]),
                    np.concatenate([s.keys for s in sets]), np.concatenate([s.patients for s in sets]),
                    np.concatenate([s.sources for s in sets]))
