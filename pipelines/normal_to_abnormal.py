#!/usr/bin/env python
"""ingest → train → synthesize → evaluate, from one YAML, composed from xraymunit's public API.

    python pipelines/normal_to_abnormal.py --config configs/pipeline_default.yaml
    python pipelines/normal_to_abnormal.py --config configs/pipeline_default.yaml --set train.steps=2000

Every stage is skipped when its outputs are up to date for its inputs and settings (a
fingerprint of both is stored in OUT/pipeline_state.json), so a rerun after a crash or a
Ctrl-C picks up where it stopped: ingest resumes from its journal, training resumes from
its last checkpoint, synthesis skips images already written, evaluation reuses finished
classifier runs. When a stage's settings change, its old outputs are moved to
`<stage>.previous/` (never deleted) and the stage and everything after it run again.
One log for the whole run: OUT/pipeline.log. At the end it prints where the report is.

`generators: per_level` makes the low-data study honest: for each level K of the evaluate
config's `real_abnormal` it trains a generator on all train normals plus the *same* K real
abnormals the classifier arms of level K see (`data.domain_b_keys` = low_data_keys(K,
seed_base)) into OUT/train_K/, synthesizes from it into OUT/synth_K/, and evaluates arms 3/4
of level K with that level's images only (evaluate's `real_abnormal_subset: shared`).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from xraymunit import config
from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.config.train import TrainConfig
from xraymunit.errors import XraymunitError
from xraymunit.io import atomic, outdir

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("xraymunit.pipeline")


# --------------------------------------------------------------------------- the pipeline config


@dataclass
class IngestStage:
    input: str = "sample"  # a DICOM/PNG folder, or "sample" for the bundled NIH DICOM cohort
    labels: Optional[str] = "sample"  # labels CSV, "sample", or null (labels from normal/abnormal folders)
    size: int = 256
    workers: int = 2
    fit: str = "pad"


@dataclass
class TrainStage:
    config: str = "configs/munit_tiny_cpu.yaml"
    set: list[str] = field(default_factory=list)


@dataclass
class SynthesizeStage:
    n_styles: int = 5
    split: str = "train"
    direction: str = "a2b"
    seed: int = 0
    format: str = "png"
    batch_size: int | Literal["auto"] = "auto"
    checkpoint: Literal["best", "last"] = "best"

    def validate(self) -> None:  # before hours of ingest and training, not after
        config.require(self.batch_size == "auto" or self.batch_size >= 1, "batch_size", "must be auto or >= 1")


@dataclass
class EvaluateStage:
    config: str = "configs/evaluate_tiny.yaml"
    set: list[str] = field(default_factory=list)


@dataclass
class PipelineConfig:
    out: str = "runs/default"
    device: str = "auto"
    generators: Literal["single", "per_level"] = "single"
    ingest: IngestStage = field(default_factory=IngestStage)
    train: TrainStage = field(default_factory=TrainStage)
    synthesize: SynthesizeStage = field(default_factory=SynthesizeStage)
    evaluate: EvaluateStage = field(default_factory=EvaluateStage)


def _repo_path(value: str) -> Path:
    """Input paths: as given if they exist (relative to the working folder), else relative to the repository."""
    path = Path(value).expanduser()
    return path if path.is_absolute() or path.exists() else REPO / path


# --------------------------------------------------------------------------- fingerprints and state


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha(path: Path) -> str:
    from xraymunit.checkpoint import file_sha256

    return file_sha256(path)


def _listing(root: Path) -> str:
    """Fingerprint of a folder's files (relative path, size, mtime): cheap, catches new or changed files."""
    items = sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in root.rglob("*") if p.is_file())
    return _sha(items)


class State:
    """OUT/pipeline_state.json: the fingerprint each stage's outputs were made from."""

    def __init__(self, out: Path):
        self.path = out / "pipeline_state.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def up_to_date(self, stage: str, fingerprint: str, output: Path) -> bool:
        entry = self.data.get(stage, {})
        return entry.get("fingerprint") == fingerprint and entry.get("status") == "done" and output.exists()

    def stale(self, stage: str, fingerprint: str, core: str | None = None) -> bool:
        """Outputs exist from other settings. With `core` (the settings a resume may not change),
        only a change of those counts: a longer training continues the run instead."""
        entry = self.data.get(stage)
        if core is not None and entry and entry.get("core"):
            return entry["core"] != core
        return bool(entry) and entry.get("fingerprint") != fingerprint

    def mark(self, stage: str, fingerprint: str, status: str, **info) -> None:
        self.data[stage] = {"fingerprint": fingerprint, "status": status, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                            **info}
        atomic.write_json(self.path, self.data)


