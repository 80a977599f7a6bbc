"""Finished training runs kept on disk, so an interrupted study resumes where it stopped.

A full study is dozens of runs (hours on a GPU). Each finished run's scores are written
atomically to OUT/runs/ under a fingerprint of everything that determines it (config of the
classifier, augmentation and synthetic mixing, seed, and the exact image keys of every
split and of the synthetic pool); a rerun reuses a run only when the fingerprint matches.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from xraymunit.io import atomic


def digest(keys) -> str:
    """Order-independent short hash of a set of keys."""
    return hashlib.sha256("\n".join(sorted(map(str, keys))).encode()).hexdigest()[:16]


def fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class RunCache:
    """OUT/runs/<level>__<arm>[__g<i>]__seed<k>.npz: a finished run's val/test scores and its record
    (__g<i>: generator i of a level with several; a level with one keeps the plain name)."""

    def __init__(self, root: Path, enabled: bool = True):
        self.root, self.enabled = Path(root), enabled

    def _path(self, level: str, arm: str, seed: int, suffix: str, generator: int | None = None) -> Path:
        safe = arm.replace("+", "_plus_") + ("" if generator is None else f"__g{generator}")
        return self.root / f"{level}__{safe}__seed{seed}{suffix}"

    def load(self, level: str, arm: str, seed: int, fp: str, generator: int | None = None) -> dict | None:
        path = self._path(level, arm, seed, ".npz", generator)
        if not self.enabled or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("fingerprint") != fp:
                    return None
                meta["_val_scores"], meta["_test_scores"] = z["val"].copy(), z["test"].copy()
                meta["_external_scores"] = {name: z[f"external_{i}"].copy()
                                            for i, name in enumerate(meta.pop("external_names", []))}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # a damaged file is simply recomputed
        return meta

    def save(self, run: dict, fp: str, generator: int | None = None) -> None:
        meta = {k: v for k, v in run.items() if not k.startswith("_")}
        meta["fingerprint"] = fp
        external = run.get("_external_scores") or {}  # test cohorts' scores (--test-cohort)
        meta["external_names"] = list(external)
        buf = io.BytesIO()
        np.savez(buf, val=run["_val_scores"], test=run["_test_scores"], meta=np.array(json.dumps(meta, default=_plain)),
                 **{f"external_{i}": scores for i, scores in enumerate(external.values())})
        atomic.write_bytes(self._path(run["level"], run["arm"], run["seed"], ".npz", generator), buf.getvalue())


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    raise TypeError(type(v).__name__)
