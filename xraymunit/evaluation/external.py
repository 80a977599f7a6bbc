"""External validation: every classifier arm also scored on other cohorts' images (`--test-cohort`).

Reviewers of a medical-imaging result ask for a test set from other patients or another site.
Each run's model, selected on the training cohort's val split with its threshold from there, is
scored on each test cohort's test split (or all of it); the numbers get their own patient
bootstrap over that cohort, computed exactly as the internal ones (`study_statistics`), so the
report can put internal and external side by side.

Refused: a test cohort ingested with other image settings (size, fit, window, contrast,
spacing) — its images would differ from the training cohort's for reasons that are not the
site. Warned about: patient keys shared with the training cohort (same salt and same patients:
the "external" test then holds patients the classifier trained on).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.evaluation.datasets import ImageSet, real_split, split_rows
from xraymunit.evaluation.runcache import digest
from xraymunit.io.cohort import INGEST_REPORT, Cohort

log = logging.getLogger(__name__)

# the cache/meta.json keys that change what an image looks like, with the value a key's absence means
IMAGE_SETTINGS = {"size": None, "fit": "pad", "window": "auto", "percentiles": [0.5, 99.5], "contrast": "none"}


@dataclass
class ExternalSet:
    """One test cohort's scored images and what the report says about them."""

    name: str
    root: Path
    split: str
    images: ImageSet
    overlap: int  # patients it shares with the training cohort

    def describe(self) -> dict:
        s = self.images
        return {"cohort": str(self.root), "split": self.split, "n_images": len(s), "n_normal": int((s.labels == 0).sum()),
                "n_abnormal": int(s.labels.sum()), "n_patients": int(len(set(s.patients))),
                "patients_shared_with_training_cohort": self.overlap}


def image_settings(cohort: Cohort) -> dict:
    """What the cohort's images were made with: cache/meta.json, plus --spacing-mm from the ingest report."""
    meta = cohort.cache_meta
    settings = {k: meta.get(k, default) for k, default in IMAGE_SETTINGS.items()}
    try:
        report = json.loads((cohort.root / INGEST_REPORT).read_text())
    except (OSError, ValueError):
        report = {}
    settings["spacing_mm"] = (report.get("settings") or {}).get("spacing_mm")
    settings["percentiles"] = [float(p) for p in settings["percentiles"]]
    return settings


def check_compatible(training: Cohort, test: Cohort) -> None:
    """One line when the test cohort's images were made with other settings than the training cohort's."""
    from xraymunit.evaluation.plan import EvaluateError

    mine, theirs = image_settings(training), image_settings(test)
    differ = [k for k in mine if mine[k] != theirs[k]]
    if differ:
        shown = ", ".join(f"{k} {_show(theirs[k])} (training cohort: {_show(mine[k])})" for k in differ)
        raise EvaluateError(f"test cohort {test.root} was ingested with other image settings: {shown}; re-ingest it "
                            f"with the training cohort's --size/--fit/--window/--percentiles/--contrast/--spacing-mm")


def _show(value) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, list) else str(value)


def open_test_cohorts(training: Cohort, folders, cfg: EvaluateConfig, notes: list[str]) -> dict[str, ExternalSet]:
    """{name → ExternalSet} for each test cohort folder, checked and loaded at the classifier's size."""
    from xraymunit.evaluation.plan import EvaluateError

    found: dict[str, ExternalSet] = {}
    train_patients = set(training.manifest["patient_key"].dropna())
    for folder in folders or ():
        co = folder if isinstance(folder, Cohort) else Cohort.open(folder)
        check_compatible(training, co)
        name = _unique(co.root.name or str(co.root), found)
        split = cfg.external_split
        images = _load(co, split, cfg)
        n_abn = int(images.labels.sum())
        if n_abn == 0 or n_abn == len(images):
            raise EvaluateError(f"test cohort {co.root}: its {split} images need both '{cfg.normal_label}' and "
                                f"'{cfg.abnormal_label}' labels (has {len(images) - n_abn} and {n_abn})")
        overlap = len(train_patients & set(images.patients))
        if overlap:
            line = (f"**Warning:** test cohort {name}: {overlap} of its {len(set(images.patients))} patients have "
                    f"patient keys of the training cohort (same salt, same patients): it is not independent of "
                    f"the training data")
            log.warning(line.replace("**", ""))
            notes.append(line)
        found[name] = ExternalSet(name, co.root, split, images, overlap)
    return found


