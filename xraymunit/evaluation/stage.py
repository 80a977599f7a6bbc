"""Stage 4: does adding synthetic abnormal images help a classifier? Measured on real images.

    evaluate(cohort, synthetic, out, config) -> metrics dict

For every level of real abnormal training images, every seed and every arm —
(1) real, (2) real + classical augmentation, (3) real + synthetic, (4) all three —
train the same classifier with the same budget, select on val, score on test; then
bootstrap the test patients for CIs and paired arm-vs-arm differences, assess the
synthetic images' quality, and write metrics.json, plots and summary.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xraymunit import __version__
from xraymunit import config as config_mod
from xraymunit.config.evaluate import EvaluateConfig, parse_level
from xraymunit.errors import XraymunitError
from xraymunit.evaluation import metrics as M
from xraymunit.evaluation.classifier import TrainPool, predict, train_classifier
from xraymunit.evaluation.datasets import (ClassicalAugment, ImageSet, low_data_keys, real_split,
                                           select_synthetic, synthetic_images)
from xraymunit.evaluation.runcache import RunCache, digest, fingerprint
from xraymunit.io import outdir
from xraymunit.io.cohort import Cohort, SyntheticSet
from xraymunit.judge import load_or_train as load_judge

log = logging.getLogger(__name__)


class EvaluateError(XraymunitError):
    """The cohort or synthetic set cannot support the evaluation asked for (message says why)."""


@dataclass
class Level:
    """A low-data level: what was asked ('all' or K) and how many real abnormals it keeps."""

    requested: int | str
    n_abnormal: int

    @property
    def name(self) -> str:
        return "all" if self.requested == "all" else str(self.requested)


def resolve_device(device: str) -> str:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvaluateError(f"device {device!r} was asked for but CUDA is not available; use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise EvaluateError("device 'mps' was asked for but is not available; use --device cpu")
    return device


def plan_levels(requested, n_available: int) -> tuple[list[Level], list[str]]:
    """Levels in increasing size; K >= available collapses onto 'all' (run once, noted)."""
    notes, levels, seen = [], [], set()
    for r in requested:
        n = n_available if r == "all" else min(int(r), n_available)
        if r != "all" and int(r) >= n_available:
            notes.append(f"real_abnormal level {r} >= the {n_available} real abnormal training images: "
                         f"it is the same as 'all'")
            r = "all"
        if n in seen:
            continue
        seen.add(n)
        levels.append(Level(r, n))
    return sorted(levels, key=lambda lv: lv.n_abnormal), notes


def _check_split(s: ImageSet, name: str) -> None:
    n_abn = int(s.labels.sum())
    if n_abn == 0 or n_abn == len(s):
        raise EvaluateError(
            f"the {name} split needs both normal and abnormal images (has {len(s) - n_abn} normal, "
            f"{n_abn} abnormal); re-ingest with labels for both classes")


@outdir.owns("evaluate", "out", guard=("runs", "metrics.json", "summary.md", "predictions.csv"))
def evaluate(
    cohort: str | Path | Cohort,
    synthetic: str | Path | SyntheticSet | Mapping[str, str | Path | SyntheticSet | None] | None,
    out: str | Path,
    config: EvaluateConfig | None = None,
    *,
    device: str | None = None,
    progress: bool | None = None,
    resume: bool = True,
    training_run: str | Path | Mapping[str, str | Path] | None = None,
) -> dict:
    """Run the classifier study and the quality metrics; write the report into `out`.

    Args:
        cohort: an ingested cohort folder (or an opened Cohort).
        synthetic: a synthesize output folder, or None (arms 3 and 4 are then skipped, and
            the report says so; no quality metrics), or a mapping {level name ('5', '10',
            'all') → folder}: one generator per low-data level, arms 3/4 of level K use only
            that level's images (levels without a folder skip arms 3/4, with a note), and the
            quality metrics assess the largest level's folder.
        out: the report folder (metrics.json, predictions.csv, plots, summary.md, config).
        config: the study (defaults to EvaluateConfig()).
        device: overrides config.device ('cpu', 'cuda', 'cuda:1', ...).
        progress: overrides config.progress (tqdm bars on stderr).
        resume: reuse finished runs found in out/runs/ whose fingerprint (config, seed,
            image keys) matches; False retrains everything.
        training_run: the MUNIT run folder(s) behind the synthetic images (one, or {level: folder});
            their quality tracking (quality.csv, quality.png) is summarised in the report.

    Returns:
        The metrics dict also written to out/metrics.json.
    """
    from tqdm.auto import tqdm

    from xraymunit.evaluation import report

    cfg = config or EvaluateConfig()
    cfg.validate()
    dev = resolve_device(device or cfg.device)
    show = cfg.progress if progress is None else progress
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.time()
    out = Path(out)
    co = cohort if isinstance(cohort, Cohort) else Cohort.open(cohort)
    per_level = isinstance(synthetic, Mapping)
    size, cc = cfg.classifier.image_size, cfg.classifier
    notes: list[str] = []

    sets = {s: real_split(co, s, size, cfg.normal_label, cfg.abnormal_label) for s in ("train", "val", "test")}
    for name in ("train", "test"):
        _check_split(sets[name], name)
    train, val, test = sets["train"], sets["val"], sets["test"]
    if len(val) == 0 or val.labels.min() == val.labels.max():
        notes.append(f"the val split has {len(val)} image(s) of one class only: no model selection, every run "
                     "keeps its last step (and the balanced-accuracy threshold is 0.5)")
    overlap = set(train.patients) & (set(val.patients) | set(test.patients))
    if overlap:
        raise EvaluateError(f"{len(overlap)} patient(s) appear in train and in val/test: the cohort's "
                            "splits are not patient-level; re-run ingest")

    abn_idx, nor_idx = train.where(1), train.where(0)
    levels, level_notes = plan_levels(cfg.real_abnormal, len(abn_idx))
    notes += level_notes
    seeds = [cfg.seed_base + i for i in range(cfg.seeds)]

    # synthetic images: one folder for every level, or (per-level generators) one folder per level
    if per_level:
        syn_of = _per_level_synthetic(synthetic, levels, notes)
    else:
        one = synthetic if isinstance(synthetic, SyntheticSet) or synthetic is None else SyntheticSet.open(synthetic)
        syn_of = {lv.name: one for lv in levels}
    with_syn = [lv for lv in levels if syn_of[lv.name] is not None]
    syn = syn_of[with_syn[-1].name] if with_syn else None  # the set the quality metrics assess (largest level)
    arms = list(cfg.arms)
    level_arms = {lv.name: list(arms) for lv in levels}
    selections, synth_trains, synth_fps, loaded = {}, {}, {}, {}
    if not per_level:
        selection, synth_train = None, None
        if syn is None:
            skipped = [a for a in arms if "synthetic" in a]
            arms = [a for a in arms if "synthetic" not in a]
            if skipped:
                notes.append(f"no synthetic folder given: arms {skipped} skipped")
        else:
            selection = select_synthetic(syn.manifest, co.manifest, cfg.synthetic)
            if len(selection.used) == 0:
                skipped = [a for a in arms if "synthetic" in a]
                arms = [a for a in arms if "synthetic" not in a]
                notes.append(f"no synthetic image is usable for training ({selection.counts()['excluded_by_reason']}): "
                             f"arms {skipped} skipped")
            else:
                log.info("loading %d synthetic training images", len(selection.used))
                synth_train = synthetic_images(syn, selection.used, size, dtype=torch.float16)
        for lv in levels:
            level_arms[lv.name] = list(arms)
            selections[lv.name], synth_trains[lv.name] = selection, synth_train
            synth_fps[lv.name] = None if selection is None else _synth_fp(syn, selection, cfg)
    else:
        for lv in levels:
            s_lv, skipped = syn_of[lv.name], [a for a in arms if "synthetic" in a]
            if s_lv is None:
                level_arms[lv.name] = [a for a in arms if "synthetic" not in a]
                if skipped:
                    notes.append(f"level {lv.name}: no synthetic folder given for this level: arms {skipped} "
                                 "skipped at this level")
                continue
            key = str(s_lv.root)
            if key not in loaded:
                sel = select_synthetic(s_lv.manifest, co.manifest, cfg.synthetic)
                imgs = None
                if len(sel.used):
                    log.info("loading %d synthetic training images of level %s", len(sel.used), lv.name)
                    imgs = synthetic_images(s_lv, sel.used, size, dtype=torch.float16)
                loaded[key] = (sel, imgs, {**_synth_fp(s_lv, sel, cfg), "folder": key})
            selections[lv.name], synth_trains[lv.name], synth_fps[lv.name] = loaded[key]
            if synth_trains[lv.name] is None:
                level_arms[lv.name] = [a for a in arms if "synthetic" not in a]
                notes.append(f"level {lv.name}: no synthetic image of {key} is usable for training "
                             f"({selections[lv.name].counts()['excluded_by_reason']}): arms {skipped} skipped at "
                             "this level")
        arms = [a for a in arms if any(a in la for la in level_arms.values())]
        if cfg.real_abnormal_subset != "shared" and len(seeds) > 1 and any(lv.name != "all" for lv in with_syn):
            notes.append("**Warning:** one generator per level, but real_abnormal_subset is per_seed: seeds other "
                         f"than {cfg.seed_base} train arms 3/4 of a level on other K real abnormal images than the "
                         "ones its generator can have been trained on; set real_abnormal_subset: shared")
    if not arms:
        raise EvaluateError("no arm left to run (all configured arms need synthetic images)")
    if cfg.real_abnormal_subset == "shared":
        log.info("real_abnormal_subset: shared — every seed keeps seed %d's K real abnormal images", cfg.seed_base)

    timings = {"load_s": round(time.time() - t0, 1)}
    t_phase = time.time()
    # ---------------------------------------------------------------- training runs
    quality_rows = _quality_rows(syn.manifest, co, cfg) if syn is not None and cfg.quality.enabled else None
    cache = RunCache(out / "runs", enabled=resume)
    base_fp = {"classifier": config_mod.to_dict(cc), "device": torch.device(dev).type,
               "cache": _file_stamp(co.root / "cache" / "images.npy"),  # re-ingest → retrain
               "train_normal": digest(train.keys[nor_idx]), "val": digest(val.keys), "test": digest(test.keys)}
    runs, resumed = [], 0
    n_runs = len(seeds) * sum(len(level_arms[lv.name]) for lv in levels)
    bar = tqdm(total=n_runs * cc.steps, desc="evaluate: training", unit="step", disable=not show)

    position = {k: i for i, k in enumerate(train.keys)}
    kept: dict[tuple[int, int], np.ndarray] = {}

    def real_abnormal_rows(level: Level, seed: int) -> np.ndarray:
        """Rows of `train` holding the level's K real abnormals (low_data_keys: the pipeline's rule too)."""
        subset_seed = cfg.seed_base if cfg.real_abnormal_subset == "shared" else seed
        if (level.n_abnormal, subset_seed) not in kept:
            keys = low_data_keys(co, level.n_abnormal, subset_seed, cfg.normal_label, cfg.abnormal_label)
            kept[level.n_abnormal, subset_seed] = np.sort(np.array([position[k] for k in keys], np.int64))
        return kept[level.n_abnormal, subset_seed]

    def run_one(level: Level, seed: int, arm: str) -> dict:
        nonlocal resumed
        keep = real_abnormal_rows(level, seed)
        synth_train, synth_fp = synth_trains.get(level.name), synth_fps.get(level.name)
        fp = fingerprint({**base_fp, "arm": arm, "seed": seed, "real_abnormal": digest(train.keys[keep]),
                          "augment": config_mod.to_dict(cfg.augment) if "classical" in arm else None,
                          "synthetic": synth_fp if "synthetic" in arm else None})
        bar.set_postfix_str(f"{level.name}/{arm}/seed{seed}")
        run = cache.load(level.name, arm, seed, fp)
        if run is not None:
            resumed += 1
            run["threshold"] = _threshold(val.labels, run["_val_scores"], cfg)
            bar.update(cc.steps)
            return run
        pool = TrainPool(normal=train.images[torch.as_tensor(nor_idx)], abnormal=train.images[torch.as_tensor(keep)],
                         synthetic=synth_train.images if "synthetic" in arm else None,
                         synthetic_mix=cfg.synthetic.mix, balanced=cc.balanced_batches)
        aug = ClassicalAugment(cfg.augment, size, seed) if "classical" in arm else None
        res = train_classifier(pool, val, cc, seed, dev, augment=aug, progress=bar)
        run = _score(res, level, arm, seed, pool, val, test, dev, cfg, train.keys[keep])
        cache.save(run, fp)
        return run

    for level in levels:
        for seed in seeds:
            for arm in level_arms[level.name]:
                runs.append(run_one(level, seed, arm))
    bar.close()
    if resumed:
        notes.append(f"{resumed} training run(s) reused from {out / 'runs'} (same fingerprint); "
                     "pass resume=False / --fresh to retrain")

    timings["training_s"] = round(time.time() - t_phase, 1)
    t_phase = time.time()
    # ---------------------------------------------------------------- statistics
    results = _statistics(runs, levels, arms, seeds, test, cfg)

    timings["statistics_s"] = round(time.time() - t_phase, 1)
    t_phase = time.time()
    # ---------------------------------------------------------------- quality
    quality, grid = None, None
    if syn is not None and cfg.quality.enabled:
        from xraymunit.evaluation.quality_study import assess

        rows = quality_rows
        if len(rows) == 0:
            notes.append("quality metrics skipped: no synthetic image with a PNG and a source in the cohort")
        else:
            judge = load_judge(co, cfg.quality.judge, device=dev, progress=show)
            jsize = judge.image_size
            ref_all = _concat([real_split(co, s, jsize, cfg.normal_label, cfg.abnormal_label)
                               for s in cfg.quality.reference_splits])
            train_j = real_split(co, "train", jsize, cfg.normal_label, cfg.abnormal_label)
            with tqdm(total=5, desc="evaluate: quality metrics", unit="phase", disable=not show) as qbar:
                quality, grid = assess(judge.model, co, syn, rows, ref_all.subset(ref_all.where(0)),
                                       ref_all.subset(ref_all.where(1)), train_j, cfg.quality, jsize, dev,
                                       seed=cfg.seed_base, bar=qbar)
            quality["judged_abnormal"] = _judged_abnormal(judge, co, syn, rows, ref_all, cfg.quality, cfg.seed_base)
            quality["judge"] = {k: judge.info[k] for k in ("fingerprint", "val_auroc", "test_auroc", "threshold",
                                                           "n_train", "weak")}
            quality["judge"]["describe"] = judge.describe()
            quality["feature_network"] = (
                f"the cohort's judge (xraymunit/judge.py; {judge.describe()}): {judge.info['config']['classifier']['arch']} "
                f"with one input channel at {jsize}px, trained on this cohort's real train split only; FID/KID use "
                f"its penultimate layer (global-average-pooled last dense block), the LPIPS-style distance its "
                f"stem and dense-block outputs")
            if judge.weak:
                notes.append(f"**Warning:** the judge is weak ({judge.describe()}): every quality number is unreliable")
            quality["reference_splits"] = list(cfg.quality.reference_splits)
            quality["synthetic_set"] = {"folder": str(syn.root), "level": with_syn[-1].name if per_level else None}
    elif syn is None:
        notes.append("no synthetic folder: quality metrics skipped")

    metrics = {
        "format": "xraymunit.evaluate", "format_version": 1, "xraymunit": __version__,
        "torch": torch.__version__, "device": dev,
        "cohort": str(co.root),
        "synthetic": ({k: (None if v is None else str(v.root)) for k, v in syn_of.items()} if per_level
                      else None if syn is None else str(syn.root)),
        "generators": _generators(syn_of, selections, per_level, syn is not None),
        "config": config_mod.to_dict(cfg),
        "data": {
            split: {"n_images": len(s), "n_normal": int((s.labels == 0).sum()), "n_abnormal": int(s.labels.sum()),
                    "n_patients": int(len(set(s.patients)))} for split, s in sets.items()
        },
        "synthetic_selection": (None if per_level or selections.get(levels[0].name) is None
                                else selections[levels[0].name].counts()),
        "levels": [{"name": lv.name, "requested": lv.requested, "n_real_abnormal": lv.n_abnormal} for lv in levels],
        "arms": arms, "seeds": seeds,
        "results": results,
        "quality": quality,
        "runs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs],
        "notes": notes,
        "training_quality": _training_quality(training_run),
        "resumed_runs": resumed,
        "elapsed_s": None,
    }
    from xraymunit import confounds  # can a trivial model tell the classes apart? (summary.md: Shortcut test)

    metrics["shortcut_test"] = confounds.shortcut_test(co, cfg.normal_label, cfg.abnormal_label, seed=cfg.seed_base)
    for line in confounds.warnings(metrics["shortcut_test"]):
        log.warning(line)
    timings["quality_s"] = round(time.time() - t_phase, 1)
    t_phase = time.time()
    metrics["timings"] = timings
    metrics["elapsed_s"] = round(time.time() - t0, 1)
    report.write(out, metrics, runs, test, val, grid, cfg)
    timings["report_s"] = round(time.time() - t_phase, 1)
    metrics["elapsed_s"] = round(time.time() - t0, 1)
    log.info("evaluate: wrote %s in %.0f s", out, metrics["elapsed_s"])
    return metrics


def _per_level_synthetic(mapping: Mapping, levels: list[Level], notes: list[str]) -> dict:
    """{level name → SyntheticSet or None} from a {level → folder} mapping (keys like '5', 10, 'all')."""
    names = [lv.name for lv in levels]
    out: dict[str, SyntheticSet | None] = {name: None for name in names}
    given: set[str] = set()
    for key, folder in mapping.items():
        parsed = parse_level(key if isinstance(key, (int, str)) else str(key))
        name = "all" if parsed == "all" else str(parsed)
        if name in given:
            raise EvaluateError(f"two synthetic folders for level {name}")
        given.add(name)
        if name not in out:
            notes.append(f"synthetic folder for level {name} ignored: the study's levels are {names}")
            continue
        if folder is not None:
            out[name] = folder if isinstance(folder, SyntheticSet) else SyntheticSet.open(folder)
    return out


def _synth_fp(syn: SyntheticSet, selection, cfg: EvaluateConfig) -> dict:
    """What a synthetic arm's training depends on: mixing settings, the images used, their generator."""
    return {
        "synthetic": config_mod.to_dict(cfg.synthetic), "keys": digest(selection.used["synth_key"]),
        "manifest": _file_stamp(syn.root / "manifest.parquet"),  # re-synthesised → retrain
        "checkpoints": sorted(map(str, selection.used.get("checkpoint_sha256", pd.Series([])).unique()))}