def _flat(d: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} → {"a.b": 1}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _set_aside(path: Path) -> None:
    """Outputs made from other settings are moved to <name>.previous/, not deleted."""
    if path.exists():
        previous = path.with_name(path.name + ".previous")
        if previous.exists():
            shutil.rmtree(previous)
        path.rename(previous)
        log.info("settings changed: moved old %s to %s", path.name, previous.name)


# --------------------------------------------------------------------------- run


class PipelineError(XraymunitError):
    """The pipeline config cannot be run as asked (message says why)."""


def _train_stage(state: State, key: str, run_dir: Path, train_cfg: TrainConfig, what: str, cohort: Path,
                 cohort_fp: str, progress: bool) -> Path:
    """Train (resume, or skip when up to date) one MUNIT run into run_dir; returns its last checkpoint."""
    from xraymunit.training.stage import train

    from xraymunit.config.train import resume_conflicts

    cfg_dict = config.to_dict(train_cfg)
    fp = _sha({"config": cfg_dict, "cohort": cohort_fp})
    # what a resume may not change (not: steps, time limit, logging, quality tracking)
    core = _sha({"config": {k: v for k, v in _flat(cfg_dict).items() if resume_conflicts({k: v}, {k: object()})},
                 "cohort": cohort_fp})
    ckpt = run_dir / "checkpoints" / "last.pt"
    if state.up_to_date(key, fp, ckpt):
        log.info("[2/4] %s: up to date (%s)", key, ckpt)
    else:
        if state.stale(key, fp, core):
            _set_aside(run_dir)
        resume = ckpt.is_file()
        state.mark(key, fp, "running", core=core)
        t = time.perf_counter()
        log.info("[2/4] %s %s (%d steps%s) → %s", key, what, train_cfg.train.steps,
                 ", resuming" if resume else "", run_dir)
        result = train(cohort, run_dir, train_cfg, resume=resume, show_progress=progress)
        state.mark(key, fp, "done", core=core, seconds=round(time.perf_counter() - t, 1))
        log.info("[2/4] %s done in %.1fs (%.2f img/s); samples in %s", key, time.perf_counter() - t,
                 result.images_per_second, run_dir / "samples")
    return ckpt


def _synthesize_stage(state: State, key: str, synth: Path, s: SynthesizeStage, ckpt: Path, cohort: Path,
                      cohort_fp: str, device: str, progress: bool) -> str:
    """Synthesize (resume, or skip when up to date) from ckpt into synth; returns its manifest's sha256."""
    from xraymunit.synthesis.stage import synthesize

    chosen = ckpt.with_name(f"{s.checkpoint}.pt")
    if not chosen.is_file():  # best.pt exists only when quality tracking ran
        log.info("[3/4] %s: no %s, using %s", key, chosen.name, ckpt.name)
        chosen = ckpt
    ckpt = chosen
    fp = _sha({"params": config.to_dict(s), "checkpoint": _file_sha(ckpt), "cohort": cohort_fp})
    if state.up_to_date(key, fp, synth / "manifest.parquet"):
        log.info("[3/4] %s: up to date (%s)", key, synth)
    else:
        if state.stale(key, fp) or (synth.exists() and not state.data.get(key)):
            _set_aside(synth)
        state.mark(key, fp, "running")
        t = time.perf_counter()
        log.info("[3/4] %s %d styles per %s image (%s) from %s → %s", key, s.n_styles, s.split, s.direction,
                 ckpt.name, synth)
        formats = ("png", "dicom") if s.format == "both" else (s.format,)
        result = synthesize(ckpt, cohort, synth, n_styles=s.n_styles, split=s.split, direction=s.direction,
                            seed=s.seed, formats=formats, batch_size=None if s.batch_size == "auto" else s.batch_size,
                            device=device, show_progress=progress)
        state.mark(key, fp, "done", seconds=round(time.perf_counter() - t, 1))
        log.info("[3/4] %s done in %.1fs: %d images", key, time.perf_counter() - t, len(result.manifest))
    return _file_sha(synth / "manifest.parquet")