def _load(co: Cohort, split: str, cfg: EvaluateConfig) -> ImageSet:
    size, normal, abnormal = cfg.classifier.image_size, cfg.normal_label, cfg.abnormal_label
    if split != "all":
        return real_split(co, split, size, normal, abnormal)
    parts = [real_split(co, s, size, normal, abnormal) for s in ("train", "val", "test")
             if len(split_rows(co, s, normal, abnormal))]
    import torch

    return ImageSet(torch.cat([p.images for p in parts]), np.concatenate([p.labels for p in parts]),
                    np.concatenate([p.keys for p in parts]), np.concatenate([p.patients for p in parts]),
                    np.concatenate([p.sources for p in parts]))


def _unique(name: str, taken: dict) -> str:
    if name not in taken:
        return name
    i = 2
    while f"{name}_{i}" in taken:
        i += 1
    return f"{name}_{i}"


def fingerprint(external: dict[str, ExternalSet]) -> dict:
    """What a run's external scores depend on (added to the run fingerprint only when there are any)."""
    from xraymunit.evaluation.plan import file_stamp

    return {name: [digest(e.images.keys), file_stamp(e.root / "cache" / "images.npy")]  # re-ingested → rescore
            for name, e in external.items()}


def score(model, external: dict[str, ExternalSet], device) -> dict[str, np.ndarray]:
    """Each test cohort's probabilities of abnormal from one run's selected model."""
    from xraymunit.evaluation.classifier import predict

    return {name: predict(model, e.images.images, device) for name, e in external.items()}


def statistics(runs: list[dict], plan, cfg: EvaluateConfig) -> dict:
    """Per test cohort: its data and, per level, each arm's metrics and comparisons, with a patient
    bootstrap over that cohort (the internal statistics, run on its scores)."""
    from xraymunit.evaluation.statistics import study_statistics

    import dataclasses

    out = {}
    for name, e in plan.external.items():
        scored = [{**r, "_test_scores": r["_external_scores"][name]} for r in runs]
        on_cohort = dataclasses.replace(plan, sets={**plan.sets, "test": e.images})  # same runs, its images
        out[name] = {**e.describe(), "results": study_statistics(scored, on_cohort, cfg)}
    return out


def summary_lines(metrics: dict) -> list[str]:
    """summary.md's section: per test cohort and level, internal and external numbers side by side."""
    from xraymunit.evaluation.summary import ARM_LABEL, _ci, _delta

    external = metrics.get("external") or {}
    if not external:
        return []
    ci = int(round(metrics["config"]["stats"]["ci"] * 100))
    L = ["## External validation", "",
         "Each arm's models (selected on the training cohort's val split, thresholds from there) also scored on "
         f"other cohorts' images; {ci}% CIs from a patient bootstrap over each test cohort.", ""]
    for name, ext in external.items():
        L.append(f"### Test cohort {name} ({ext['split']} images: {ext['n_normal']} normal + {ext['n_abnormal']} "
                 f"abnormal from {ext['n_patients']} patients)")
        L.append("")
        if ext["patients_shared_with_training_cohort"]:
            L.append(f"**Warning:** {ext['patients_shared_with_training_cohort']} of its patients are in the training "
                     "cohort too (same salt, same patients).")
            L.append("")
        for lv in metrics["levels"]:
            internal, res = metrics["results"][lv["name"]], ext["results"][lv["name"]]
            L.append(f"Real abnormal training images: {lv['name']} (n = {lv['n_real_abnormal']})")
            L.append("")
            L.append("| arm | AUROC internal | AUROC external | balanced acc. internal | balanced acc. external | "
                     "ΔAUROC vs (1) external |")
            L.append("|---|---|---|---|---|---|")
            for arm, a in res["arms"].items():
                i = internal["arms"][arm]
                c1 = res["comparisons"].get(f"{arm} vs real", {}).get("auroc")
                L.append(f"| {ARM_LABEL[arm]} | {_ci(i['auroc'])} | {_ci(a['auroc'])} | {_ci(i['balanced_accuracy'])} | "
                         f"{_ci(a['balanced_accuracy'])} | {_delta(c1) if c1 else '—'} |")
            L.append("")
    return L
