"""Run (or resume) the whole chain into one output folder: ingest → train → synthesize → evaluate.

`generators: per_level` makes the low-data study honest: for each level K of the evaluate
config's `real_abnormal` it trains a generator on all train normals plus the *same* K real
abnormals the classifier arms of level K see (`data.domain_b_keys` = low_data_keys(K,
seed_base)) into OUT/train_K/, synthesizes from it into OUT/synth_K/, and evaluates arms 3/4
of level K with that level's images only (evaluate's `real_abnormal_subset: shared`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from xraymunit import config
from xraymunit.config import ConfigError
from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.config.train import TrainConfig
from xraymunit.errors import XraymunitError
from xraymunit.io import outdir
from xraymunit.pipeline.config import PipelineConfig, stage_config_path
from xraymunit.pipeline.layout import RunLayout
from xraymunit.pipeline.stage import run_stage
from xraymunit.pipeline.stages import evaluate_stage, ingest_stage, level_synthesis, synthesize_stage, train_stage
from xraymunit.pipeline.state import State, file_sha
from xraymunit.runtime import threads_scope

log = logging.getLogger("xraymunit.pipeline")


class PipelineError(XraymunitError):
    """The pipeline config cannot be run as asked (message says why)."""


def run(cfg: PipelineConfig, progress: bool = True, threads: int | None = None) -> Path:
    """Run (or resume) the whole chain; returns the path of the report's summary.md.

    Every stage's config is resolved first (a typo must not wait for hours of ingest and training).
    threads: CPU threads of every stage (None: each stage's automatic rule, `runtime.resolve_threads`).

    The pipeline holds OUT for the whole run (a second pipeline into it refuses at once); each
    stage locks its own sub-folder as well (cohort/, train/, synth/, report/)."""
    configs = resolve_configs(cfg)
    out = Path(cfg.out).expanduser().resolve()  # relative to where the pipeline is started
    layout = RunLayout(out)
    with outdir.claim(out, "pipeline", guard=("pipeline_state.json", "pipeline.log")), threads_scope(threads), \
            logging_to(layout.log):
        return _run(cfg, layout, progress, configs)


def resolve_configs(cfg: PipelineConfig) -> tuple[TrainConfig, EvaluateConfig]:
    """The train and evaluate configs with their --set overrides, checked before any stage runs."""
    overrides = list(cfg.train.set) + ([f"train.device={cfg.device}"] if cfg.device != "auto" else [])
    train_cfg = _stage_config("train", TrainConfig, cfg.train.config, overrides)
    per_level = ["real_abnormal_subset=shared"] if cfg.generators == "per_level" else []
    eval_cfg = _stage_config("evaluate", EvaluateConfig, cfg.evaluate.config, list(cfg.evaluate.set) + per_level)
    if cfg.generators == "per_level":
        _check_per_level(train_cfg, eval_cfg)
    return train_cfg, eval_cfg


def _stage_config(stage: str, cls: type, name: str, overrides: list[str]):
    try:
        return config.load(cls, stage_config_path(name), overrides)
    except ConfigError as exc:
        raise PipelineError(f"{stage}.config {name}: {exc}") from None


def _run(cfg: PipelineConfig, layout: RunLayout, progress: bool,
         configs: tuple[TrainConfig, EvaluateConfig]) -> Path:
    state = State(layout.root)
    train_cfg, eval_cfg = configs
    t_all = time.perf_counter()
    log.info("pipeline start → %s", layout.root)
    run_stage(state, ingest_stage(cfg, layout, progress))
    cohort, cohort_fp = layout.cohort, file_sha(RunLayout.manifest(layout.cohort))
    if cfg.generators == "per_level":
        synth_for, runs, levels = _per_level_generators(cfg, layout, state, cohort_fp, train_cfg, eval_cfg, progress)
        synth_fp = {name: ([file_sha(RunLayout.manifest(p)) for p in path] if isinstance(path, list)
                           else file_sha(RunLayout.manifest(path))) for name, path in synth_for.items()}
    else:
        synth_for, levels, runs = layout.synth(), None, layout.train()
        run_stage(state, train_stage("train", runs, train_cfg, cfg.train.config, cohort, cohort_fp, progress))
        run_stage(state, synthesize_stage("synthesize", synth_for, cfg.synthesize, runs, cohort, cohort_fp,
                                          cfg.device, progress))
        synth_fp = file_sha(RunLayout.manifest(synth_for))
    run_stage(state, evaluate_stage(layout, eval_cfg, synth_for, runs, cohort_fp, synth_fp, cfg.device, progress,
                                    levels))
    log.info("pipeline finished in %.1fs", time.perf_counter() - t_all)
    return layout.summary


def _per_level_generators(cfg: PipelineConfig, layout: RunLayout, state: State, cohort_fp: str,
                          train_cfg: TrainConfig, eval_cfg: EvaluateConfig, progress: bool) -> tuple[dict, dict, list[str]]:
    """Stages 2-3 once per generator of each low-data level: OUT/train_K[_gI]/ on the level's K real
    abnormals, OUT/synth_K[_gI]/.

    `eval_cfg` has real_abnormal_subset forced to shared. Returns {level name → synth folder} and
    {level name → run folder} (lists of G folders when generators_per_level >= 2) and the level names.
    """
    plan = level_generators(layout.cohort, train_cfg, eval_cfg, cfg.generators_per_level)
    for note in plan.notes:
        log.info("per-level generators: %s", note)
    log.info("per-level generators for levels %s of %d train abnormals (real_abnormal_subset: shared — every "
             "seed keeps the K real abnormals of seed %d that level K's generator trains on)",
             plan.levels, plan.available, eval_cfg.seed_base)
    synth_for, runs = {}, {}
    for gen in plan.generators:
        run_dir, synth = layout.train(gen.name), layout.synth(gen.name)
        what = f"{cfg.train.config} on {gen.n_keys} real abnormal(s), seed {gen.config.train.seed}"
        run_stage(state, train_stage(f"train_{gen.name}", run_dir, gen.config, what, layout.cohort, cohort_fp,
                                     progress))
        run_stage(state, synthesize_stage(f"synthesize_{gen.name}", synth,
                                          level_synthesis(cfg.synthesize, gen.level), run_dir, layout.cohort,
                                          cohort_fp, cfg.device, progress))
        synth_for.setdefault(gen.level, []).append(synth)
        runs.setdefault(gen.level, []).append(run_dir)
    if cfg.generators_per_level == 1:  # one generator: a path per level, as evaluate has always taken
        synth_for, runs = {k: v[0] for k, v in synth_for.items()}, {k: v[0] for k, v in runs.items()}
    return synth_for, runs, plan.levels


@dataclass(frozen=True)
class LevelGenerator:
    """One generator of a per-level pipeline: its folder name, its level, how many real abnormals it sees."""

    name: str
    level: str
    n_keys: int
    config: TrainConfig


@dataclass(frozen=True)
class LevelPlan:
    levels: list[str]
    available: int  # train abnormals the levels are drawn from
    notes: list[str]
    generators: list[LevelGenerator]


def level_generators(cohort_dir: Path, train_cfg: TrainConfig, eval_cfg: EvaluateConfig,
                     n_generators: int) -> LevelPlan:
    """Every generator a per-level pipeline trains, resolved once (the pipeline and any script that
    trains one of them beside it, e.g. pipelines/cxr_equalized/train_generator.py, must agree exactly)."""
    from xraymunit.evaluation.datasets import low_data_keys
    from xraymunit.evaluation.stage import plan_levels
    from xraymunit.io.cohort import Cohort

    co = Cohort.open(cohort_dir)
    labels = (eval_cfg.normal_label, eval_cfg.abnormal_label)
    available = low_data_keys(co, "all", eval_cfg.seed_base, *labels)
    levels, notes = plan_levels(eval_cfg.real_abnormal, len(available))
    generators = []
    for lv in levels:
        keys = low_data_keys(co, lv.n_abnormal, eval_cfg.seed_base, *labels)
        generators += [LevelGenerator(name, lv.name, len(keys), level_cfg)
                       for name, level_cfg in level_train_configs(train_cfg, lv.name, keys, n_generators)]
    return LevelPlan([lv.name for lv in levels], len(available), list(notes), generators)


def level_train_configs(train_cfg: TrainConfig, level: str, keys: list[str], n_generators: int):
    """(folder name, train config) of each generator of one level: the level's K keys, seeds seed..seed+G-1.

    One generator keeps the name of the level (train_K/); G >= 2 are train_K_g1/ ... train_K_gG/.
    """
    for g in range(1, n_generators + 1):
        level_cfg = copy.deepcopy(train_cfg)
        level_cfg.data.domain_b_keys = None if level == "all" else keys  # 'all': every abnormal, as single mode
        level_cfg.data.validate()
        level_cfg.train.seed = train_cfg.train.seed + g - 1
        yield (level if n_generators == 1 else f"{level}_g{g}"), level_cfg


def _check_per_level(train_cfg: TrainConfig, eval_cfg: EvaluateConfig) -> None:
    d = train_cfg.data
    if d.domain_b_keys is not None:
        raise PipelineError("generators: per_level sets the training data.domain_b_keys itself (each level's "
                            "K real abnormals); remove it from the train config or overrides")
    if (d.domain_a, d.domain_b, d.split) != (eval_cfg.normal_label, eval_cfg.abnormal_label, "train"):
        raise PipelineError(f"generators: per_level needs the generator's domains to be the study's classes on the "
                            f"train split: data.domain_a/domain_b/split are {d.domain_a}/{d.domain_b}/{d.split}, "
                            f"evaluate's normal_label/abnormal_label are {eval_cfg.normal_label}/"
                            f"{eval_cfg.abnormal_label}")


@contextlib.contextmanager
def logging_to(path: Path):
    """One log for the whole run (OUT/pipeline.log), plus the console when nothing else logs there;
    both removed when the run ends, so a second run in the same process (a notebook, a test) logs
    into its own file only, and no handler outlives the stream it writes to."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))  # keeps -v's DEBUG
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    added = []
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path for h in root.handlers):
        handler = logging.FileHandler(path)
        handler.setLevel(logging.INFO)
        handler.setFormatter(fmt)
        added.append(handler)
    if not any(type(h) is logging.StreamHandler for h in root.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(fmt)
        added.append(console)
    for handler in added:
        root.addHandler(handler)
    try:
        yield
    finally:
        for handler in added:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)


def where_things_are(cfg: PipelineConfig, summary: Path) -> list[str]:
    """The lines printed at the end: where the report, images, runs, cohort and log are."""
    layout = RunLayout(summary.parent.parent)
    lines = ["", f"Report:            {summary}", f"Metrics (JSON):    {layout.metrics}"]
    if cfg.generators == "per_level":
        names = [f"{name}_g{g}" if cfg.generators_per_level > 1 else name
                 for name in State(layout.root).data.get("evaluate", {}).get("levels", [])
                 for g in range(1, cfg.generators_per_level + 1)]
        for name in names:
            lines.append(f"Level {name + ':':<12} generator {layout.train(name)}, synthetic images "
                         f"{layout.synth(name) / 'images'}")
    else:
        lines.append(f"Synthetic images:  {layout.synth() / 'images'}  "
                     f"(manifest: {RunLayout.manifest(layout.synth())})")
        lines.append(f"Training run:      {layout.train()}  (samples/, tensorboard/, metrics.csv)")
    lines.append(f"Cohort:            {layout.cohort}  (manifest.parquet, ingest_report.json)")
    lines.append(f"Log:               {layout.log}")
    return lines
