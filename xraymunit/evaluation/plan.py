"""What a study will run: the real splits, the low-data levels, the seeds, and per level the
arms and synthetic images — decided (and checked) before any classifier trains.

`plan_study` is deterministic given its inputs, so worker processes and torchrun ranks each
build the same plan and agree on the list of runs without exchanging data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from xraymunit import config as config_mod
from xraymunit.config.evaluate import EvaluateConfig, arm_parts, needs_synthetic, parse_level
from xraymunit.errors import XraymunitError
from xraymunit.evaluation.datasets import ImageSet, real_split, select_synthetic, synthetic_images
from xraymunit.evaluation.runcache import digest
from xraymunit.io.cohort import Cohort, SyntheticSet

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


@dataclass
class LevelSynthetic:
    """A level's synthetic training images: the selection, the loaded images and their fingerprint."""

    selection: object = None
    images: ImageSet | None = None
    fingerprint: dict | None = None
    root: str | None = None


@dataclass
class StudyPlan:
    """Every decision of a study before any classifier trains.

    syn_of[level] lists the synthetic folders given for the level (one per generator; empty: none);
    synthetic[level] holds the usable ones, loaded (generator index i = position i in this list).
    """

    cohort: Cohort
    sets: dict[str, ImageSet]
    levels: list[Level]
    seeds: list[int]
    arms: list[str]
    level_arms: dict[str, list[str]]
    syn_of: dict[str, list[SyntheticSet]]
    synthetic: dict[str, list[LevelSynthetic]]
    per_level: bool
    notes: list[str] = field(default_factory=list)
    loaded: dict[str, LevelSynthetic] = field(default_factory=dict)  # every given folder, usable or not
    external: dict = field(default_factory=dict)  # test cohort name → external.ExternalSet (--test-cohort)

    @property
    def train(self) -> ImageSet:
        return self.sets["train"]

    @property
    def with_synthetic(self) -> list[Level]:
        return [lv for lv in self.levels if self.syn_of[lv.name]]

    @property
    def assessed(self) -> SyntheticSet | None:
        """The synthetic set the quality metrics assess (the largest level's first generator)."""
        return self.syn_of[self.with_synthetic[-1].name][0] if self.with_synthetic else None

    def n_generators(self, level: str) -> int:
        """How many generators' images the synthetic arms of a level train on (0: none usable)."""
        return len(self.synthetic.get(level) or [])

    def run_generators(self, level: str, arm: str) -> list[int | None]:
        """The generator of each run an arm needs per seed: [None] when the arm does not depend on the
        generator; for duplicate_real one per distinct synthetic count (the pool depends only on it)."""
        if not needs_synthetic(arm):
            return [None]
        return sorted({self.run_generator(level, arm, g) for g in range(self.n_generators(level))})

    def run_generator(self, level: str, arm: str, g: int) -> int | None:
        """Which generator's run stands for generator g in an arm (None: the arm has one run per seed)."""
        if not needs_synthetic(arm):
            return None
        if arm_parts(arm)[1] == "duplicate_real":
            counts = [len(s.images) for s in self.synthetic[level]]
            return counts.index(counts[g])
        return g

    def jobs(self) -> list[tuple[Level, int, str, int | None]]:
        """Every classifier run (level, seed, arm, generator index or None), in the fixed report order."""
        return [(lv, seed, arm, g) for lv in self.levels for seed in self.seeds for arm in self.level_arms[lv.name]
                for g in self.run_generators(lv.name, arm)]


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


def plan_study(cohort, synthetic, cfg: EvaluateConfig, test_cohorts=()) -> StudyPlan:
    """Open the inputs, load the real splits, synthetic images and test cohorts, and decide every run."""
    co = cohort if isinstance(cohort, Cohort) else Cohort.open(cohort)
    size, notes = cfg.classifier.image_size, []
    sets = {s: real_split(co, s, size, cfg.normal_label, cfg.abnormal_label) for s in ("train", "val", "test")}
    _check_sets(sets, notes)
    levels, level_notes = plan_levels(cfg.real_abnormal, len(sets["train"].where(1)))
    notes += level_notes
    per_level = isinstance(synthetic, Mapping)
    if per_level:
        syn_of = _per_level_synthetic(synthetic, levels, notes)
    else:
        given = generator_sets(synthetic, "synthetic")
        syn_of = {lv.name: given for lv in levels}
    plan = StudyPlan(co, sets, levels, [cfg.seed_base + i for i in range(cfg.seeds)], list(cfg.arms), {}, syn_of,
                     {}, per_level, notes)
    _plan_synthetic(plan, cfg)
    if test_cohorts:
        from xraymunit.evaluation.external import open_test_cohorts

        plan.external = open_test_cohorts(co, test_cohorts, cfg, plan.notes)
    if not plan.arms:
        raise EvaluateError("no arm left to run (all configured arms need synthetic images or mirror them)")
    if cfg.real_abnormal_subset == "shared":
        log.info("real_abnormal_subset: shared — every seed keeps seed %d's K real abnormal images", cfg.seed_base)
    return plan


def _check_sets(sets: dict[str, ImageSet], notes: list[str]) -> None:
    for name in ("train", "test"):
        n_abn = int(sets[name].labels.sum())
        if n_abn == 0 or n_abn == len(sets[name]):
            raise EvaluateError(
                f"the {name} split needs both normal and abnormal images (has {len(sets[name]) - n_abn} normal, "
                f"{n_abn} abnormal); re-ingest with labels for both classes")
    val = sets["val"]
    if len(val) == 0 or val.labels.min() == val.labels.max():
        notes.append(f"the val split has {len(val)} image(s) of one class only: no model selection, every run "
                     "keeps its last step (and the balanced-accuracy threshold is 0.5)")
    overlap = set(sets["train"].patients) & (set(val.patients) | set(sets["test"].patients))
    if overlap:
        raise EvaluateError(f"{len(overlap)} patient(s) appear in train and in val/test: the cohort's "
                            "splits are not patient-level; re-run ingest")