def _generators(syn_of: dict, selections: dict, per_level: bool, any_synthetic: bool) -> dict:
    """Which generator (checkpoint sha256 and step, synthetic folder) is behind each level's arms 3/4."""
    levels = {}
    for name, s in syn_of.items():
        if s is None:
            levels[name] = None
            continue
        m = s.manifest
        sha = m["checkpoint_sha256"].dropna().unique() if "checkpoint_sha256" in m else []
        step = m["checkpoint_step"].dropna().unique() if "checkpoint_step" in m else []
        levels[name] = {
            "synthetic": str(s.root),
            "checkpoint_sha256": sorted(map(str, sha)),
            "checkpoint_step": sorted(int(v) for v in step),
            "selection": None if selections.get(name) is None else selections[name].counts(),
        }
    return {"mode": "per_level" if per_level else "single" if any_synthetic else None, "levels": levels}


def _score(res, level: Level, arm: str, seed: int, pool: TrainPool, val: ImageSet, test: ImageSet,
           dev, cfg: EvaluateConfig, kept_keys) -> dict:
    """Scores of the val-selected model on val and test, and the val-chosen threshold."""
    v, t = predict(res.model, val.images, dev), predict(res.model, test.images, dev)
    return {
        "level": level.name, "arm": arm, "seed": seed, "train_counts": pool.counts(),
        "best_step": res.best_step, "val_auroc": res.best_val_auroc, "threshold": _threshold(val.labels, v, cfg),
        "history": res.history, "real_abnormal_keys_sha": digest(kept_keys),
        "_val_scores": v, "_test_scores": t,
    }


