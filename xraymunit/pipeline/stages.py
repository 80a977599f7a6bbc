"""The four stages of the chain as `Stage`s, each calling the public stage function.

The functions are looked up on `xraymunit` when a stage runs (`xraymunit.ingest`, `.train`,
`.synthesize`, `.evaluate`), so the pipeline composes exactly what users call, and a test can
replace one of them on the package.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import xraymunit
from xraymunit import config
from xraymunit.config.train import TrainConfig
from xraymunit.pipeline.config import PipelineConfig, SynthesizeStage, input_path
from xraymunit.pipeline.layout import RunLayout
from xraymunit.pipeline.stage import Stage
from xraymunit.pipeline.state import file_sha, flat, listing, sha

log = logging.getLogger("xraymunit.pipeline")


def ingest_stage(cfg: PipelineConfig, layout: RunLayout, progress: bool) -> Stage:
    """DICOM folder (or the bundled sample) → OUT/cohort/; reruns resume from ingest's journal."""
    import xraymunit.sample_data as sample

    s = cfg.ingest
    source = sample.path() if s.input == "sample" else input_path(s.input)
    labels = sample.labels_csv() if s.labels == "sample" else input_path(s.labels) if s.labels else None
    cohort = layout.cohort
    salt = input_path(s.salt_file) if s.salt_file else None
    fp = sha({"listing": listing(source), "labels": file_sha(labels) if labels else None,
              "size": s.size, "fit": s.fit, **s.changed_settings(),
              **({"salt": file_sha(salt) if salt.is_file() else str(salt)} if salt else {})})

    def work() -> str:
        r = xraymunit.ingest(source, cohort, labels=labels, size=s.size, workers=s.workers, fit=s.fit,
                             window=s.window, contrast=s.contrast, salt_file=salt, progress=progress)
        statuses = ", ".join(f"{k} {v}" for k, v in r.by_status.items())
        return f"{r.files} files, {statuses} (decoded {r.decoded}, reused {r.reused})"

    return Stage("ingest", 1, fp, RunLayout.manifest(cohort), cohort, lambda: f"{source} → {cohort}", work)


def train_stage(key: str, run_dir: Path, train_cfg: TrainConfig, what: str, cohort: Path, cohort_fp: str,
                progress: bool) -> Stage:
    """Train one MUNIT into run_dir; a longer training (steps, time limit) resumes the run."""
    from xraymunit.config.train import resume_conflicts

    cfg_dict = config.to_dict(train_cfg)
    fp = sha({"config": cfg_dict, "cohort": cohort_fp})
    # what a resume may not change (not: steps, time limit, logging, quality tracking)
    core = sha({"config": {k: v for k, v in flat(cfg_dict).items() if resume_conflicts({k: v}, {k: object()})},
                "cohort": cohort_fp})
    ckpt = RunLayout.last_checkpoint(run_dir)

    def announce() -> str:
        resuming = ", resuming" if ckpt.is_file() else ""
        return f"{what} ({train_cfg.train.steps} steps{resuming}) → {run_dir}"

    def work() -> str:
        result = xraymunit.train(cohort, run_dir, train_cfg, resume=ckpt.is_file(), progress=progress)
        return f"{result.images_per_second:.2f} img/s; samples in {run_dir / 'samples'}"

    return Stage(key, 2, fp, ckpt, run_dir, announce, work, core=core)


def chosen_checkpoint(key: str, s: SynthesizeStage, run_dir: Path) -> Path:
    """checkpoints/last.pt (default) or best.pt as configured; best.pt exists only when quality tracking ran."""
    chosen = RunLayout.checkpoint(run_dir, s.checkpoint)
    last = RunLayout.last_checkpoint(run_dir)
    if not chosen.is_file():
        log.info("[3/4] %s: no %s, using %s", key, chosen.name, last.name)
        return last
    return chosen


def level_synthesis(s: SynthesizeStage, level: str, n_judged: str = "all train") -> SynthesizeStage:
    """The synthesis settings of one per-level generator: `best` becomes `last` below the 'all' level.

    best.pt is the step the judge scored highest, and the judge trained on every train abnormal:
    picking a level-K generator's step with it lets more than the K abnormals shape that level.
    """
    if s.checkpoint != "best" or level == "all":
        return s
    log.info("[3/4] synthesize_%s: using last.pt, not best.pt: best is picked by a judge that saw %s abnormals, "
             "more than this level's", level, n_judged)
    return dataclasses.replace(s, checkpoint="last")


def synthesize_stage(key: str, synth: Path, s: SynthesizeStage, run_dir: Path, cohort: Path, cohort_fp: str,
                     device: str, progress: bool) -> Stage:
    """Synthesize from run_dir's chosen checkpoint into synth; reruns skip images already written."""
    ckpt = chosen_checkpoint(key, s, run_dir)
    fp = sha({"params": config.to_dict(s), "checkpoint": file_sha(ckpt), "cohort": cohort_fp})

    def work() -> str:
        formats = ("png", "dicom") if s.format == "both" else (s.format,)
        result = xraymunit.synthesize(ckpt, cohort, synth, n_styles=s.n_styles, split=s.split,
                                      direction=s.direction, seed=s.seed, formats=formats,
                                      batch_size=None if s.batch_size == "auto" else s.batch_size,
                                      change_maps=s.change_maps,
                                      device=device, progress=progress)
        steps = sorted(set(result.manifest["checkpoint_step"])) if len(result.manifest) else []
        return f"{len(result.manifest)} images from {ckpt.name} (step {', '.join(map(str, steps)) or '-'})"

    def announce() -> str:
        return f"{s.n_styles} styles per {s.split} image ({s.direction}) from {ckpt.name} → {synth}"

    return Stage(key, 3, fp, RunLayout.manifest(synth), synth, announce, work, aside="unknown")


def evaluate_stage(layout: RunLayout, eval_cfg, synth_for, runs, cohort_fp: str, synth_fp, device: str,
                   progress: bool, levels: list[str] | None) -> Stage:
    """The classifier study and quality metrics → OUT/report/; finished classifier runs are reused."""
    report = layout.report
    fp = sha({"config": config.to_dict(eval_cfg), "cohort": cohort_fp, "synth": synth_fp, "device": device})

    def work() -> str:
        xraymunit.evaluate(layout.cohort, synth_for, report, eval_cfg, device=None if device == "auto" else device,
                           progress=progress, training_run=runs)
        return ""

    info = {} if levels is None else {"levels": levels}
    return Stage("evaluate", 4, fp, layout.summary, report, lambda: f"→ {report}", work, aside="never", info=info)
