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
    given = syn_of[plan.levels[0].name]
    first = plan.loaded[str(given[0].root)].selection if len(given) == 1 else None
    metrics = {
        "format": "xraymunit.evaluate", "format_version": 1, "xraymunit": __version__,
        "torch": torch.__version__, "device": str(dev),
        "cohort": str(co.root),
        "synthetic": ({k: folders(v) for k, v in syn_of.items()} if per_level else folders(given)),
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


def folders(sets: list) -> str | list[str] | None:
    """A level's synthetic folders as given: None, one folder, or the list of its generators' folders."""
    return None if not sets else str(sets[0].root) if len(sets) == 1 else [str(s.root) for s in sets]


def generators(plan: StudyPlan) -> dict:
    """Which generators (checkpoint sha256 and step, synthetic folder) are behind each level's arms 3/4.

    A level's entry describes all its synthetic images (folders, every checkpoint); `generators` lists
    each generator on its own, numbered as the runs' `generator` (usable ones only)."""
    levels = {}
    for name, given in plan.syn_of.items():
        if not given:
            levels[name] = None
            continue
        each = [_generator(s, plan.loaded[str(s.root)].selection) for s in given]
        usable = {made.root for made in plan.synthetic.get(name) or []}
        levels[name] = {
            "synthetic": folders(given),
            "checkpoint_sha256": sorted({h for g in each for h in g["checkpoint_sha256"]}),
            "checkpoint_step": sorted({v for g in each for v in g["checkpoint_step"]}),
            "selection": each[0]["selection"] if len(each) == 1 else None,
            "n_generators": len(usable),
            "generators": [{"generator": i + 1, **g} for i, g in
                           enumerate(g for g, s in zip(each, given) if str(s.root) in usable)],
        }
    mode = "per_level" if plan.per_level else "single" if plan.assessed is not None else None
    return {"mode": mode, "levels": levels}


def _generator(s, selection) -> dict:
    m = s.manifest
    sha = m["checkpoint_sha256"].dropna().unique() if "checkpoint_sha256" in m else []
    step = m["checkpoint_step"].dropna().unique() if "checkpoint_step" in m else []
    return {"synthetic": str(s.root), "checkpoint_sha256": sorted(map(str, sha)),
            "checkpoint_step": sorted(int(v) for v in step),
            "selection": None if selection is None else selection.counts()}


def training_quality(training_run) -> dict | None:
    """The generator runs' quality tracking (quality.csv), by level when there is one run per level
    ('LEVEL_gI' for generator I of a level with several)."""
    from xraymunit.quality.quality_csv import summarise_run

    if training_run is None:
        return None
    runs = dict(training_run) if isinstance(training_run, Mapping) else {"all": training_run}
    named = {}
    for k, v in runs.items():
        several = isinstance(v, (list, tuple)) and len(v) > 1
        for i, run in enumerate(v if isinstance(v, (list, tuple)) else [v]):
            named[f"{k}_g{i + 1}" if several else str(k)] = run
    found = {k: summarise_run(v) for k, v in named.items() if v is not None}
    return {k: v for k, v in found.items() if v is not None} or None
