"""Stage 4: does adding synthetic abnormal images help a classifier? Measured on real images.

    evaluate(cohort, synthetic, out, config) -> metrics dict

For every level of real abnormal training images, every seed and every arm —
(1) real, (2) real + classical augmentation, (3) real + synthetic, (4) all three —
train the same classifier with the same budget, select on val, score on test; then
bootstrap the test patients for CIs and paired arm-vs-arm differences, assess the
synthetic images' quality, and write metrics.json, plots and summary.md.

Three parts: plan (plan.py: data, levels, arms), execute (runs.py, parallel.py: the
classifier runs, in this process, in worker processes or over torchrun ranks), record
(statistics.py, quality/study_section.py, record.py, report.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from xraymunit import config as config_mod
from xraymunit import distributed
from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.evaluation import parallel, provenance
from xraymunit.evaluation.classifier import RunAbandoned
from xraymunit.evaluation.plan import EvaluateError, Level, StudyPlan, plan_levels, plan_study
from xraymunit.evaluation.runcache import RunCache
from xraymunit.evaluation.runs import RunExecutor, run_share
from xraymunit.io import outdir
from xraymunit.io.cohort import Cohort, SyntheticSet
from xraymunit.runtime import apply_threads, progress_enabled
from xraymunit.stopping import Stopped, stop_requests

__all__ = ["EvaluateError", "Level", "evaluate", "plan_levels"]

log = logging.getLogger(__name__)


class EvaluationResult(dict):
    """The metrics dict written to metrics.json (a plain dict in every use), printed in one line."""

    def __init__(self, metrics: Mapping, out: str | Path | None = None):
        super().__init__(metrics)
        self.out = None if out is None else Path(out)

    def __repr__(self) -> str:
        if self.get("report", ...) is None:  # a torchrun rank other than 0
            return f"EvaluationResult(rank {self.get('rank')} of {self.get('world_size')}: rank 0 writes the report)"
        levels = ", ".join(str(lv.get("name")) for lv in self.get("levels", []))
        return (f"EvaluationResult({self.out or self.get('cohort')}: arms {', '.join(self.get('arms', []))}; "
                f"{self.get('seeds')} seed(s); levels {levels}; {len(self.get('runs', []))} classifier runs; "
                f"a dict, as metrics.json)")


@outdir.owns("evaluate", "out", when=distributed.is_main_process,
             guard=("runs", "metrics.json", "summary.md", "predictions.csv"))
def evaluate(
    cohort: str | Path | Cohort,
    synthetic: str | Path | SyntheticSet | Sequence | Mapping[str, str | Path | SyntheticSet | Sequence | None] | None,
    out: str | Path,
    config: EvaluateConfig | str | Path | None = None,
    *,
    device: str | None = None,
    progress: bool | None = None,
    resume: bool = True,
    training_run: str | Path | Sequence | Mapping[str, str | Path | Sequence] | None = None,
    test_cohorts: list[str | Path] | None = None,
    overrides: Sequence[str] = (),
) -> EvaluationResult:
    """Run the classifier study and the quality metrics; write the report into `out`.

    Args:
        cohort: an ingested cohort folder (or an opened Cohort).
        synthetic: a synthesize output folder, or None (arms 3 and 4 are then skipped, and
            the report says so; no quality metrics), or a mapping {level name ('5', '10',
            'all') → folder}: one generator per low-data level, arms 3/4 of level K use only
            that level's images (levels without a folder skip arms 3/4, with a note), and the
            quality metrics assess the largest level's folder. Where a folder goes, a list of
            folders gives G generators (different train seeds, same K real abnormals): the arms that
            depend on the generator train once per generator and seed, and the intervals resample
            generators, seeds and test patients (evaluation/resampling.py).
        out: the report folder (metrics.json, predictions.csv, plots, summary.md, config).
        config: the study and how to run it (device, progress, workers): an EvaluateConfig, a shipped
            config's name (e.g. "evaluate_cpu") or a YAML path (default: EvaluateConfig()).
        device, progress: shorthands for config.device / config.progress (the pipeline passes them).
        resume: reuse finished runs found in out/runs/ whose fingerprint (config, seed,
            image keys) matches; False retrains everything.
        training_run: the MUNIT run folder(s) behind the synthetic images, shaped like `synthetic`
            (one, a list, or {level: folder or [folders]}, in the order of the synthetic folders);
            their quality tracking (quality.csv, quality.png) is summarised in the report, and the
            real abnormal keys each generator trained on (data.domain_b_keys) are hashed into
            metrics.json["provenance"] — with one generator per level, evaluate refuses (EvaluateError)
            a generator whose keys differ from the K its level's arms use.
        test_cohorts: other cohort folders (external validation): every arm's models are also scored on
            each one's `config.external_split` images, with a patient bootstrap over that cohort
            (metrics.json `external`, summary.md "External validation"). A cohort ingested with other
            image settings is refused; patient keys shared with this cohort are warned about.
        overrides: "key=value" settings applied on top of `config`, as `--set` does (e.g. "seeds=3").

    Returns:
        The metrics dict also written to out/metrics.json (an EvaluationResult: a dict with a one-line
        repr). Under torchrun, ranks other than 0
        return {"rank", "world_size", "report": None}: rank 0 writes the report.
    Raises:
        Stopped: on SIGTERM, after keeping the finished runs in out/runs/ (rerun to resume).
    """
    given = {k: v for k, v in (("device", device), ("progress", progress)) if v is not None}
    cfg = dataclasses.replace(config_mod.resolve(EvaluateConfig, config, overrides), **given)
    cfg.validate()
    group, dev = distributed.join(cfg.device)
    apply_threads(cfg.threads or None)  # automatic: shared among torchrun's local ranks
    t0, out = time.time(), Path(out)
    show = progress_enabled(cfg.progress) and group.main
    tests = tuple(str(p) for p in test_cohorts or ())
    plan = plan_study(cohort, synthetic, cfg, test_cohorts=tests)
    keys = provenance.check(plan, cfg, training_run)  # before any classifier trains: refuses a mismatch
    if cfg.quality.enabled and cfg.quality.backbone.weights and plan.assessed is not None:
        from xraymunit.quality.backbone import load_backbone  # a bad weight file fails now, not after the runs
        load_backbone(cfg.quality.backbone.weights, cfg.quality.backbone.image_size)
    timings = {"load_s": round(time.time() - t0, 1)}

    task = parallel.WorkerTask(str(plan.cohort.root), parallel.paths_of(synthetic), str(out), resume, show, tests)
    with stop_requests() as stop:
        t_phase = time.time()
        runs, resumed = execute(plan, cfg, dev, task, group, stop)
        if not group.main:
            return EvaluationResult({"rank": group.rank, "world_size": group.world, "report": None})
        timings["training_s"] = round(time.time() - t_phase, 1)
        return EvaluationResult(record(plan, cfg, dev, runs, resumed, out, training_run, show, timings, t0, stop,
                                       keys), out)


def execute(plan: StudyPlan, cfg: EvaluateConfig, dev, task: parallel.WorkerTask, group: distributed.Group,
            stop) -> tuple[list[dict], int]:
    """Every run of the plan, in plan order, and how many were reused from the cache.

    Sequential in this process, or shared out (workers / torchrun ranks write to the cache,
    then this process reads every run back). On a stop request: Stopped, finished runs kept.
    """
    out = Path(task.out)
    executor = RunExecutor(plan, cfg, dev, RunCache(out / "runs", enabled=task.resume))
    jobs = plan.jobs()
    try:
        if group.world == 1 and cfg.workers == 1:
            runs, resumed = run_share(executor, jobs, show=task.show, stop=stop)
        else:
            resumed = sum(executor.cached(*job) is not None for job in jobs) if group.main else 0
            group.barrier()  # counted before any process trains
            if group.world > 1:
                run_share(executor, parallel.share(jobs, group.rank, group.world), show=task.show, stop=stop,
                          desc=f"evaluate rank {group.rank}")
                group.barrier()
            elif not parallel.run_workers(task, cfg, len(jobs), stop):
                raise RunAbandoned("the workers stopped")
            runs = _read_back(plan, cfg, dev, out, jobs) if group.main else []
    except RunAbandoned:
        done = sum(RunExecutor(plan, cfg, dev, RunCache(out / "runs")).cached(*job) is not None for job in jobs)
        raise Stopped(f"{stop.signal_name or 'stop requested'}: {done} of {len(jobs)} classifier run(s) finished "
                      f"and kept in {out / 'runs'}; rerun the same command to resume") from None
    if resumed:
        plan.notes.append(f"{resumed} training run(s) reused from {out / 'runs'} (same fingerprint); "
                          "pass resume=False / --fresh to retrain")
    return runs, resumed


def _read_back(plan: StudyPlan, cfg: EvaluateConfig, dev, out: Path, jobs: list) -> list[dict]:
    """The runs other processes wrote to the cache, in plan order."""
    reader = RunExecutor(plan, cfg, dev, RunCache(out / "runs"))
    runs = [reader.cached(*job) for job in jobs]
    missing = [f"{lv.name}/{arm}{'' if g is None else f'/g{g + 1}'}/seed{seed}"
               for (lv, seed, arm, g), run in zip(jobs, runs) if run is None]
    if missing:
        raise EvaluateError(f"{len(missing)} run(s) missing from {out / 'runs'} after the workers finished "
                            f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}); rerun to train them")
    return runs


def record(plan: StudyPlan, cfg: EvaluateConfig, dev, runs: list[dict], resumed: int, out: Path, training_run,
           show: bool, timings: dict, t0: float, stop, keys: dict | None = None) -> dict:
    """Statistics, quality metrics and the report files; the metrics dict (Stopped before writing
    when a stop was requested meanwhile: every run is in the cache, a rerun only reports)."""
    from xraymunit.evaluation import report
    from xraymunit.evaluation.record import study_record
    from xraymunit.evaluation.statistics import study_statistics
    from xraymunit.quality.study_section import quality_section

    t_phase = time.time()
    results = study_statistics(runs, plan, cfg)
    timings["statistics_s"] = round(time.time() - t_phase, 1)
    t_phase = time.time()
    quality, grid = quality_section(plan, cfg, dev, show, out, training_run)
    metrics = study_record(plan, cfg, dev, runs, results, quality, resumed, training_run)
    metrics["provenance"] = provenance.with_arms(keys or {}, runs)
    if plan.external:
        from xraymunit.evaluation.external import statistics as external_statistics

        metrics["external"] = external_statistics(runs, plan, cfg)
    timings["quality_s"] = round(time.time() - t_phase, 1)
    t_phase = time.time()
    metrics["timings"] = timings
    metrics["elapsed_s"] = round(time.time() - t0, 1)
    if stop.requested:
        raise Stopped(f"{stop.signal_name}: all {len(runs)} classifier run(s) finished and kept in {out / 'runs'}, "
                      "the report was not written; rerun the same command to write it")
    report.write(out, metrics, runs, plan.sets["test"], plan.sets["val"], grid, cfg, plan.external)
    timings["report_s"] = round(time.time() - t_phase, 1)
    metrics["elapsed_s"] = round(time.time() - t0, 1)
    log.info("evaluate: wrote %s in %.0f s", out, metrics["elapsed_s"])
    return metrics
