"""The study's record: everything metrics.json holds, assembled from the plan, the runs, the
statistics and the quality metrics (report.write turns it into files)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from xraymunit import __version__
from xraymunit import config as config_mod
from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.evaluation.plan import StudyPlan

log = logging.getLogger(__name__)


def study_record(plan: StudyPlan, cfg: EvaluateConfig, dev, runs: list[dict], results: dict, quality: dict | None,
                 resumed: int, training_run) -> dict:
    """The metrics dict (format xraymunit.evaluate v1); timings are added by the caller."""
    from xraymunit import confounds  # can a trivial model tell the classes apart? (summary.md: Shortcut test)

    co, syn_of, per_level = plan.cohort, plan.syn_of, plan.per_level
    first = plan.synthetic[plan.levels[0].name].selection
    metrics = {
        "format": "xraymunit.evaluate", "format_version": 1, "xraymunit": __version__,
        "torch": torch.__version__, "device": str(dev),
        "cohort": str(co.root),
        "synthetic": ({k: (None if v is None else str(v.root)) for k, v in syn_of.items()} if per_level
                      else None if plan.assessed is None else str(plan.assessed.root)),
        "generators": generators(plan),
        "config": config_mod.to_dict(cfg),
        "data": {
            split: {"n_images": len(s), "n_normal": int((s.labels == 0).sum()), "n_abnormal": int(s.labels.sum()),
                    "n_patients": int(len(set(s.patients)))} for split, s in plan.sets.items()
        },
        "synthetic_selection": None if per_level or first is None else first.counts(),
        "levels": [{"name": lv.name, "requested": lv.requested, "n_real_abnormal": lv.n_abnormal}
                   for lv in plan.levels],
        "arms": plan.arms, "seeds": plan.seeds,
        "results": results,
        "quality": quality,
        "runs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs],
        "notes": plan.notes,
        "training_quality": training_quality(training_run),
        "resumed_runs": resumed,
        "elapsed_s": None,
    }
    metrics["shortcut_test"] = confounds.shortcut_test(co, cfg.normal_label, cfg.abnormal_label, seed=cfg.seed_base)
    for line in confounds.warnings(metrics["shortcut_test"]):
        log.warning(line)
    return metrics


def generators(plan: StudyPlan) -> dict:
    """Which generator (checkpoint sha256 and step, synthetic folder) is behind each level's arms 3/4."""
    levels = {}
    for name, s in plan.syn_of.items():
        if s is None:
            levels[name] = None
            continue
        m = s.manifest
        sha = m["checkpoint_sha256"].dropna().unique() if "checkpoint_sha256" in m else []
        step = m["checkpoint_step"].dropna().unique() if "checkpoint_step" in m else []
        selection = plan.synthetic[name].selection if name in plan.synthetic else None
        levels[name] = {
            "synthetic": str(s.root),
            "checkpoint_sha256": sorted(map(str, sha)),
            "checkpoint_step": sorted(int(v) for v in step),
            "selection": None if selection is None else selection.counts(),
        }
    mode = "per_level" if plan.per_level else "single" if plan.assessed is not None else None
    return {"mode": mode, "levels": levels}


def training_quality(training_run) -> dict | None:
    """The generator runs' quality tracking (quality.csv), by level when there is one run per level."""
    from xraymunit.quality_log import summarise_run

    if training_run is None:
        return None
    runs = dict(training_run) if isinstance(training_run, Mapping) else {"all": training_run}
    found = {str(k): summarise_run(v) for k, v in runs.items() if v is not None}
    return {k: v for k, v in found.items() if v is not None} or None