def run(cfg: PipelineConfig, progress: bool = True) -> Path:
    """Run (or resume) the whole chain; returns the path of the report's summary.md.

    The pipeline holds OUT for the whole run (a second pipeline into it refuses at once); each
    stage locks its own sub-folder as well (cohort/, train/, synth/, report/)."""
    out = Path(cfg.out).expanduser().resolve()  # relative to where the pipeline is started
    with outdir.claim(out, "pipeline", guard=("pipeline_state.json", "pipeline.log")):
        return _run(cfg, out, progress)


def _run(cfg: PipelineConfig, out: Path, progress: bool) -> Path:
    from xraymunit.evaluation.stage import evaluate
    from xraymunit.ingestion import ingest

    _log_to(out / "pipeline.log")
    state = State(out)
    t_all = time.perf_counter()
    log.info("pipeline start → %s", out)

    # ---- 1. ingest
    import xraymunit.sample_data as sample

    source = sample.path() if cfg.ingest.input == "sample" else _repo_path(cfg.ingest.input)
    labels = (sample.labels_csv() if cfg.ingest.labels == "sample"
              else _repo_path(cfg.ingest.labels) if cfg.ingest.labels else None)
    cohort = out / "cohort"
    fp = _sha({"listing": _listing(source), "labels": _file_sha(labels) if labels else None,
               "size": cfg.ingest.size, "fit": cfg.ingest.fit})
    if state.up_to_date("ingest", fp, cohort / "manifest.parquet"):
        log.info("[1/4] ingest: up to date (%s)", cohort)
    else:
        if state.stale("ingest", fp):
            _set_aside(cohort)
        state.mark("ingest", fp, "running")
        t = time.perf_counter()
        log.info("[1/4] ingest %s → %s", source, cohort)
        result = ingest(source, cohort, labels=labels, size=cfg.ingest.size, workers=cfg.ingest.workers,
                               fit=cfg.ingest.fit, progress=progress)
        state.mark("ingest", fp, "done", seconds=round(time.perf_counter() - t, 1))
        log.info("[1/4] ingest done in %.1fs: %d files, %s (decoded %d, reused %d)", time.perf_counter() - t,
                 result.files, ", ".join(f"{k} {v}" for k, v in result.by_status.items()), result.decoded,
                 result.reused)
    cohort_fp = _file_sha(cohort / "manifest.parquet")
    overrides = list(cfg.train.set) + ([f"train.device={cfg.device}"] if cfg.device != "auto" else [])
    train_cfg = config.load(TrainConfig, _repo_path(cfg.train.config), overrides)
    if cfg.generators == "per_level":
        eval_cfg, synth_for, levels = _per_level_generators(cfg, out, state, cohort, cohort_fp, train_cfg, progress)
        synth_fp = {name: _file_sha(path / "manifest.parquet") for name, path in synth_for.items()}
        runs = {name: out / f"train_{name}" for name in synth_for}
    else:
        # ---- 2. train
        ckpt = _train_stage(state, "train", out / "train", train_cfg, cfg.train.config, cohort, cohort_fp, progress)

        # ---- 3. synthesize
        synth = out / "synth"
        synth_fp = _synthesize_stage(state, "synthesize", synth, cfg.synthesize, ckpt, cohort, cohort_fp,
                                     cfg.device, progress)
        synth_for, levels, runs = synth, None, out / "train"
        eval_cfg = config.load(EvaluateConfig, _repo_path(cfg.evaluate.config), cfg.evaluate.set)

    # ---- 4. evaluate
    report = out / "report"
    fp = _sha({"config": config.to_dict(eval_cfg), "cohort": cohort_fp, "synth": synth_fp, "device": cfg.device})
    if state.up_to_date("evaluate", fp, report / "summary.md"):
        log.info("[4/4] evaluate: up to date (%s)", report)
    else:
        state.mark("evaluate", fp, "running")
        t = time.perf_counter()
        log.info("[4/4] evaluate → %s", report)
        evaluate(cohort, synth_for, report, eval_cfg, device=None if cfg.device == "auto" else cfg.device,
                 progress=progress, training_run=runs)
        info = {} if levels is None else {"levels": levels}
        state.mark("evaluate", fp, "done", seconds=round(time.perf_counter() - t, 1), **info)
        log.info("[4/4] evaluate done in %.1fs", time.perf_counter() - t)

    summary = report / "summary.md"
    log.info("pipeline finished in %.1fs", time.perf_counter() - t_all)
    return summary