def _file_stamp(path: Path) -> list:
    """Size and modification time: cheap evidence that a file was rewritten."""
    try:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return []


def _threshold(y_val, v, cfg: EvaluateConfig) -> float:
    """The operating threshold for balanced accuracy, chosen on val (never on test)."""
    if len(y_val) == 0 or np.min(y_val) == np.max(y_val):
        return 0.5
    if cfg.stats.threshold == "youden":
        return M.youden_threshold(y_val, v)
    return M.threshold_at_specificity(y_val, v, cfg.stats.specificity)


def _statistics(runs, levels, arms, seeds, test: ImageSet, cfg: EvaluateConfig) -> dict:
    """Per level: each arm's metrics (mean over seeds, patient-bootstrap CI) and paired deltas."""
    st = cfg.stats
    groups = test.patients if st.bootstrap_unit == "patient" else test.keys
    W = M.bootstrap_weights(test.labels, groups, st.bootstrap, cfg.seed_base)
    sources = np.array([s for s in test.sources if isinstance(s, str)], dtype=object)
    per_source = len(set(sources)) > 1
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
                arm_res[arm]["per_source"] = _per_source(test, scores, thr, cfg)
        comparisons = {}
        for ref in ("real", "classical"):
            if ref not in arms_here:
                continue
            for arm in arms_here:
                if arm == ref or (ref == "classical" and arm == "real"):
                    continue  # "real vs classical" is just −("classical vs real")
                comparisons[f"{arm} vs {ref}"] = {
                    name: M.paired_difference(dists[arm][name], dists[ref][name], st.ci) for name in dists[arm]
                }
        adjusted = M.holm([c["auroc"]["p_bootstrap"] for c in comparisons.values()])
        for c, p in zip(comparisons.values(), adjusted):
            c["auroc"]["p_holm"] = p  # Holm over this level's AUROC comparisons
        out[level.name] = {"n_real_abnormal": level.n_abnormal, "arms": arm_res, "comparisons": comparisons}
    return out


