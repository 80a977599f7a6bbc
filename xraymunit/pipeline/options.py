"""The options of `xraymunit pipeline` (and of pipelines/normal_to_abnormal.py), declared once."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass

from xraymunit import config
from xraymunit.options import option
from xraymunit.runtime import THREADS_HELP
from xraymunit.pipeline.config import PipelineConfig

DEFAULT_CONFIG = "pipeline_default"


@dataclass
class PipelineOptions:
    config: str = option(DEFAULT_CONFIG, "pipeline YAML: a path, or a shipped config's name", metavar="YAML")
    out: str | None = option(None, "output folder (overrides the config's `out`)", metavar="DIR")
    overrides: list[str] = option(
        help="override a pipeline key, e.g. --set synthesize.n_styles=20, or a stage config's key: "
             "--set train.steps=5 (train.set), --set evaluate.seeds=3 (evaluate.set) (repeatable)", flag="--set",
        metavar="KEY=VALUE", default_factory=list, append=True)
    threads: int | None = option(None, THREADS_HELP + "; every stage uses it", parse=int, metavar="N")
    progress: bool | None = option(None, "no progress bars (logs only); default: bars when stderr is a terminal",
                                   flag="--no-progress")

    def load(self) -> PipelineConfig:
        """The pipeline config: the YAML, then --set overrides, then --out. A stage config's key
        (`train.steps=5`) is appended to that stage's `set` list, after the YAML's own."""
        extra = [f"out={self.out}"] if self.out else []
        own, routed = route_stage_overrides(self.overrides)
        cfg = config.load(PipelineConfig, self.config, own + extra)
        cfg.train.set = [*cfg.train.set, *routed["train"]]
        cfg.evaluate.set = [*cfg.evaluate.set, *routed["evaluate"]]
        return cfg


def route_stage_overrides(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split `--set` items into the pipeline's own and those meant for a stage's config.

    `train.X=V`: the training config's `X` (`train.model.dim=8`) or `train.X` (`train.steps=5`,
    its own train section); `evaluate.X=V`: the evaluation config's `X`. Keys of the pipeline's
    stage sections (`train.config`, `train.set`, ...) and anything unknown stay the pipeline's
    (unknown keys are refused there, with a suggestion)."""
    from xraymunit.config.evaluate import EvaluateConfig
    from xraymunit.config.train import TrainConfig
    from xraymunit.pipeline.config import EvaluateStage, TrainStage

    own, routed = [], {"train": [], "evaluate": []}
    for item in overrides:
        key, sep, value = item.partition("=")
        stage, _, rest = key.strip().partition(".")
        if not sep or stage not in routed or not rest or rest.split(".")[0] in _names(
                TrainStage if stage == "train" else EvaluateStage):
            own.append(item)
        elif stage == "train" and _has_key(TrainConfig, rest):
            routed["train"].append(f"{rest}={value}")
        elif stage == "train" and _has_key(TrainConfig, key.strip()):
            routed["train"].append(f"{key.strip()}={value}")
        elif stage == "evaluate" and _has_key(EvaluateConfig, rest):
            routed["evaluate"].append(f"{rest}={value}")
        else:
            raise config.ConfigError(_unknown_stage_key(key.strip(), TrainConfig if stage == "train" else EvaluateConfig,
                                                        TrainStage if stage == "train" else EvaluateStage))
    return own, routed


def _unknown_stage_key(key: str, stage_config: type, section: type) -> str:
    """One line naming where `key` was looked for, with the closest key that exists."""
    stage = key.split(".")[0]
    known = [f"{stage}.{k}" for k in _dotted(stage_config)] + [f"{stage}.{k}" for k in _names(section)]
    known += [k for k in _dotted(stage_config) if k.startswith(f"{stage}.")]  # train.steps: the train section's
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return (f"unknown config key '{key}': not a key of the {stage} config nor of the pipeline's {stage} "
            f"section{hint}")


def _dotted(cls: type, prefix: str = "") -> list[str]:
    """Every field of the dataclass tree `cls` as a dotted name (sections and values)."""
    out = []
    for name, hint in typing.get_type_hints(cls).items():
        if name not in _names(cls):
            continue
        out.append(prefix + name)
        if dataclasses.is_dataclass(hint):
            out += _dotted(hint, f"{prefix}{name}.")
    return out


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _has_key(cls: type, dotted: str) -> bool:
    """Whether `a.b.c` names a field of the dataclass tree `cls` (a section or a value)."""
    for part in dotted.split("."):
        if not (dataclasses.is_dataclass(cls) and part in _names(cls)):
            return False
        cls = typing.get_type_hints(cls)[part]
    return True