def _per_level_generators(cfg: PipelineConfig, out: Path, state: State, cohort: Path, cohort_fp: str,
                          train_cfg: TrainConfig, progress: bool) -> tuple[EvaluateConfig, dict, list[str]]:
    """Stages 2-3 once per low-data level: OUT/train_K/ on the level's K real abnormals, OUT/synth_K/.

    Returns the evaluate config (real_abnormal_subset forced to shared), {level name → synth
    folder} and the level names.
    """
    from xraymunit.evaluation.stage import plan_levels
    from xraymunit.evaluation.datasets import low_data_keys
    from xraymunit.io.cohort import Cohort

    eval_cfg = config.load(EvaluateConfig, _repo_path(cfg.evaluate.config),
                           list(cfg.evaluate.set) + ["real_abnormal_subset=shared"])
    d = train_cfg.data
    if d.domain_b_keys is not None:
        raise PipelineError("generators: per_level sets the training data.domain_b_keys itself (each level's "
                            "K real abnormals); remove it from the train config or overrides")
    if (d.domain_a, d.domain_b, d.split) != (eval_cfg.normal_label, eval_cfg.abnormal_label, "train"):
        raise PipelineError(f"generators: per_level needs the generator's domains to be the study's classes on the "
                            f"train split: data.domain_a/domain_b/split are {d.domain_a}/{d.domain_b}/{d.split}, "
                            f"evaluate's normal_label/abnormal_label are {eval_cfg.normal_label}/"
                            f"{eval_cfg.abnormal_label}")
    co = Cohort.open(cohort)
    labels = (eval_cfg.normal_label, eval_cfg.abnormal_label)
    available = low_data_keys(co, "all", eval_cfg.seed_base, *labels)
    levels, notes = plan_levels(eval_cfg.real_abnormal, len(available))
    for note in notes:
        log.info("per-level generators: %s", note)
    log.info("per-level generators for levels %s of %d train abnormals (real_abnormal_subset: shared — every "
             "seed keeps the K real abnormals of seed %d that level K's generator trains on)",
             [lv.name for lv in levels], len(available), eval_cfg.seed_base)
    synth_for = {}
    for lv in levels:
        keys = low_data_keys(co, lv.n_abnormal, eval_cfg.seed_base, *labels)
        level_cfg = copy.deepcopy(train_cfg)
        level_cfg.data.domain_b_keys = None if lv.name == "all" else keys  # 'all': every abnormal, as single mode
        level_cfg.data.validate()
        run_dir, synth = out / f"train_{lv.name}", out / f"synth_{lv.name}"
        ckpt = _train_stage(state, f"train_{lv.name}", run_dir, level_cfg,
                            f"{cfg.train.config} on {len(keys)} real abnormal(s)", cohort, cohort_fp, progress)
        _synthesize_stage(state, f"synthesize_{lv.name}", synth, cfg.synthesize, ckpt, cohort, cohort_fp,
                          cfg.device, progress)
        synth_for[lv.name] = synth
    return eval_cfg, synth_for, [lv.name for lv in levels]


def _log_to(path: Path) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    if not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path for h in root.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(fmt)
        root.addHandler(handler)
    if not any(type(h) is logging.StreamHandler for h in root.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(fmt)
        root.addHandler(console)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "pipeline_default.yaml"),
                    help="pipeline YAML (default: configs/pipeline_default.yaml)")
    ap.add_argument("--out", default=None, help="output folder (overrides the config's `out`)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a pipeline key, e.g. --set synthesize.n_styles=20 (repeatable)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    args = ap.parse_args(argv)
    try:
        cfg = config.load(PipelineConfig, args.config, args.overrides + ([f"out={args.out}"] if args.out else []))
        summary = run(cfg, progress=not args.no_progress)
    except XraymunitError as exc:
        print(f"pipeline: error: {exc}", file=sys.stderr)
        return 2
    out = summary.parent.parent
    print()
    print(f"Report:            {summary}")
    print(f"Metrics (JSON):    {summary.parent / 'metrics.json'}")
    if cfg.generators == "per_level":
        levels = State(out).data.get("evaluate", {}).get("levels", [])
        for name in levels:
            print(f"Level {name + ':':<12} generator {out / f'train_{name}'}, synthetic images "
                  f"{out / f'synth_{name}' / 'images'}")
    else:
        print(f"Synthetic images:  {out / 'synth' / 'images'}  (manifest: {out / 'synth' / 'manifest.parquet'})")
        print(f"Training run:      {out / 'train'}  (samples/, tensorboard/, metrics.csv)")
    print(f"Cohort:            {out / 'cohort'}  (manifest.parquet, ingest_report.json)")
    print(f"Log:               {out / 'pipeline.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
