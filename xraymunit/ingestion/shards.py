"""Merging shard folders (`--shard I/N` runs) into one cohort."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from xraymunit.io import outdir
from xraymunit.ingestion.labels import load_labels
from xraymunit.ingestion.options import IngestOptions, build_options
from xraymunit.ingestion.splits import check_fractions
from xraymunit.runtime import progress_enabled
from xraymunit.ingestion.finish import finalize
from xraymunit.ingestion.journal import FileState, files_list_name, journal_name, load_state, read_files_list, read_journals
from xraymunit.ingestion.settings import ENTRIES, IngestError, IngestResult, IngestSettings, PRIVATE
from xraymunit.ingestion.stage import OUT_PATHS


def merge(shard_dirs: Sequence[str | os.PathLike] | None = None, out_dir: str | os.PathLike | None = None,
          options: IngestOptions | None = None, **overrides: Any) -> IngestResult:
    """Finalize a cohort from `--shard I/N` runs: check every shard finished with the same
    settings, gather their journals and entries into `out_dir/private/`, then build the
    manifest, splits and cache exactly as a single run would.

    Args:
        shard_dirs: the shards' --out folders (may include out_dir itself, or be empty when
            all shards wrote into out_dir); default `options.merge`.
        out_dir: the cohort folder to finalize; default `options.out`.
        options / **overrides: as for `ingest`; merge uses labels, salt_file, split, progress
            (the image settings are the shards').
    """
    opts = build_options(options, overrides, out=out_dir,
                         merge=None if shard_dirs is None else tuple(Path(d) for d in shard_dirs))
    return _merge(opts.out, opts)


@outdir.owns("ingest --merge", "out_dir", guard=OUT_PATHS, private=(PRIVATE,))
def _merge(out_dir: str | os.PathLike, opts: IngestOptions) -> IngestResult:
    t0 = time.monotonic()
    out = Path(out_dir)
    dirs = [Path(d) for d in opts.merge or ()] or [out]
    for d in dirs:
        if not (d / PRIVATE).is_dir():
            raise IngestError(f"{d} is not a shard folder (no {PRIVATE}/ journal); run `xraymunit ingest DIR --shard I/N --out {d}` first")
    fractions = check_fractions(opts.split)
    table = load_labels(opts.labels) if opts.labels is not None else None
    private = out / PRIVATE
    private.mkdir(parents=True, exist_ok=True, mode=0o700)

    runs: dict[tuple[int, int], dict] = {}  # shard → its latest run record, and "done" if it finished
    for d in dirs:
        for rec in read_journals(d / PRIVATE):
            if not rec.get("shard") or rec.get("type") not in ("run", "done"):
                continue
            key = (int(rec["shard"][0]), int(rec["shard"][1]))
            if rec["type"] == "run":
                runs[key] = {"run": rec, "done": None, "dir": d}
            elif key in runs and rec.get("fp") == runs[key]["run"]["fp"]:
                runs[key]["done"] = rec
    if not runs:
        raise IngestError("no shard runs found in " + ", ".join(map(str, dirs)))
    ns = {k[1] for k in runs}
    if len(ns) != 1:
        raise IngestError(f"shards of different partitions found (N = {sorted(ns)}); merge one partition at a time")
    n = ns.pop()
    missing = [i for i in range(1, n + 1) if (i, n) not in runs]
    if missing:
        raise IngestError(f"shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing; run them "
                          f"(or point --merge at their folders)")
    unfinished = [f"{k[0]}/{k[1]}" for k, v in sorted(runs.items()) if v["done"] is None]
    if unfinished:
        raise IngestError(f"shard(s) {', '.join(unfinished)} did not finish; rerun them (they resume)")
    fps = {v["run"]["fp"] for v in runs.values()}
    if len(fps) != 1:
        raise IngestError("shards ran with different settings (size, fit, window, modalities…); rerun them alike")
    _check_same_inputs([v["run"] for v in runs.values()])
    fp = fps.pop()
    settings = IngestSettings.from_json(next(iter(runs.values()))["run"]["settings"])
    _check_merge_options(opts, settings)
    shard_runs = runs

    rels: list[str] = []
    for key in sorted(shard_runs):
        d = shard_runs[key]["dir"]
        _import_shard(d, out, key)
        listing = d / PRIVATE / files_list_name(key)
        rels.extend(read_files_list(listing))
    state = load_state(private, fp)
    rels = sorted(set(rels))
    records = [(rel, state.get(rel) or FileState()) for rel in rels]
    records = [(rel, st) if st.header else (rel, FileState(header={"type": "header", "rel": rel, "size": -1, "mtime_ns": -1,
               "scan": {"kind": None, "status": "failed", "reason": "decode_error", "detail": "no journal record",
                        "meta": {}, "ids": {}}})) for rel, st in records]
    report = finalize(out, records, settings, table, opts.salt_file, fractions, progress_enabled(opts.progress),
                      run={"decoded": 0, "reused": sum(1 for _, st in records if st.image is not None),
                           "merged_shards": n, "seconds": round(time.monotonic() - t0, 2)})
    return IngestResult(out, len(records), report["by_status"], report["by_reason"], 0,
                        report["this_run"]["reused"], finalized=True, report=report)


def _check_same_inputs(runs: list[dict]) -> None:
    """Every shard walked the same input listing (paths and sizes), not merely as many files: half of
    each of two sites' folders is not one cohort. Shards from before the fingerprint: the counts."""
    totals = {run.get("files_total") for run in runs}
    if len(totals) != 1:
        raise IngestError(f"shards saw different input folders ({', '.join(str(t) for t in sorted(totals))} files); "
                          f"run every shard on the same DICOM_DIR")
    listings = {run.get("inputs_sha") for run in runs}
    if len(listings) != 1:
        raise IngestError(f"shards saw different input folders (the same number of files, {totals.pop()}, but "
                          f"other names or sizes); run every shard on the same DICOM_DIR, unchanged")


def _check_merge_options(opts: IngestOptions, shards: IngestSettings) -> None:
    """An image option given to --merge (e.g. --size 128) that differs from the shards' cannot be applied
    (the images are the shards'): refuse instead of silently ignoring it."""
    given, default = opts.settings(), IngestOptions().settings()
    for f in dataclasses.fields(IngestSettings):
        value = getattr(given, f.name)
        if value != getattr(default, f.name) and value != getattr(shards, f.name):
            flag = "--" + f.name.replace("_", "-")
            raise IngestError(f"{flag} {_show(value)} differs from the shards' {_show(getattr(shards, f.name))}: "
                              f"--merge keeps the shards' images; drop {flag}, or rerun the shards with it")


def _show(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def _import_shard(shard_dir: Path, out: Path, shard: tuple[int, int]) -> None:
    """Copy a shard's journal, file list and entry segments into the cohort's private folder (hard links when possible)."""
    src, dst = shard_dir / PRIVATE, out / PRIVATE
    if src.resolve() == dst.resolve():
        return
    for name in (journal_name(shard), files_list_name(shard)):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    for entry in (src / ENTRIES).rglob("*"):
        if not entry.is_file():
            continue
        target = dst / entry.relative_to(src)
        if target.exists() and target.stat().st_size == entry.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            os.link(entry, tmp)
        except OSError:
            shutil.copy2(entry, tmp)
        os.replace(tmp, target)
