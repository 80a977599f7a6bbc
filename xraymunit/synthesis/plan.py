"""What a synthesis writes: for each source image its style codes, output keys and paths, and
which of them are still missing (a rerun resumes: files already written are skipped).

Everything here is a pure function of the run's identity (checkpoint, direction, mode, seed)
and the source rows, so every process of a launch, and every rerun, plans the same outputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from xraymunit.synthesis.styles import random_styles, slerp


@dataclass(frozen=True)
class RunIdentity:
    """The settings every output's key, provenance and manifest row are made of."""

    checkpoint_sha256: str
    checkpoint_step: int
    direction: str
    source_label: str
    target_label: str
    style_mode: str
    seed: int
    size: int
    formats: tuple[str, ...]
    change_maps: bool = False  # also a KEY_change.png per image


@dataclass(frozen=True, eq=False)
class Output:
    """One image to write: style j of a source."""

    j: int
    style: np.ndarray
    extra: dict  # reference_key or interp_t
    key: str  # synth_key
    rel: dict  # format → path relative to the output folder


@dataclass
class SourcePlan:
    src: Any  # the cohort row (a namedtuple)
    outputs: list[Output]
    todo: list[Output] = field(default_factory=list)  # outputs with a missing file


@dataclass(frozen=True)
class StyleCodes:
    """Style codes of one source: random (N(0, I)), a slerp path, or the encoded references."""

    mode: str
    seed: int
    style_dim: int
    n_styles: int = 0
    interpolate: int = 0
    reference_styles: np.ndarray | None = None
    reference_keys: tuple[str, ...] = ()

    def for_source(self, source_key: str) -> tuple[np.ndarray, list[dict]]:
        if self.mode == "reference":
            return self.reference_styles, [{"reference_key": k} for k in self.reference_keys]
        if self.mode == "interpolate":
            ends = random_styles(self.seed, f"interp:{source_key}", 2, self.style_dim)
            return slerp(ends[0], ends[1], self.interpolate), [
                {"interp_t": float(t)} for t in np.linspace(0, 1, self.interpolate)]
        return random_styles(self.seed, source_key, self.n_styles, self.style_dim), [{} for _ in range(self.n_styles)]


def synth_key(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def share(rows: pd.DataFrame, rank: int, world: int) -> pd.DataFrame:
    """This process's deterministic share of the (sorted) source rows: every world-th from `rank`."""
    return rows.iloc[rank::world] if world > 1 else rows


def plan_sources(rows: pd.DataFrame, run: RunIdentity, codes: StyleCodes, out: Path) -> Iterator[SourcePlan]:
    """Each source's outputs in manifest order, with the ones whose files are missing as `todo`."""
    for src in rows.itertuples(index=False):
        styles, extras = codes.for_source(src.image_key)
        outputs = []
        for j, (style, extra) in enumerate(zip(styles, extras)):
            key = synth_key(run.checkpoint_sha256, run.direction, run.style_mode, run.seed, src.image_key, j,
                            extra.get("reference_key"))
            rel = {f: f"images/{src.image_key}/{key}.{'png' if f == 'png' else 'dcm'}" for f in run.formats}
            if run.change_maps:
                rel["change_map"] = f"images/{src.image_key}/{key}_change.png"
            outputs.append(Output(j, style, extra, key, rel))
        todo = [o for o in outputs if not all((out / r).is_file() for r in o.rel.values())]
        yield SourcePlan(src, outputs, todo)
