"""Execute the study's classifier runs: train (or reuse from OUT/runs/) and score each one.

A run is identified by (level, seed, arm) and fingerprinted by everything that determines
it, so it gives the same scores whichever process trains it and in whichever order: that is
what lets workers and torchrun ranks share the runs out (`parallel`) and a stopped study
resume from the cache.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import torch

from xraymunit import config as config_mod
from xraymunit.config.evaluate import EvaluateConfig, arm_parts, needs_synthetic
from xraymunit.evaluation import controls, external
from xraymunit.evaluation.classifier import TrainPool, predict, train_classifier
from xraymunit.evaluation.datasets import ClassicalAugment, low_data_keys
from xraymunit.evaluation.plan import Level, StudyPlan, file_stamp
from xraymunit.evaluation.runcache import RunCache, digest, fingerprint
from xraymunit.evaluation.statistics import threshold

log = logging.getLogger(__name__)


class RunExecutor:
    """Trains or reloads the runs of one plan on one device."""

    def __init__(self, plan: StudyPlan, cfg: EvaluateConfig, device, cache: RunCache):
        self.plan, self.cfg, self.device, self.cache = plan, cfg, device, cache
        train, sets = plan.train, plan.sets
        self.normal_rows = train.where(0)
        self.base_fp = {"classifier": config_mod.to_dict(cfg.classifier), "device": torch.device(device).type,
                        "cache": file_stamp(plan.cohort.root / "cache" / "images.npy"),  # re-ingest → retrain
                        "train_normal": digest(train.keys[self.normal_rows]), "val": digest(sets["val"].keys),
                        "test": digest(sets["test"].keys)}
        self._position = {k: i for i, k in enumerate(train.keys)}
        self._kept: dict[tuple[int, int], np.ndarray] = {}
        self._control: tuple[tuple, torch.Tensor] | None = None  # the last control pool built (runs come in order)

    def real_abnormal_rows(self, level: Level, seed: int) -> np.ndarray:
        """Rows of train holding the level's K real abnormals (low_data_keys: the pipeline's rule too)."""
        cfg = self.cfg
        subset_seed = cfg.seed_base if cfg.real_abnormal_subset == "shared" else seed
        if (level.n_abnormal, subset_seed) not in self._kept:
            keys = low_data_keys(self.plan.cohort, level.n_abnormal, subset_seed, cfg.normal_label, cfg.abnormal_label)
            self._kept[level.n_abnormal, subset_seed] = np.sort(np.array([self._position[k] for k in keys], np.int64))
        return self._kept[level.n_abnormal, subset_seed]

    def generator_tag(self, level: Level, generator: int | None) -> int | None:
        """The 1-based generator number a run is filed under (None: one generator, or an arm without one)."""
        return None if generator is None or self.plan.n_generators(level.name) < 2 else generator + 1

    def added_images(self, level: Level, seed: int, arm: str, generator: int = 0) -> torch.Tensor | None:
        """The abnormal images an arm adds to the real ones: generator's synthetic set, a control built from it,
        or None."""
        added = arm_parts(arm)[1]
        if added is None or not self.plan.synthetic[level.name]:
            return None
        made = self.plan.synthetic[level.name][generator]
        synth = made.images
        if added == "synthetic":
            return synth.images
        keep = self.real_abnormal_rows(level, seed)
        key = (level.name, added, digest(self.plan.train.keys[keep]), digest(synth.keys))
        if self._control is None or self._control[0] != key:
            abnormal = self.plan.train.images[torch.as_tensor(keep)]
            if added == "duplicate_real":
                pool = controls.duplicate_real(abnormal, len(synth), synth.images.dtype)
            else:
                rows = made.selection.used
                sources = controls.source_images(list(rows["source_image_key"]), self.plan.train, self.plan.cohort,
                                                 self.cfg.classifier.image_size)
                pool = controls.intensity_control(sources, abnormal, list(synth.keys), self.cfg.seed_base,
                                                  synth.images.dtype)
            self._control = (key, pool)
        return self._control[1]

    def training_keys(self, level: Level, seed: int, arm: str, generator: int | None) -> list[str]:
        """What each training image of a run is, one entry per image (repeats kept): real image_keys, synth_keys,
        'SOURCE>matched>REFERENCE' for an intensity-control row; its hash is the run's train_keys_sha256."""
        train = self.plan.train
        keep = self.real_abnormal_rows(level, seed)
        keys = [str(k) for k in train.keys[self.normal_rows]] + [str(k) for k in train.keys[keep]]
        added = arm_parts(arm)[1]
        if added is None or generator is None:
            return keys
        made = self.plan.synthetic[level.name][generator]
        if added == "synthetic":
            return keys + [str(k) for k in made.images.keys]
        reals = sorted(str(k) for k in train.keys[keep])
        if added == "duplicate_real":
            return keys + [reals[i % len(reals)] for i in range(len(made.images))]
        rows = made.selection.used
        return keys + [f"{src}>matched>{reals[controls.reference_index(str(k), len(reals), self.cfg.seed_base)]}"
                       for k, src in zip(rows["synth_key"], rows["source_image_key"])]

    def fingerprint(self, level: Level, seed: int, arm: str, generator: int | None = 0) -> str:
        keep = self.real_abnormal_rows(level, seed)
        made = self.plan.synthetic[level.name]
        classical, added = arm_parts(arm)
        synth = made[generator or 0].fingerprint if made and added is not None else None
        parts = {**self.base_fp, "arm": arm, "seed": seed, "real_abnormal": digest(self.plan.train.keys[keep]),
                 "augment": config_mod.to_dict(self.cfg.augment) if classical else None, "synthetic": synth}
        if self.plan.external:  # only then: runs cached without test cohorts keep their fingerprint
            parts["external"] = external.fingerprint(self.plan.external)
        return fingerprint(parts)

    def _identify(self, run: dict, level: Level, seed: int, arm: str, generator: int | None) -> dict:
        """The parts of a run's record that are not cached (so runs cached before they existed still match)."""
        run["generator"] = None if generator is None else generator + 1
        run["train_keys_sha256"] = sha256_of(self.training_keys(level, seed, arm, generator))
        return run

    def cached(self, level: Level, seed: int, arm: str, generator: int | None = None) -> dict | None:
        """The finished run from OUT/runs/ when its fingerprint matches, else None."""
        generator = self._default(level, arm, generator)
        run = self.cache.load(level.name, arm, seed, self.fingerprint(level, seed, arm, generator),
                              self.generator_tag(level, generator))
        if run is not None:
            del run["fingerprint"]  # a reused run's record is the same as a freshly trained one's
            run["threshold"] = threshold(self.plan.sets["val"].labels, run["_val_scores"], self.cfg)
            self._identify(run, level, seed, arm, generator)
        return run

    def _default(self, level: Level, arm: str, generator: int | None) -> int | None:
        return 0 if generator is None and needs_synthetic(arm) and self.plan.synthetic[level.name] else generator

    def train(self, level: Level, seed: int, arm: str, generator: int | None = None, bar=None, stop=None) -> dict:
        """Train, score and cache one run (RunAbandoned when `stop` is requested meanwhile)."""
        cfg, plan = self.cfg, self.plan
        generator = self._default(level, arm, generator)
        keep = self.real_abnormal_rows(level, seed)
        train, val, test = plan.train, plan.sets["val"], plan.sets["test"]
        pool = TrainPool(normal=train.images[torch.as_tensor(self.normal_rows)],
                         abnormal=train.images[torch.as_tensor(keep)],
                         synthetic=self.added_images(level, seed, arm, generator or 0),
                         synthetic_mix=cfg.synthetic.mix, balanced=cfg.classifier.balanced_batches)
        aug = ClassicalAugment(cfg.augment, cfg.classifier.image_size, seed) if arm_parts(arm)[0] else None
        res = train_classifier(pool, val, cfg.classifier, seed, self.device, augment=aug, progress=bar, stop=stop)
        v, t = predict(res.model, val.images, self.device), predict(res.model, test.images, self.device)
        run = {"level": level.name, "arm": arm, "seed": seed, "train_counts": pool.counts(),
               "best_step": res.best_step, "val_auroc": res.best_val_auroc, "threshold": threshold(val.labels, v, cfg),
               "history": res.history, "real_abnormal_keys_sha": digest(train.keys[keep]),
               "_val_scores": v, "_test_scores": t, "_external_scores": external.score(res.model, plan.external,
                                                                                       self.device)}
        self.cache.save(run, self.fingerprint(level, seed, arm, generator), self.generator_tag(level, generator))
        return self._identify(run, level, seed, arm, generator)

    def run(self, level: Level, seed: int, arm: str, generator: int | None = None, bar=None,
            stop=None) -> tuple[dict, bool]:
        """(the run, whether it was reused from the cache)."""
        run = self.cached(level, seed, arm, generator)
        if run is not None:
            if bar is not None:
                bar.update(self.cfg.classifier.steps)
            return run, True
        return self.train(level, seed, arm, generator, bar, stop), False