def _plan_synthetic(plan: StudyPlan, cfg: EvaluateConfig) -> None:
    """Load each distinct synthetic folder once; drop arms 3/4 and their controls where no usable image
    exists (noted)."""
    loaded = plan.loaded
    synthetic_arms = [a for a in plan.arms if needs_synthetic(a)]
    for lv in plan.levels:
        given = plan.syn_of[lv.name]
        tag = lv.name if plan.per_level or len(given) > 1 else None
        for s_lv in given:
            if str(s_lv.root) not in loaded:
                loaded[str(s_lv.root)] = _load_synthetic(s_lv, cfg, plan.cohort, tag)
        got = [loaded[str(s.root)] for s in given]
        plan.synthetic[lv.name] = [g for g in got if g.images is not None]
        plan.level_arms[lv.name] = list(plan.arms) if plan.synthetic[lv.name] else \
            [a for a in plan.arms if not needs_synthetic(a)]
        for i, (s_lv, g) in enumerate(zip(given, got)):
            if g.images is None and len(given) > 1 and plan.synthetic[lv.name]:
                plan.notes.append(f"level {lv.name}: generator {i + 1} ({s_lv.root}) has no synthetic image usable "
                                  f"for training ({g.selection.counts()['excluded_by_reason']}): left out")
        if plan.synthetic[lv.name] or not plan.per_level or (not given and not synthetic_arms):
            continue
        plan.notes.append(f"level {lv.name}: no synthetic folder given for this level: arms {synthetic_arms} "
                          "skipped at this level" if not given else
                          f"level {lv.name}: no synthetic image of {', '.join(str(s.root) for s in given)} is usable "
                          f"for training ({got[0].selection.counts()['excluded_by_reason']}): arms {synthetic_arms} "
                          "skipped at this level")
    if not plan.per_level:
        given = plan.syn_of[plan.levels[0].name]
        if not plan.synthetic[plan.levels[0].name] and (synthetic_arms or given):
            plan.notes.append("no synthetic folder given: arms {} skipped".format(synthetic_arms) if not given else
                              f"no synthetic image is usable for training "
                              f"({loaded[str(given[0].root)].selection.counts()['excluded_by_reason']}): "
                              f"arms {synthetic_arms} skipped")
    plan.arms = [a for a in plan.arms if any(a in la for la in plan.level_arms.values())]
    if (plan.per_level and cfg.real_abnormal_subset != "shared" and len(plan.seeds) > 1
            and any(lv.name != "all" for lv in plan.with_synthetic)):
        plan.notes.append("**Warning:** one generator per level, but real_abnormal_subset is per_seed: seeds other "
                          f"than {cfg.seed_base} train arms 3/4 of a level on other K real abnormal images than the "
                          "ones its generator can have been trained on; set real_abnormal_subset: shared")


def _load_synthetic(syn: SyntheticSet, cfg: EvaluateConfig, co: Cohort, level: str | None) -> LevelSynthetic:
    sel = select_synthetic(syn.manifest, co.manifest, cfg.synthetic)
    fp = _synth_fp(syn, sel, cfg)
    if level is not None:
        fp["folder"] = str(syn.root)
    if not len(sel.used):
        return LevelSynthetic(sel, None, fp, str(syn.root))
    log.info("loading %d synthetic training images%s", len(sel.used), "" if level is None else f" of level {level}")
    return LevelSynthetic(sel, synthetic_images(syn, sel.used, cfg.classifier.image_size, dtype=torch.float16), fp,
                          str(syn.root))


def generator_sets(value, what: str) -> list[SyntheticSet]:
    """One level's generators as opened sets: None → [], a folder or set → [it], a list → each (in order)."""
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    sets = [v if isinstance(v, SyntheticSet) else SyntheticSet.open(v) for v in items]
    roots = [str(Path(s.root).resolve()) for s in sets]
    if len(set(roots)) < len(roots):
        raise EvaluateError(f"{what}: the same synthetic folder is listed twice as two generators ({roots})")
    return sets


def _per_level_synthetic(mapping: Mapping, levels: list[Level], notes: list[str]) -> dict:
    """{level name → [SyntheticSet, ...]} from a {level → folder or [folders]} mapping (keys like '5', 10, 'all')."""
    names = [lv.name for lv in levels]
    out: dict[str, list[SyntheticSet]] = {name: [] for name in names}
    given: set[str] = set()
    for key, folders in mapping.items():
        parsed = parse_level(key if isinstance(key, (int, str)) else str(key))
        name = "all" if parsed == "all" else str(parsed)
        if name in given:
            raise EvaluateError(f"two synthetic entries for level {name} (give several generators as one list)")
        given.add(name)
        if name not in out:
            notes.append(f"synthetic folder for level {name} ignored: the study's levels are {names}")
            continue
        out[name] = generator_sets(folders, f"level {name}")
    return out


def _synth_fp(syn: SyntheticSet, selection, cfg: EvaluateConfig) -> dict:
    """What a synthetic arm's training depends on: mixing settings, the images used, their generator."""
    return {
        "synthetic": config_mod.to_dict(cfg.synthetic), "keys": digest(selection.used["synth_key"]),
        "manifest": file_stamp(syn.root / "manifest.parquet"),  # re-synthesised → retrain
        "checkpoints": sorted(map(str, selection.used.get("checkpoint_sha256", pd.Series([])).unique()))}


def file_stamp(path: Path) -> list:
    """Size and modification time: cheap evidence that a file was rewritten."""
    try:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return []
