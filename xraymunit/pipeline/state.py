"""OUT/pipeline_state.json and the fingerprints in it: what each stage's outputs were made from.

A fingerprint is a SHA-256 of a stage's settings and of its inputs' identities, so a rerun can
tell "up to date" from "made from other settings" without opening the outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from xraymunit.io import atomic
from xraymunit.pipeline.layout import RunLayout

log = logging.getLogger("xraymunit.pipeline")


def sha(obj) -> str:
    """Fingerprint of a JSON-able object (keys sorted, so dict order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_sha(path: Path) -> str:
    from xraymunit.checkpoint import file_sha256

    return file_sha256(path)


def listing(root: Path) -> str:
    """Fingerprint of a folder's files (relative path, size, mtime): cheap, catches new or changed files."""
    items = sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in root.rglob("*") if p.is_file())
    return sha(items)


def flat(d: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} → {"a.b": 1}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def set_aside(path: Path) -> None:
    """Outputs made from other settings are moved to <name>.previous/ (then .previous.2/, .3/, ...),
    never deleted: an earlier cohort holds its secret salt, an earlier training run days of GPU time."""
    if path.exists():
        previous = RunLayout.next_previous(path)
        path.rename(previous)
        log.info("settings changed: moved old %s to %s", path.name, previous.name)


class State:
    """OUT/pipeline_state.json: the fingerprint each stage's outputs were made from."""

    def __init__(self, out: Path):
        self.path = RunLayout(out).state
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
