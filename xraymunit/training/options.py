"""The run-level options of `xraymunit train`, declared once (see `xraymunit.options`).

What is trained (model, losses, data, loop) is the TrainConfig (`xraymunit.config.train`,
a YAML file plus `--set KEY=VALUE`); these options say which config, which cohort, where the
run goes and how it runs. Light imports only: the CLI reads this to build `--help`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xraymunit.options import option
from xraymunit.runtime import DEVICE_HELP, THREADS_HELP


@dataclass
class TrainRunOptions:
    cohort: str | Path | None = option(None, "cohort folder written by `xraymunit ingest`",
                                       metavar="DIR", required=True)
    out: str | Path | None = option(None, "run folder to create (or to continue with --resume)",
                                    metavar="DIR", required=True)
    config: str | Path | None = option(None, "YAML config (e.g. configs/munit_cxr_256.yaml); omitted keys take "
                                              "the paper defaults; with --resume and no --config: the run's "
                                              "config.yaml", metavar="FILE")
    resume: bool = option(False, "continue the run in --out exactly from checkpoints/last.pt (after a crash, "
                                 "a time limit or SIGTERM); train.steps may be raised to train longer")
    device: str | None = option(None, f"{DEVICE_HELP}; overrides train.device (default from the config: auto)")
    overrides: list[str] = option(help="override a config key, e.g. --set train.steps=5000 --set "
                                       "loss.perceptual=0 (repeatable)", flag="--set", metavar="KEY=VALUE",
                                  default_factory=list, append=True)
    threads: int | None = option(None, THREADS_HELP, parse=int, metavar="N")
    progress: bool | None = option(None, "no progress bar (default: a bar only when stderr is a terminal)",
                                   flag="--no-progress")

    def config_overrides(self) -> list[str]:
        """--set items, then --device as train.device (it wins)."""
        return [*self.overrides, *([f"train.device={self.device}"] if self.device else [])]
