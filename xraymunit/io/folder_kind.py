"""Which stage an output folder belongs to, so that no stage writes into another stage's folder.

`ingest --out SYNTH_DIR` once replaced the synthetic set's manifest.parquet (the provenance of every
synthetic image), and `train --out COHORT` would mix checkpoints into a cohort. Every stage's claim
(`outdir.claim`) therefore records its kind in `FOLDER/.xraymunit.stage` and refuses a folder
recorded as, or recognisable as (a folder written before the marker existed), another kind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from xraymunit import __version__

MARKER = ".xraymunit.stage"

# claim's stage name → the kind of folder it writes (stages of one kind share folders: shards and --merge)
KINDS = {"ingest": "cohort", "ingest --merge": "cohort", "train": "training run", "synthesize": "synthetic set",
         "evaluate": "evaluation report", "pipeline": "pipeline run"}
WRITER = {"cohort": "ingest", "training run": "train", "synthetic set": "synthesize",
          "evaluation report": "evaluate", "pipeline run": "pipeline"}

# how folders written before the marker are recognised: files only their own stage writes
_SIGNS = (("cohort", ("ingest_report.json",)), ("cohort", ("private/journal*.jsonl",)),
          ("synthetic set", ("synthesis.json",)), ("training run", ("checkpoints",)),
          ("evaluation report", ("metrics.json", "summary.md")), ("pipeline run", ("pipeline_state.json",)))


def kind_of(folder: str | os.PathLike) -> str | None:
    """The kind recorded in the folder's marker, else recognised from its files, else None."""
    folder = Path(folder)
    try:
        recorded = json.loads((folder / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded in WRITER:
        return recorded
    for kind, patterns in _SIGNS:
        if all(any(folder.glob(p)) for p in patterns):
            return kind
    return None


def check_and_mark(folder: Path, stage: str, message) -> bool:
    """Refuse (message(text) is raised) a folder of another kind; record ours if unrecorded.
    Returns whether the marker was written now. Stages without a kind are not checked."""
    kind = KINDS.get(stage)
    if kind is None:
        return False
    found = kind_of(folder)
    if found is not None and found != kind:
        raise message(f"{folder} is a {found} (written by `xraymunit {WRITER[found]}`); `xraymunit {stage}` "
                      f"writes a {kind} and would mix with or replace its files: choose another output folder")
    if os.path.lexists(folder / MARKER) and found == kind:
        return False
    from xraymunit.io import atomic

    atomic.write_json(folder / MARKER, {"kind": kind, "stage": stage, "xraymunit": __version__})
    return True


def forget_if_alone(folder: Path, others: set[str]) -> None:
    """Remove the marker of a claim that wrote nothing else (a run refused on its arguments)."""
    try:
        names = set(os.listdir(folder))
    except OSError:
        return
    if MARKER in names and names - {MARKER} <= others:
        try:
            (folder / MARKER).unlink()
        except OSError:
            pass
