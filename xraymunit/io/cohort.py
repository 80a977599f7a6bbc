"""Read-side of the stage outputs: a cohort folder and a synthetic folder (xraymunit/FORMATS.md).

Training, synthesis, evaluation and the notebooks all read through here, so the file
layout is known in one place. No torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from xraymunit.errors import XraymunitError

MANIFEST = "manifest.parquet"
CACHE_IMAGES = Path("cache") / "images.npy"
CACHE_META = Path("cache") / "meta.json"
INGEST_REPORT = "ingest_report.json"


class CohortError(XraymunitError):
    """A cohort or synthetic folder is missing or unreadable; the message says what to run."""


@dataclass(frozen=True)
class Cohort:
    """An ingested cohort: the manifest table plus the memory-mapped image cache."""

    root: Path

    @classmethod
    def open(cls, root: str | Path) -> "Cohort":
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise CohortError(
                f"{root} is not a cohort folder (no {MANIFEST}); build one with "
                f"`xraymunit ingest DICOM_DIR --out {root}`"
            )
        return cls(root)

    @cached_property
    def manifest(self) -> pd.DataFrame:
        return pd.read_parquet(self.root / MANIFEST)

    @cached_property
    def images(self) -> np.ndarray:
        """uint16 (N, S, S) memmap; row i is the image whose cache_index is i."""
        path = self.root / CACHE_IMAGES
        if not path.is_file():
            raise CohortError(f"{path} is missing: rerun `xraymunit ingest` for this cohort")
        return np.load(path, mmap_mode="r")

    @cached_property
    def cache_meta(self) -> dict:
        path = self.root / CACHE_META
        return json.loads(path.read_text()) if path.is_file() else {}

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def ok(self) -> pd.DataFrame:
        """Rows that were ingested successfully (they have a cache entry)."""
        m = self.manifest
        return m[(m["status"] == "ok") & (m["cache_index"] >= 0)].reset_index(drop=True)

    def select(self, split: str | None = None, label: str | None = None) -> pd.DataFrame:
        rows = self.ok()
        if split is not None:
            rows = rows[rows["split"] == split]
        if label is not None:
            rows = rows[rows["label"] == label]
        return rows.reset_index(drop=True)

    def image(self, cache_index: int) -> np.ndarray:
        """One image as float32 in [0, 1] (bright = dense)."""
        return np.asarray(self.images[int(cache_index)], dtype=np.float32) / 65535.0

    def stack(self, cache_indices) -> np.ndarray:
        """Several images as float32 (n, S, S) in [0, 1]."""
        idx = np.asarray(list(cache_indices), dtype=np.int64)
        if idx.size == 0:
            return np.zeros((0, self.image_size, self.image_size), np.float32)
        order = np.argsort(idx)  # memmap reads are fastest in file order
        out = np.empty((idx.size, self.image_size, self.image_size), np.float32)
        out[order] = self.images[idx[order]].astype(np.float32) / 65535.0
        return out

    def tensor(self, cache_indices, size: int | None = None):
        """Several images as a torch tensor (n, 1, size, size) in [0, 1], area-shrunk like the
        training loader (the quality monitor and the study's controls read images this way)."""
        import torch

        x = torch.from_numpy(self.stack(cache_indices))[:, None]
        if size is not None and x.shape[-1] != size:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
        return x.clamp(0, 1)

    def report(self) -> dict:
        path = self.root / INGEST_REPORT
        return json.loads(path.read_text()) if path.is_file() else {}


@dataclass(frozen=True)
class SyntheticSet:
    """A synthesize output folder: manifest with provenance plus PNG/DICOM images."""

    root: Path

    @classmethod
    def open(cls, root: str | Path) -> "SyntheticSet":
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise CohortError(
                f"{root} is not a synthetic folder (no {MANIFEST}); make one with `xraymunit synthesize`"
            )
        return cls(root)

    @cached_property
    def manifest(self) -> pd.DataFrame:
        return pd.read_parquet(self.root / MANIFEST)

    def image(self, row) -> np.ndarray:
        """The synthetic image of a manifest row as float32 in [0, 1]."""
        from PIL import Image

        rel = row["png_path"] if isinstance(row, (dict, pd.Series)) else row
        if rel is None or (isinstance(rel, float) and np.isnan(rel)):
            raise CohortError("this synthetic image has no PNG (synthesize with --format png or both)")
        with Image.open(self.root / rel) as im:
            arr = np.asarray(im)
        scale = 65535.0 if arr.dtype == np.uint16 else 255.0
        return arr.astype(np.float32) / scale

    def change_map(self, row, source: np.ndarray) -> np.ndarray:
        """The change map of a manifest row in [0, 1]: the one synthesize wrote (--change-maps: |Δ ⊙ m|
        of a residual_mask model), else |translation − source| with the source at the image's size."""
        rel = row.get("change_map_path") if isinstance(row, (dict, pd.Series)) else None
        if isinstance(rel, str) and rel:
            return self.image({"png_path": rel})
        image = self.image(row)
        if source.shape != image.shape:
            from PIL import Image

            source = np.asarray(Image.fromarray(source.astype(np.float32)).resize(image.shape[::-1], Image.BOX))
        return np.abs(image - source.astype(np.float32))

    def stack(self, rows: pd.DataFrame) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, 0, 0), np.float32)
        return np.stack([self.image(r) for _, r in rows.iterrows()])
