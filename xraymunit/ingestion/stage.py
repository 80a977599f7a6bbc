"""The ingest stage: walk → header pass → decode pass → finalize, resumable at every step."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from xraymunit import __version__
from xraymunit.io import atomic, dicom, outdir
from xraymunit.io.cohort import INGEST_REPORT
from xraymunit.ingestion.finish import finalize
from xraymunit.ingestion.labels import KEY_PRIORITY, LabelsError, LabelTable, load_labels
from xraymunit.ingestion.options import IngestOptions, build_options
from xraymunit.ingestion.splits import check_fractions
from xraymunit.runtime import apply_threads, progress_enabled
from xraymunit.stopping import StopFlag, Stopped, stop_requests
from xraymunit.ingestion.journal import (RETRIED, FileState, Journal, files_list_bytes, files_list_name, journal_name,
                                      load_state, status_of)
from xraymunit.ingestion.entries import EntryCheck, close_writers, new_run_token
from xraymunit.ingestion.per_file import decode_died, decode_task, progress_bar, scan_died, scan_task, tune_allocator
from xraymunit.ingestion.workers import Runner
from xraymunit.ingestion.settings import IngestError, IngestResult, IngestSettings, PRIVATE
from xraymunit.ingestion.walk import discover, in_shard, input_fingerprint, parse_shard

# what ingest writes in --out: links there are refused before anything is written (outdir.check_links)
OUT_PATHS = (PRIVATE, f"{PRIVATE}/journal.jsonl", f"{PRIVATE}/salt.key", f"{PRIVATE}/files.txt", f"{PRIVATE}/entries",
             "cache", "cache/images.npy", "cache/meta.json", "manifest.parquet", INGEST_REPORT)


def _shard_part(args: dict) -> str | None:
    """Shards of one job array may write one folder at once (their journals and segments are their own)."""
    shard = parse_shard(args["opts"].shard)
    return None if shard is None else f"shard-{shard[0]}-of-{shard[1]}"


def ingest(input_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
           options: IngestOptions | None = None, **overrides: Any) -> IngestResult:
    """Ingest a folder of DICOM (or PNG/JPEG) radiographs into the cohort folder `out_dir`.

    Args:
        input_dir: folder walked recursively (files with or without .dcm; DICOMDIR honoured);
            default `options.input_dir`.
        out_dir: cohort folder (created; reruns resume from its private/ journal); default
            `options.out` ("cohort").
        options: an `IngestOptions` (every option, its default and meaning: `xraymunit ingest --help`).
        **overrides: options by field name, e.g. `labels=`, `size=256`, `workers=`, `shard="3/16"`,
            `modalities=`, `fit=`, `window=`, `percentiles=`, `contrast=`, `salt_file=`, `split=`,
            `min_side=`, `max_side=`, `spacing_mm=`, `progress=` (None: bars only on a terminal).
            An unknown name is an IngestError.
    """
    opts = build_options(options, overrides, input_dir=input_dir, out=out_dir)
    if opts.input_dir is None:
        raise IngestError("DICOM_DIR is required (or use --merge SHARD_DIR ...)")
    return _ingest(opts.out, opts)


@outdir.owns("ingest", "out_dir", guard=OUT_PATHS, private=(PRIVATE,), part=_shard_part)
def _ingest(out_dir: str | os.PathLike, opts: IngestOptions) -> IngestResult:
    t0 = time.monotonic()
    root = Path(opts.input_dir)
    if not root.is_dir():
        raise IngestError(f"input folder not found: {root}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise IngestError(f"--out {out} exists and is not a folder")
    if int(opts.workers) < 1:
        raise IngestError(f"--workers must be at least 1, got {opts.workers}")
    settings = opts.settings()
    apply_threads(opts.threads)
    shard_t = parse_shard(opts.shard)
    fractions = check_fractions(opts.split)
    table = load_labels(opts.labels) if opts.labels is not None else None
    progress = progress_enabled(opts.progress)

    phases: dict[str, float] = {}
    tick = time.monotonic()
    unreadable: list[str] = []  # folders the walk could not list (warned); counted in the report
    all_rels = discover(root, exclude=[out], unreadable=unreadable)
    if not all_rels:  # before anything is written: the output folder this run created is removed again
        raise IngestError(f"no files found in {root} (searched recursively"
                          + (f"; {len(unreadable)} folder(s) could not be read" if unreadable else "") + ")")
    private = out / PRIVATE
    private.mkdir(parents=True, exist_ok=True, mode=0o700)
    rels = [r for r in all_rels if in_shard(r, shard_t)]
    state = load_state(private, settings.fingerprint)
    phases["walk_and_journal"] = time.monotonic() - tick

    tune_allocator()
    runner = Runner(int(opts.workers))
    try:
        with stop_requests() as stop:
            decoded, reused = _passes(root, private, all_rels, rels, state, settings, shard_t, table, runner,
                                      progress, phases, stop)
        runner.close()
    except BaseException:
        runner.close(abort=True)
        raise
    finally:
        close_writers()

    records = [(rel, state[rel]) for rel in rels]
    if shard_t is not None:
        counts = Counter(status_of(st)[0] for _, st in records)
        reasons = Counter(status_of(st)[1] for _, st in records if status_of(st)[1])
        return IngestResult(out, len(rels), dict(counts), dict(reasons), decoded, reused, finalized=False,
                            report={"shard": list(shard_t), "seconds": round(time.monotonic() - t0, 2)})
    tick = time.monotonic()
    run = {"decoded": decoded, "reused": reused, "workers": int(opts.workers), "unreadable_folders": len(unreadable)}
    report = finalize(out, records, settings, table, opts.salt_file, fractions, progress, run=run)
    phases["finalize"] = time.monotonic() - tick
    run["seconds"] = round(time.monotonic() - t0, 2)
    run["phase_seconds"] = {k: round(v, 2) for k, v in phases.items()}
    atomic.write_json(out / INGEST_REPORT, report)  # again, now with the finalize time
    return IngestResult(out, len(rels), report["by_status"], report["by_reason"], decoded, reused,
                        finalized=True, report=report)


def _passes(root: Path, private: Path, all_rels: list[str], rels: list[str], state: dict[str, FileState],
            settings: IngestSettings, shard_t: tuple[int, int] | None, table: LabelTable | None, runner: Runner,
            progress: bool, phases: dict[str, float], stop: StopFlag) -> tuple[int, int]:
    """Steps 2-3 under one journal: header pass, DICOMDIR references, label check, decode pass.

    On SIGTERM (`stop`) a pass stops after the file in hand; every file journalled so far is kept
    (the journal is closed, so flushed) and the rerun resumes from there.
    """
    fp = settings.fingerprint
    tick = time.monotonic()
    with dicom.quiet_pydicom(), Journal(private / journal_name(shard_t)) as journal:
        inputs = {"inputs_sha": input_fingerprint(root, all_rels)} if shard_t is not None else {}  # for --merge
        journal.write({"type": "run", "fp": fp, "settings": settings.to_json(), "shard": shard_t,
                       "input_root": str(root.resolve()), "files_total": len(all_rels),
                       "files": len(rels), "xraymunit": __version__, **inputs})
        _header_pass(root, rels, state, settings, runner, journal, progress, stop)
        phases["headers"], tick = time.monotonic() - tick, time.monotonic()
        _add_dicomdir_references(root, rels, state, shard_t, journal, fp)
        if table is not None and shard_t is None:
            _check_labels_match(table, state, rels)
        decoded, reused = _decode_pass(root, private, rels, state, settings, runner, journal, progress, stop)
        phases["decode"] = time.monotonic() - tick
        atomic.write_bytes(private / files_list_name(shard_t), files_list_bytes(rels))
        journal.write({"type": "done", "fp": fp, "shard": shard_t, "files": len(rels),
                       "files_total": len(all_rels)})
    return decoded, reused


def _header_pass(root: Path, rels: list[str], state: dict[str, FileState], settings: IngestSettings,
                 runner: Runner, journal: Journal, progress: bool, stop: StopFlag) -> None:
    todo = []
    for rel in rels:
        st = state.get(rel)
        try:
            stat = (root / rel).stat()
            ident, ino = (stat.st_size, stat.st_mtime_ns), stat.st_ino
        except OSError:
            ident, ino = (-1, -1), None
        seen = (st.header["scan"].get("file") or {}) if st is not None and st.header is not None else {}
        if st is None or st.header is None or (st.header["size"], st.header["mtime_ns"]) != ident \
                or seen.get("ino", ino) != ino:  # replaced by another file of the same size and mtime
            todo.append(rel)
    fp = settings.fingerprint
    with progress_bar(len(todo), "headers", progress) as bar:
        done = 0
        items = runner.imap(scan_task, ((str(root), r, settings) for r in todo), scan_died, stop)
        for done, (rel, scan, size, mtime) in enumerate(items, 1):
            rec = {"type": "header", "rel": rel, "fp": fp, "size": size, "mtime_ns": mtime, "scan": scan}
            journal.write(rec)
            st = state.setdefault(rel, FileState())
            st.header, st.image = rec, None
            bar.update()
            _stop_if_requested(stop, "header", done, len(todo))
    _stop_if_requested(stop, "header", done, len(todo))


def _add_dicomdir_references(root: Path, rels: list[str], state: dict[str, FileState],
                             shard: tuple[int, int] | None, journal: Journal, fp: str) -> None:
    """Files a DICOMDIR lists but the folder lacks become 'missing_file' rows (they were found otherwise)."""
    present = {r.lower() for r in rels}
    extra = []
    for rel in list(rels):
        scan = state[rel].header["scan"]
        for ref in scan.get("referenced_files") or ():
            parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
            full = f"{parent}/{ref}" if parent else ref
            if full.lower() not in present and not (root / full).exists():  # the DICOMDIR's shard reports it
                present.add(full.lower())
                extra.append(full)
                missing = dicom.HeaderScan(kind="dicom", status="failed", reason="missing_file",
                                           detail="listed in a DICOMDIR, not on disk").to_json()
                rec = {"type": "header", "rel": full, "fp": fp, "size": -1, "mtime_ns": -1, "scan": missing}
                journal.write(rec)
                state[full] = FileState(header=rec)
    rels.extend(extra)
    rels.sort()


def _check_labels_match(table: LabelTable, state: dict[str, FileState], rels: list[str]) -> None:
    """Before hours of decoding: a labels CSV that matches no image is a wrong CSV or column."""
    usable = [r for r in rels if state[r].header["scan"]["status"] == "ok"]
    if not usable:
        return
    probe = LabelTable(table.n_rows, table.primary, table.columns, table.index, table.ambiguous)
    if any(probe.match(r, state[r].header["scan"].get("ids") or {})[0] is not None for r in usable):
        return
    raise LabelsError(
        f"none of the {table.n_rows} rows of the labels CSV matches any of the {len(usable)} usable images "
        f"(key columns found: {', '.join(table.columns[k] for k in KEY_PRIORITY if k in table.columns)}); "
        f"paths must be relative to the input folder, UIDs exactly as in the headers")


def _decode_pass(root: Path, private: Path, rels: list[str], state: dict[str, FileState],
                 settings: IngestSettings, runner: Runner, journal: Journal, progress: bool,
                 stop: StopFlag) -> tuple[int, int]:
    todo, reused = [], 0
    entries = EntryCheck(private, settings.size)
    for rel in rels:
        st = state[rel]
        if st.header["scan"]["status"] != "ok":
            continue
        img = st.image
        if img is not None and ((img["status"] != "ok" and img.get("reason") not in RETRIED)
                                or entries.is_valid(img)):
            reused += 1
            continue
        todo.append(rel)
    fp = settings.fingerprint
    token = new_run_token()
    tasks = ((str(root), rel, state[rel].header["scan"], str(private), token, settings) for rel in todo)
    with progress_bar(len(todo), f"decode ({runner.workers} worker{'s' if runner.workers > 1 else ''})", progress) as bar:
        done = 0
        for done, (rel, result) in enumerate(runner.imap(decode_task, tasks, decode_died, stop), 1):
            hdr = state[rel].header
            rec = {"type": "image", "rel": rel, "fp": fp, "size": hdr["size"], "mtime_ns": hdr["mtime_ns"], **result}
            journal.write(rec)
            state[rel].image = rec
            bar.update()
            _stop_if_requested(stop, "decode", done, len(todo))
    _stop_if_requested(stop, "decode", done, len(todo))
    for st in state.values():  # finalize needs neither: keep the main process small for big cohorts
        if st.header is not None:
            st.header["scan"].pop("pixel", None)
            st.header["scan"].pop("intensity", None)
    return len(todo), reused


def _stop_if_requested(stop: StopFlag, phase: str, done: int, total: int) -> None:
    if stop.requested:
        raise Stopped(f"{stop.signal_name}: ingest stopped in the {phase} pass after {done} of {total} files; everything "
                      f"journalled is kept — rerun the same command to resume")
