"""Writing: rendered images as 16-bit PNGs and/or DICOM Secondary Captures, and their manifest rows.

Every file is written atomically (a temporary file replaced at the end), so a killed run
leaves whole images only and the rerun skips them. Writes run on two threads, overlapping
the next decode; the manifest does not depend on their order.
"""

from __future__ import annotations

import collections
import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from xraymunit.io import atomic, export, outdir
from xraymunit.io.cohort import MANIFEST
from xraymunit.synthesis.plan import Output, RunIdentity

MAX_PENDING = 64  # writes queued before the renderer waits for the writers (bounded memory)


class Writer:
    """PNG/DICOM writes of one output folder, on `workers` threads.

    check_links: check every path for planted links here (a process of a distributed launch
    that does not hold the folder's claim; the claim holder's atomic writes check them anyway).
    """

    def __init__(self, out: Path, run: RunIdentity, *, workers: int = 2, check_links: bool = False):
        self.out, self.run, self.check_links = Path(out), run, check_links
        export.load_writers()  # before the threads: concurrent first imports of pydicom race
        self._pool = ThreadPoolExecutor(max_workers=workers)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True)

    def write(self, src, outputs: Iterable[Output], images: np.ndarray,
              change_maps: np.ndarray | None = None) -> list[Future]:
        """Queue the files of `outputs` (rendered as `images`, with their `change_maps` when the run
        writes them) of one source; returns their futures."""
        spacing = output_spacing(src, self.run.size)
        run, futures = self.run, []
        outputs = list(outputs)
        maps = change_maps if change_maps is not None else [None] * len(outputs)
        for out, image, change in zip(outputs, images, maps):
            prov = export.Provenance(out.key, run.checkpoint_sha256, run.checkpoint_step, run.direction,
                                     run.style_mode, out.j, run.seed, run.target_label)
            if self.check_links:
                outdir.check_links(self.out, list(out.rel.values()))
            if "png" in out.rel:
                futures.append(self._pool.submit(export.write_png, self.out / out.rel["png"], image, prov))
            if "dicom" in out.rel:
                futures.append(self._pool.submit(
                    export.write_dicom, self.out / out.rel["dicom"], image, prov,
                    study_entropy=f"{run.checkpoint_sha256}:{src.image_key}",
                    series_entropy=f"{run.checkpoint_sha256}:{run.style_mode}:{run.seed}", rows_spacing_mm=spacing))
            if "change_map" in out.rel:
                if change is None:
                    raise ValueError("the run writes change maps but the renderer gave none")
                futures.append(self._pool.submit(export.write_png, self.out / out.rel["change_map"], change, prov))
        return futures

    def rows(self, src, outputs: Iterable[Output]) -> list[dict]:
        """The manifest rows of `outputs` of one source (provenance: every row can be regenerated)."""
        run = self.run
        return [{
            "synth_key": o.key, "source_image_key": src.image_key, "source_patient_key": src.patient_key,
            "split": src.split, "direction": run.direction, "source_label": run.source_label,
            "intended_label": run.target_label, "style_mode": run.style_mode, "style_index": o.j, "seed": run.seed,
            "style": [float(v) for v in o.style], "checkpoint_sha256": run.checkpoint_sha256,
            "checkpoint_step": run.checkpoint_step, "png_path": o.rel.get("png"), "dicom_path": o.rel.get("dicom"),
            "change_map_path": o.rel.get("change_map"),
            "size": run.size, "reference_key": o.extra.get("reference_key"), "interp_t": o.extra.get("interp_t"),
            "source_dataset": getattr(src, "source_dataset", None),
        } for o in outputs]

    def written(self, outputs: Iterable[Output]) -> list[Output]:
        """The outputs whose every file exists (after a stop: the rows a partial manifest may list)."""
        return [o for o in outputs if all((self.out / r).is_file() for r in o.rel.values())]


def wait_bounded(futures: collections.deque, limit: int = MAX_PENDING) -> None:
    """Wait for the oldest writes while more than `limit` are queued (the writers fall behind)."""
    while len(futures) > limit:
        futures.popleft().result()


def write_manifest(out: Path, records: list[dict]) -> pd.DataFrame:
    manifest = pd.DataFrame.from_records(records)
    with atomic.atomic_path(Path(out) / MANIFEST) as tmp:
        manifest.to_parquet(tmp, index=False)
    return manifest


def output_spacing(src, size: int) -> float | None:
    """Nominal spacing of an output pixel: the source spacing × (padded side / output side)."""
    row = getattr(src, "spacing_row_mm", None)
    col = getattr(src, "spacing_col_mm", None)
    rows, cols = getattr(src, "rows", None), getattr(src, "columns", None)
    try:
        if row and col and rows and cols and not (math.isnan(row) or math.isnan(col)):
            side_mm = max(rows * row, cols * col)
            return float(side_mm / size)
    except TypeError:
        return None
    return None
