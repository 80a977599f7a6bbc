"""Every ingest option, declared once: default, help and CLI spelling (see `xraymunit.options`).

`xraymunit ingest` builds its arguments from `IngestOptions`; `ingest()` and `merge()` take
the same class (or keyword overrides of its fields); `settings()` is the fingerprinted subset
that changes the decoded images. Light imports only: the CLI reads this to build `--help`.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xraymunit.ingestion.settings import (CONTRASTS, DEFAULT_FRACTIONS, DEFAULT_MAX_SIDE, DEFAULT_MIN_SIDE,
                                          DEFAULT_MODALITIES, FITS, WINDOW_MODES, IngestError, IngestSettings)
from xraymunit.options import option
from xraymunit.runtime import THREADS_HELP


def csv_list(text: str) -> tuple[str, ...]:
    """'CR, dx' → ('CR', 'dx'): a comma-separated CLI list."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def floats(n: int):
    """A parser of exactly `n` comma-separated numbers (argparse `type`)."""
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(t) for t in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}") from None
        if len(values) != n:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}")
        return values
    parse.__name__ = f"{n} numbers"
    return parse


@dataclass(frozen=True)
class IngestOptions:
    """The options of `xraymunit ingest` (and `ingest()` / `merge()` in Python)."""

    input_dir: Path | None = option(
        None, "folder of DICOM studies (any nesting) or of PNG/JPEG radiographs; omit with --merge",
        positional=True, metavar="DICOM_DIR", nargs="?", parse=Path)
    labels: Path | None = option(
        None, "labels CSV (columns below); unmatched images are kept as unlabelled. Labels are applied when "
              "the cohort is finalized: with --shard, give them to --merge", metavar="CSV", parse=Path)
    out: Path = option(Path("cohort"), "cohort folder to write; an existing one is resumed", metavar="DIR",
                       parse=Path)
    size: int = option(256, "side of the cached square images in pixels", parse=int)
    workers: int = option(1, "decode processes (default 1: decode in this process)", parse=int)
    threads: int | None = option(None, THREADS_HELP + "; decode processes use 1 each", parse=int, metavar="N")
    shard: str | None = option(
        None, "process only part I of N (stable hash of the path) and stop before finalizing; combine the "
              "parts with --merge", metavar="I/N")
    merge: tuple[Path, ...] | None = option(
        None, "finalize a cohort from finished --shard runs (their --out folders; none = --out itself)",
        metavar="SHARD_DIR", nargs="*", parse=Path)
    salt_file: Path | None = option(
        None, "secret salt for the pseudonymous keys (created mode 0600 if missing); default "
              "OUT/private/salt.key. Share one salt file between cohorts whose keys must match",
        metavar="F", parse=Path)
    modalities: tuple[str, ...] = option(
        DEFAULT_MODALITIES, "DICOM modalities to keep, comma-separated; others are skipped",
        parse=csv_list, metavar="LIST")
    fit: str = option(
        "pad", "make images square by padding with black, centred (pad: keeps the whole field of view) or by "
               "centre-cropping (crop: keeps resolution, may cut lung edges)", choices=FITS)
    window: str = option(
        "auto", "intensity mapping: auto = VOI LUT, else header window, else percentile window; percentile = "
                "always the robust percentile window (harmonises vendors)", choices=WINDOW_MODES)
    percentiles: tuple[float, float] = option(
        (0.5, 99.5), "percentiles of the robust window", parse=floats(2), metavar="LOW,HIGH")
    contrast: str = option(
        "none", "per-image contrast standardisation after windowing (scikit-image): equalize = global histogram "
                "equalisation (every image gets the same intensity histogram: removes exposure/scanner "
                "intensity shortcuts), clahe = adaptive", choices=CONTRASTS)
    split: tuple[float, float, float] = option(
        DEFAULT_FRACTIONS, "patient fractions of the train/val/test split", parse=floats(3),
        metavar="TRAIN,VAL,TEST")
    min_side: int = option(DEFAULT_MIN_SIDE, "smallest plausible image side; smaller images fail as "
                                             "absurd_dimensions", parse=int)
    max_side: int = option(DEFAULT_MAX_SIDE, "largest plausible image side", parse=int)
    spacing_mm: float | None = option(
        None, "resample every DICOM image to this physical pixel spacing (mm, from ImagerPixelSpacing / "
              "PixelSpacing) before squaring and resizing; default off", parse=float, metavar="MM")
    progress: bool | None = option(None, "no progress bars (default: bars only when stderr is a terminal)",
                                   flag="--no-progress")

    def settings(self) -> IngestSettings:
        """The fingerprinted subset (what changes the decoded images), normalised and validated."""
        try:
            settings = IngestSettings(
                size=int(self.size), fit=self.fit, window=self.window,
                percentiles=tuple(float(p) for p in self.percentiles),  # type: ignore[arg-type]
                modalities=tuple(m.strip().upper() for m in self.modalities if m.strip()),
                min_side=int(self.min_side), max_side=int(self.max_side), contrast=self.contrast,
                spacing_mm=None if self.spacing_mm is None else float(self.spacing_mm))
        except (TypeError, ValueError) as exc:
            raise IngestError(f"invalid ingest option: {exc}") from None
        return settings.validate()


FIELDS = tuple(f.name for f in dataclasses.fields(IngestOptions))


def build_options(options: IngestOptions | None, overrides: dict[str, Any], **given: Any) -> IngestOptions:
    """`options` (or the defaults) with keyword `overrides` applied; unknown names are an IngestError.

    `given`: values of the function's own parameters (input_dir, out) when not None."""
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise IngestError(f"unknown ingest option(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    changes = {**overrides, **{k: v for k, v in given.items() if v is not None}}
    if "merge" in changes and changes["merge"] is not None:
        changes["merge"] = tuple(Path(p) for p in changes["merge"])
    if "modalities" in changes and isinstance(changes["modalities"], str):
        changes["modalities"] = csv_list(changes["modalities"])
    return dataclasses.replace(options or IngestOptions(), **changes)
