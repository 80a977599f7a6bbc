"""Ingest settings, results and errors: what changes the decoded images, what a run did."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from xraymunit.errors import XraymunitError


PIPELINE_VERSION = 1  # bump when the pixel path changes: cached entries are then re-decoded
# Same values as xraymunit.data.transforms.FITS / WINDOW_MODES / CONTRASTS (a test checks), repeated so
# that validating options does not import MONAI (seconds) before any work is needed.
FITS = ("pad", "crop")
WINDOW_MODES = ("auto", "percentile")
CONTRASTS = ("none", "equalize", "clahe")
# which files are accepted (applied by `rules`); here so that options import without pydicom
DEFAULT_MODALITIES = ("CR", "DX")
DEFAULT_MIN_SIDE = 64
DEFAULT_MAX_SIDE = 12000
MAX_ASPECT = 5.0
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)  # train/val/test fractions of patients (see `splits`)
PRIVATE = "private"
ENTRIES = "entries"
JOURNAL_PREFIX = "journal"


def dimension_problem(rows: int, cols: int, min_side: int, max_side: int) -> str | None:
    """Why `rows` x `cols` is no plausible radiograph ("absurd_dimensions"), or None: a side outside
    [min_side, max_side] or an aspect above MAX_ASPECT. Applied to the declared size and, with
    --spacing-mm, to the resampled size (both before anything is allocated)."""
    if min(rows, cols) < min_side or max(rows, cols) > max_side or max(rows, cols) / min(rows, cols) > MAX_ASPECT:
        return f"{rows} x {cols} (accepted: sides {min_side}-{max_side}, aspect <= {MAX_ASPECT:g})"
    return None


class IngestError(XraymunitError):
    """Ingest cannot run with these inputs; the message says what to change."""


@dataclass(frozen=True)
class IngestSettings:
    """Everything that changes the decoded images or which files are accepted.

    Its fingerprint tags every journal record: change a setting and the affected files
    are processed again on the next run instead of silently mixing two pipelines.
    """

    size: int = 256
    fit: str = "pad"
    window: str = "auto"
    percentiles: tuple[float, float] = (0.5, 99.5)
    modalities: tuple[str, ...] = DEFAULT_MODALITIES
    min_side: int = DEFAULT_MIN_SIDE
    max_side: int = DEFAULT_MAX_SIDE
    contrast: str = "none"
    spacing_mm: float | None = None  # resample to this pixel spacing first; None = off

    def validate(self) -> "IngestSettings":
        if not 16 <= int(self.size) <= 4096:
            raise IngestError(f"--size must be between 16 and 4096 pixels, got {self.size}")
        if self.fit not in FITS:
            raise IngestError(f"--fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if self.window not in WINDOW_MODES:
            raise IngestError(f"--window must be one of {', '.join(WINDOW_MODES)}, got {self.window!r}")
        if self.contrast not in CONTRASTS:
            raise IngestError(f"--contrast must be one of {', '.join(CONTRASTS)}, got {self.contrast!r}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise IngestError(f"--percentiles must be LOW,HIGH with 0 <= LOW < HIGH <= 100, got {lo},{hi}")
        if not self.modalities:
            raise IngestError("--modalities must name at least one modality (e.g. CR,DX)")
        if not 1 <= self.min_side <= self.max_side:
            raise IngestError(f"--min-side/--max-side must satisfy 1 <= min <= max, got {self.min_side}/{self.max_side}")
        if self.spacing_mm is not None and not 0.01 <= self.spacing_mm <= 10:
            raise IngestError(f"--spacing-mm must be between 0.01 and 10 mm, got {self.spacing_mm}")
        return self

    def to_json(self) -> dict:
        data = {**dataclasses.asdict(self), "percentiles": list(self.percentiles),
                "modalities": list(self.modalities), "pipeline_version": PIPELINE_VERSION}
        # options added later are absent at their old behaviour: earlier cohorts keep their fingerprint
        if self.contrast == "none":
            del data["contrast"]
        if self.spacing_mm is None:
            del data["spacing_mm"]
        return data

    @functools.cached_property  # asked for once per file; the settings are frozen
    def fingerprint(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def from_json(cls, data: dict) -> "IngestSettings":
        data = {k: v for k, v in data.items() if k != "pipeline_version"}
        return cls(**{**data, "percentiles": tuple(data["percentiles"]), "modalities": tuple(data["modalities"])})


@dataclass
class IngestResult:
    """What a run did; the CLI prints it, tests assert on it."""

    out_dir: Path
    files: int
    by_status: dict[str, int]
    by_reason: dict[str, int]
    decoded: int
    reused: int
    finalized: bool
    report: dict = field(default_factory=dict)

    @property
    def images(self) -> int:
        return self.by_status.get("ok", 0)

    def __repr__(self) -> str:  # one line: the report dict is a screenful (it is in ingest_report.json)
        problems = sum(n for status, n in self.by_status.items() if status != "ok")
        state = "finalized" if self.finalized else "not finalized"
        return (f"IngestResult({self.out_dir}: {self.images} images from {self.files} files, {problems} not used; "
                f"{state})")
