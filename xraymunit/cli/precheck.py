"""Cheap checks of the command line's paths, before torch and MONAI are imported.

Importing the stages costs seconds (10-27 s on two busy cores); a typo in a folder name should
be answered at once. These checks look only at the file system and say what the stage itself
would say (a test keeps the messages equal to `Cohort.open`'s and `SyntheticSet.open`'s); the stage still checks
everything again, so nothing here is the only line of defence. Standard library only.
"""

from __future__ import annotations

from pathlib import Path

from xraymunit.errors import XraymunitError

MANIFEST = "manifest.parquet"  # xraymunit.io.cohort.MANIFEST (importing it would import pandas)


class PathError(XraymunitError):
    """A path given on the command line cannot be what the option asks for."""


def cohort_folder(path: str | Path) -> None:
    """An ingested cohort: a folder holding manifest.parquet."""
    root = Path(path)
    if not (root / MANIFEST).is_file():
        raise PathError(f"{root} is not a cohort folder (no {MANIFEST}); build one with "
                        f"`xraymunit ingest DICOM_DIR --out {root}`")


def synthetic_folder(path: str | Path) -> None:
    """A synthesize output: a folder holding manifest.parquet (the words of `SyntheticSet.open`)."""
    root = Path(path)
    if not (root / MANIFEST).is_file():
        raise PathError(f"{root} is not a synthetic folder (no {MANIFEST}); make one with `xraymunit synthesize`")


def existing_folder(path: str | Path, option: str) -> None:
    if not Path(path).is_dir():
        raise PathError(f"{option} {path}: folder not found")


def checkpoint(spec: str | Path) -> None:
    """What `xraymunit.checkpoint.resolve` accepts: a file, a run folder, or RUN/last, RUN/best."""
    path = Path(spec)
    if path.is_file():
        return
    if path.is_dir():
        if not (path / "checkpoints" / "last.pt").is_file():
            raise PathError(f"checkpoint not found: {path / 'checkpoints' / 'last.pt'} ({path} is a folder but "
                            f"not a training run with a checkpoint)")
        return
    if path.name in ("best", "last") and (path.parent / "checkpoints" / f"{path.name}.pt").is_file():
        return
    raise PathError(f"checkpoint not found: {spec}")



def training_run_folder(out: str | Path, resume: bool) -> None:
    """What `train` refuses about its --out (the words of training/plan.py): a finished or stopped run
    without --resume, or --resume where there is no checkpoint."""
    last = Path(out) / "checkpoints" / "last.pt"
    if resume and not last.is_file():
        raise PathError(f"--resume: no checkpoint at {last}")
    if not resume and last.exists():
        raise PathError(f"{out} already holds a run; pass --resume to continue it or choose another --out")


def input_folder(path: str | Path) -> None:
    """Ingest's DICOM_DIR (the words of ingestion/stage.py)."""
    if not Path(path).is_dir():
        raise PathError(f"input folder not found: {path}")


def existing_file(path: str | Path, what: str) -> None:
    """A file the stage will read, e.g. what="labels file" (the words of ingestion/labels.py)."""
    if not Path(path).is_file():
        raise PathError(f"{what} not found: {path}")