def _per_source(test: ImageSet, scores: np.ndarray, thr, cfg: EvaluateConfig) -> dict:
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


def _quality_rows(manifest: pd.DataFrame, co: Cohort, cfg: EvaluateConfig) -> pd.DataFrame:
    """Synthetic rows to assess: intended abnormal, with a PNG, whose source image is in the cohort."""
    keys = set(co.ok()["image_key"])
    m = manifest
    ok = (m["intended_label"] == cfg.synthetic.intended_label) & m["png_path"].map(lambda p: isinstance(p, str) and bool(p))
    ok &= m["source_image_key"].isin(keys)
    return m[ok].reset_index(drop=True)


def _judged_abnormal(judge, co: Cohort, syn: SyntheticSet, rows: pd.DataFrame, ref: ImageSet, qcfg,
                     seed: int) -> dict:
    """Translation success: the share of synthetic images the judge calls abnormal (at its val-chosen
    threshold), next to the same share for the real reference abnormal and normal images."""
    from xraymunit.evaluation.quality_study import pick_rows

    picked = pick_rows(rows, qcfg, seed)
    images = synthetic_images(syn, picked, judge.image_size).images
    t = judge.threshold
    real = judge.scores(ref.images)
    return {"synthetic": float(np.mean(judge.scores(images) > t)) if len(images) else None,
            "n_synthetic": int(len(images)),
            "yardstick_real_abnormal": float(np.mean(real[ref.labels == 1] > t)) if (ref.labels == 1).any() else None,
            "yardstick_real_normal": float(np.mean(real[ref.labels == 0] > t)) if (ref.labels == 0).any() else None,
            "threshold": t, "note": "share judged abnormal at the judge's val-chosen (Youden) threshold"}


def _training_quality(training_run) -> dict | None:
    """The generator runs' quality tracking (quality.csv), by level when there is one run per level."""
    from xraymunit.quality_log import summarise_run

    if training_run is None:
        return None
    runs = dict(training_run) if isinstance(training_run, Mapping) else {"all": training_run}
    found = {str(k): summarise_run(v) for k, v in runs.items() if v is not None}
    return {k: v for k, v in found.items() if v is not None} or None


def _concat(sets: list[ImageSet]) -> ImageSet:
    return ImageSet(torch.cat([s.images for s in sets]), np.concatenate([s.labels for s in sets]),
                    np.concatenate([s.keys for s in sets]), np.concatenate([s.patients for s in sets]),
                    np.concatenate([s.sources for s in sets]))