def sha256_of(keys) -> str:
    """Full SHA-256 of a key list, sorted (repeats kept), one key per line: the provenance hashes of
    metrics.json (its first 16 hex digits are `digest` of the same keys when they do not repeat)."""
    return hashlib.sha256("\n".join(sorted(map(str, keys))).encode()).hexdigest()


def run_share(executor: RunExecutor, jobs: list, *, show: bool, stop=None, desc: str = "evaluate: training",
              position: int | None = None) -> tuple[list[dict], int]:
    """Run `jobs` in order; (finished runs, how many were reused). Raises RunAbandoned on a stop request."""
    from xraymunit.evaluation.classifier import RunAbandoned
    from xraymunit.progress import progress

    steps = executor.cfg.classifier.steps
    runs, reused = [], 0
    with progress(len(jobs) * steps, desc, "step", bar=show, position=position) as bar:
        for level, seed, arm, generator in jobs:
            if stop is not None and stop.requested:
                raise RunAbandoned("stop requested between runs")
            tag = executor.generator_tag(level, generator)
            bar.set_postfix_str(f"{level.name}/{arm}{'' if tag is None else f'/g{tag}'}/seed{seed}")
            run, was_cached = executor.run(level, seed, arm, generator, bar, stop)
            runs.append(run)
            reused += was_cached
    return runs, reused
