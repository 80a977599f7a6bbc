"""`xraymunit ingest`: a folder of DICOM (or PNG/JPEG) radiographs → a private, analysable cohort.

Stages of one run, each resumable from the journal in `cohort/private/`:

1. walk   — every file under the input folder, sorted (plus files a DICOMDIR lists).
2. header — read headers only; classify (ok / skipped / failed + reason); journal it.
3. decode — the MONAI chain of `xraymunit.data.transforms` over `workers` processes; each
            worker writes its image atomically to `private/entries/`; the main process
            journals the outcome. Rerunning skips every file already journalled unchanged.
4. finalize — labels, pseudonymous keys, patient-level splits, then the cache
            (`cache/images.npy`, uint16 memmap), `manifest.parquet`, `ingest_report.json`.

`--shard I/N` runs steps 1-3 on a stable hash partition of the files; `merge()` runs
step 4 over several shard folders. Memory stays flat: pixel arrays live only inside a
worker for the time of one image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from xraymunit import __version__
from xraymunit.errors import XraymunitError
from xraymunit.io import atomic, dicom, manifest, raster
from xraymunit.io.cohort import CACHE_IMAGES, CACHE_META, INGEST_REPORT, MANIFEST

log = logging.getLogger(__name__)

PIPELINE_VERSION = 1  # bump when the pixel path changes: cached entries are then re-decoded
# Same values as xraymunit.data.transforms.FITS / WINDOW_MODES (a test checks), repeated so
# that validating options does not import MONAI (seconds) before any work is needed.
FITS = ("pad", "crop")
WINDOW_MODES = ("auto", "percentile")
PRIVATE = "private"
ENTRIES = "entries"
JOURNAL_PREFIX = "journal"
NPY_HEADER = 128  # np.save header size for a 2-D uint16 array (format 1.0)


class IngestError(XraymunitError):
    """Ingest cannot run with these inputs; the message says what to change."""


# ------------------------------------------------------------------------------ settings

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
    modalities: tuple[str, ...] = dicom.DEFAULT_MODALITIES
    min_side: int = dicom.DEFAULT_MIN_SIDE
    max_side: int = dicom.DEFAULT_MAX_SIDE

    def validate(self) -> "IngestSettings":
        if not 16 <= int(self.size) <= 4096:
            raise IngestError(f"--size must be between 16 and 4096 pixels, got {self.size}")
        if self.fit not in FITS:
            raise IngestError(f"--fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if self.window not in WINDOW_MODES:
            raise IngestError(f"--window must be one of {', '.join(WINDOW_MODES)}, got {self.window!r}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise IngestError(f"--percentiles must be LOW,HIGH with 0 <= LOW < HIGH <= 100, got {lo},{hi}")
        if not self.modalities:
            raise IngestError("--modalities must name at least one modality (e.g. CR,DX)")
        if not 1 <= self.min_side <= self.max_side:
            raise IngestError(f"--min-side/--max-side must satisfy 1 <= min <= max, got {self.min_side}/{self.max_side}")
        return self

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "percentiles": list(self.percentiles),
                "modalities": list(self.modalities), "pipeline_version": PIPELINE_VERSION}

    @property
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


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """'2/8' → (2, 8); shards are numbered from 1."""
    if shard is None:
        return None
    if isinstance(shard, str):
        try:
            i_str, n_str = shard.split("/")
            i, n = int(i_str), int(n_str)
        except ValueError:
            raise IngestError(f"--shard must look like I/N (e.g. 2/8), got {shard!r}") from None
    else:
        i, n = (int(v) for v in shard)
    if not 1 <= i <= n:
        raise IngestError(f"--shard {i}/{n}: I must be between 1 and N")
    return i, n


def in_shard(rel: str, shard: tuple[int, int] | None) -> bool:
    """Stable hash partition of relative paths (independent of machine, order and Python hash seed)."""
    if shard is None:
        return True
    i, n = shard
    return int(hashlib.sha256(rel.encode("utf-8")).hexdigest()[:12], 16) % n == i - 1


# ------------------------------------------------------------------------------ walking

def discover(root: Path, exclude: Sequence[Path] = ()) -> list[str]:
    """Posix paths (relative to `root`) of every regular file, sorted; hidden names ignored.

    Directory symlinks are not followed (no cycles); file symlinks are. Folders in
    `exclude` (e.g. the output folder when it lies inside the input) are skipped.
    """
    root = root.resolve()
    excluded = {p.resolve() for p in exclude}
    rels: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in excluded)
        for name in filenames:
            if name.startswith("."):
                continue
            path = here / name
            if path.is_file():
                rels.append(path.relative_to(root).as_posix())
    return sorted(rels)


# ------------------------------------------------------------------------------ journal

class Journal:
    """Append-only JSONL log in the private folder: the resume state of a run.

    One writer (the main process). Lines are flushed at least every 0.25 s and fsynced every
    few seconds; a torn last line after a crash is ignored on read. A record lost that way
    only means its file is processed again on resume (entries are written before records).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fp = open(path, "a", encoding="utf-8")
        self._last_flush = self._last_sync = time.monotonic()

    def write(self, record: dict) -> None:
        self._fp.write(json.dumps(record, separators=(",", ":"), default=atomic._json_default) + "\n")
        now = time.monotonic()
        if now - self._last_flush > 0.25:
            self._fp.flush()
            self._last_flush = now
            if now - self._last_sync > 5.0:
                os.fsync(self._fp.fileno())
                self._last_sync = now

    def close(self) -> None:
        if not self._fp.closed:
            self._fp.flush()
            os.fsync(self._fp.fileno())
            self._fp.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def journal_name(shard: tuple[int, int] | None) -> str:
    return f"{JOURNAL_PREFIX}.jsonl" if shard is None else f"{JOURNAL_PREFIX}.shard-{shard[0]}-of-{shard[1]}.jsonl"


def files_list_name(shard: tuple[int, int] | None) -> str:
    return "files.txt" if shard is None else f"files.shard-{shard[0]}-of-{shard[1]}.txt"


def read_journals(private: Path) -> Iterator[dict]:
    for path in sorted(private.glob(f"{JOURNAL_PREFIX}*.jsonl")):
        with open(path, encoding="utf-8") as fp:
            for line in fp:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # torn line from a killed run


@dataclass
class FileState:
    """What the journal knows about one file (latest records for the current settings)."""

    header: dict | None = None
    image: dict | None = None


def load_state(private: Path, fingerprint: str) -> dict[str, FileState]:
    state: dict[str, FileState] = {}
    for rec in read_journals(private):
        if rec.get("fp") != fingerprint or rec.get("type") not in ("header", "image"):
            continue
        st = state.setdefault(rec["rel"], FileState())
        if rec["type"] == "header":
            if st.header is None or (st.header["size"], st.header["mtime_ns"]) != (rec["size"], rec["mtime_ns"]):
                st.image = None  # a new version of the file: its old decode does not count
            st.header = rec
        else:
            st.image = rec
    return state


def entry_relpath(rel: str) -> str:
    """Private cache entry of a file: named by a hash of its path (no identifiers in names)."""
    h = hashlib.sha1(rel.encode("utf-8")).hexdigest()[:24]
    return f"{ENTRIES}/{h[0]}/{h}.npy"  # 16 sub-folders: few directory creations, small directories


def entry_is_valid(private: Path, record: dict, size: int) -> bool:
    path = private / record["entry"]
    try:
        return path.stat().st_size == NPY_HEADER + size * size * 2
    except OSError:
        return False


def write_entry(path: Path, image: np.ndarray) -> None:
    """Atomic per-image write (temp file + rename): a killed worker never leaves half an entry.

    Not fsynced (thousands of fsyncs would dominate ingest); after a power cut the
    journal and the size check on resume catch what was lost, and it is decoded again.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            fp = open(tmp, "wb")
        except FileNotFoundError:  # first entry of its sub-folder (mkdir only then: it is slow)
            path.parent.mkdir(parents=True, exist_ok=True)
            fp = open(tmp, "wb")
        with fp:
            np.save(fp, image, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------ per file

def scan_file(path: Path, settings: IngestSettings) -> dict:
    """Header pass for one file of any kind: DICOM, PNG, JPEG or something else (one open)."""
    try:
        with open(path, "rb") as fp:
            st = os.fstat(fp.fileno())
            fmt = raster.sniff_format(fp.read(16))
            if fmt is None:
                return dicom.scan_open_file(fp, st, settings.modalities, settings.min_side,
                                            settings.max_side).to_json()
    except OSError as exc:
        return dicom.HeaderScan(kind=None, status="failed", reason="unreadable", detail=type(exc).__name__).to_json()
    scan = dicom.HeaderScan(kind=fmt, status="ok")
    try:
        header = raster.read_raster_header(path)
    except Exception as exc:
        scan.status, scan.reason, scan.detail = "failed", "decode_error", dicom.safe_detail(exc)
        return scan.to_json()
    scan.meta = {"photometric": header.mode, "bits_stored": header.bits, "rows": header.rows,
                 "columns": header.columns, "transfer_syntax": None}
    rows, cols = header.rows, header.columns
    if rows <= 0 or cols <= 0:
        scan.status, scan.reason, scan.detail = "failed", "zero_size", f"{rows} x {cols}"
    elif (min(rows, cols) < settings.min_side or max(rows, cols) > settings.max_side
          or max(rows, cols) / min(rows, cols) > dicom.MAX_ASPECT):
        scan.status, scan.reason = "failed", "absurd_dimensions"
        scan.detail = f"{rows} x {cols} (accepted: sides {settings.min_side}-{settings.max_side})"
    return scan.to_json()


_QUIET: list = []
_CHAIN: Any = None
_CHAIN_FP: str | None = None


def _chain(settings: IngestSettings):
    global _CHAIN, _CHAIN_FP
    if _CHAIN is None or _CHAIN_FP != settings.fingerprint:
        from xraymunit.data.transforms import ingest_transforms

        _CHAIN = ingest_transforms(size=settings.size, fit=settings.fit, window=settings.window,
                                   percentiles=settings.percentiles)
        _CHAIN_FP = settings.fingerprint
    return _CHAIN


def _root_cause(exc: BaseException) -> BaseException:
    """MONAI wraps transform errors in RuntimeError('applying transform …'); unwrap them."""
    seen = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def to_uint16(image: np.ndarray) -> np.ndarray:
    """[0, 1] float → uint16 (value / 65535 is the display intensity)."""
    scaled = np.multiply(image, np.float32(65535.0), dtype=np.float32)
    np.clip(scaled, 0.0, 65535.0, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint16)


def decode_file(path: Path, scan: dict, entry: Path, settings: IngestSettings) -> dict:
    """Run the transform chain on one file and write its cache entry; never raises for bad data."""
    try:
        out = _chain(settings)({"image": str(path), "header": scan})
    except MemoryError:
        return {"status": "failed", "reason": "decode_error", "detail": "out of memory"}
    except Exception as exc:
        cause = _root_cause(exc)
        if isinstance(cause, dicom.PixelError):
            return {"status": "failed", "reason": cause.reason, "detail": cause.detail}
        if isinstance(cause, OSError) and "truncated" in str(cause).lower():
            return {"status": "failed", "reason": "truncated", "detail": dicom.safe_detail(cause)}
        return {"status": "failed", "reason": "decode_error", "detail": dicom.safe_detail(cause)}
    image = out["image"][0]
    if image.shape != (settings.size, settings.size) or not np.isfinite(image).all():
        return {"status": "failed", "reason": "decode_error", "detail": "pixel path produced an invalid image"}
    try:
        write_entry(entry, to_uint16(image))
    except OSError as exc:  # disk full, permissions: stop the run (what is journalled is kept)
        raise IngestError(f"cannot write cache entries in {entry.parent.parent}: {exc.strerror or exc}; "
                          f"fix that and rerun (it resumes)") from None
    meta = out["image_meta_dict"]
    return {"status": "ok", "window_source": meta.get("window_source"), "window": meta.get("window"),
            "steps": meta.get("steps", [])}


def _scan_task(args: tuple[str, str, IngestSettings]) -> tuple[str, dict, int, int]:
    root, rel, settings = args
    path = Path(root) / rel
    try:
        st = path.stat()
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime = -1, -1
    return rel, scan_file(path, settings), size, mtime


def _decode_task(args: tuple[str, str, dict, str, IngestSettings]) -> tuple[str, dict]:
    root, rel, scan, entry, settings = args
    return rel, decode_file(Path(root) / rel, scan, Path(entry), settings)


def tune_allocator() -> bool:
    """Keep large temporary arrays in the heap instead of returning them to the OS after each image.

    glibc gives every allocation above a (dynamic) threshold its own mmap and unmaps it on
    free, so each image's 4-16 MB work arrays are page-faulted and zeroed afresh — on a VM
    that costs as much as the pixel work itself. Raising the mmap/trim thresholds lets the
    heap reuse that memory; it stays bounded by one image's working set (it does not grow
    with the cohort). No-op where glibc's mallopt is unavailable. Returns whether it applied.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 64 << 20) == 1
        ok &= libc.mallopt(m_trim_threshold, 128 << 20) == 1
        return bool(ok)
    except (OSError, AttributeError):
        return False


def _worker_init() -> None:
    """Workers: one thread each (the parallelism is across processes), Ctrl-C handled by the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_allocator()
    os.environ["OMP_NUM_THREADS"] = "1"
    _QUIET.append(dicom.quiet_pydicom())
    _QUIET[-1].__enter__()  # for the worker's lifetime
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency, but the pixel path does not need it
        pass


class _Runner:
    """Maps a task function over items in-process (workers=1) or over a process pool."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = None
        if workers > 1:
            import xraymunit.data.transforms  # noqa: F401  (imported once here; forked workers inherit it)

            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            self.pool = mp.get_context(method).Pool(workers, initializer=_worker_init)

    def imap(self, fn, items: Iterable, total: int) -> Iterator:
        if self.pool is None:
            return map(fn, items)
        chunk = max(1, min(32, total // (self.workers * 8) or 1))
        return self.pool.imap_unordered(fn, items, chunksize=chunk)

    def close(self, abort: bool = False) -> None:
        if self.pool is not None:
            if abort:
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()
            self.pool = None


# ------------------------------------------------------------------------------ the stage

def ingest(
    input_dir: str | os.PathLike,
    out_dir: str | os.PathLike = "cohort",
    labels: str | os.PathLike | None = None,
    size: int = 256,
    workers: int = 1,
    shard: str | tuple[int, int] | None = None,
    modalities: Sequence[str] = dicom.DEFAULT_MODALITIES,
    fit: str = "pad",
    window: str = "auto",
    percentiles: Sequence[float] = (0.5, 99.5),
    salt_file: str | os.PathLike | None = None,
    split: Sequence[float] = manifest.DEFAULT_FRACTIONS,
    min_side: int = dicom.DEFAULT_MIN_SIDE,
    max_side: int = dicom.DEFAULT_MAX_SIDE,
    progress: bool = True,
) -> IngestResult:
    """Ingest a folder of DICOM (or PNG/JPEG) radiographs into the cohort folder `out_dir`.

    Args:
        input_dir: folder walked recursively (files with or without .dcm; DICOMDIR honoured).
        out_dir: cohort folder (created; reruns resume from its private/ journal).
        labels: optional labels CSV (see README "Ingest" for accepted columns).
        size: side of the cached square images.
        workers: decode processes (1 = in this process).
        shard: "I/N": process only that hash partition and stop before finalizing.
        modalities: DICOM modalities to keep; others are skipped with reason "modality".
        fit: "pad" (default) or "crop" to make images square.
        window: "auto" (VOI LUT / window / percentile) or "percentile".
        percentiles: low/high percentiles of the robust window.
        salt_file: use (or create) this salt instead of private/salt.key.
        split: train/val/test fractions of patients.
        min_side / max_side: plausible image side range; outside it is "absurd_dimensions".
        progress: show tqdm progress bars.
    """
    t0 = time.monotonic()
    root = Path(input_dir)
    if not root.is_dir():
        raise IngestError(f"input folder not found: {root}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise IngestError(f"--out {out} exists and is not a folder")
    if int(workers) < 1:
        raise IngestError(f"--workers must be at least 1, got {workers}")
    settings = IngestSettings(size=int(size), fit=fit, window=window,
                              percentiles=tuple(float(p) for p in percentiles),  # type: ignore[arg-type]
                              modalities=tuple(m.strip().upper() for m in modalities if m.strip()),
                              min_side=int(min_side), max_side=int(max_side)).validate()
    shard_t = parse_shard(shard)
    fractions = manifest.check_fractions(split)
    table = manifest.load_labels(labels) if labels is not None else None

    private = out / PRIVATE
    private.mkdir(parents=True, exist_ok=True, mode=0o700)
    phases: dict[str, float] = {}
    tick = time.monotonic()
    all_rels = discover(root, exclude=[out])
    rels = [r for r in all_rels if in_shard(r, shard_t)]
    fp = settings.fingerprint
    state = load_state(private, fp)
    phases["walk_and_journal"], tick = time.monotonic() - tick, time.monotonic()

    tune_allocator()
    runner = _Runner(int(workers))
    decoded = reused = 0
    try:
        with dicom.quiet_pydicom(), Journal(private / journal_name(shard_t)) as journal:
            journal.write({"type": "run", "fp": fp, "settings": settings.to_json(), "shard": shard_t,
                           "input_root": str(root.resolve()), "files_total": len(all_rels),
                           "files": len(rels), "xraymunit": __version__})
            _header_pass(root, rels, state, settings, runner, journal, progress)
            phases["headers"], tick = time.monotonic() - tick, time.monotonic()
            _add_dicomdir_references(root, rels, state, shard_t, journal, fp)
            if table is not None and shard_t is None:
                _check_labels_match(table, state, rels)
            decoded, reused = _decode_pass(root, private, rels, state, settings, runner, journal, progress)
            phases["decode"], tick = time.monotonic() - tick, time.monotonic()
            atomic.write_text(private / files_list_name(shard_t), "".join(r + "\n" for r in rels))
            journal.write({"type": "done", "fp": fp, "shard": shard_t, "files": len(rels),
                           "files_total": len(all_rels)})
        runner.close()
    except BaseException:
        runner.close(abort=True)
        raise

    records = [(rel, state[rel]) for rel in rels]
    if shard_t is not None:
        counts = Counter(_status_of(st)[0] for _, st in records)
        reasons = Counter(_status_of(st)[1] for _, st in records if _status_of(st)[1])
        return IngestResult(out, len(rels), dict(counts), dict(reasons), decoded, reused, finalized=False,
                            report={"shard": list(shard_t), "seconds": round(time.monotonic() - t0, 2)})
    run = {"decoded": decoded, "reused": reused, "workers": int(workers)}
    report = finalize(out, records, settings, table, salt_file, fractions, progress, run=run)
    phases["finalize"] = time.monotonic() - tick
    run["seconds"] = round(time.monotonic() - t0, 2)
    run["phase_seconds"] = {k: round(v, 2) for k, v in phases.items()}
    atomic.write_json(out / INGEST_REPORT, report)  # again, now with the finalize time
    return IngestResult(out, len(rels), report["by_status"], report["by_reason"], decoded, reused,
                        finalized=True, report=report)


def _bar(total: int, desc: str, progress: bool):
    return tqdm(total=total, desc=desc, unit="file", disable=not progress or total == 0, dynamic_ncols=True,
                leave=False)


def _header_pass(root: Path, rels: list[str], state: dict[str, FileState], settings: IngestSettings,
                 runner: _Runner, journal: Journal, progress: bool) -> None:
    todo = []
    for rel in rels:
        st = state.get(rel)
        try:
            stat = (root / rel).stat()
            ident = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            ident = (-1, -1)
        if st is None or st.header is None or (st.header["size"], st.header["mtime_ns"]) != ident:
            todo.append(rel)
    fp = settings.fingerprint
    with _bar(len(todo), "headers", progress) as bar:
        for rel, scan, size, mtime in runner.imap(_scan_task, ((str(root), r, settings) for r in todo), len(todo)):
            rec = {"type": "header", "rel": rel, "fp": fp, "size": size, "mtime_ns": mtime, "scan": scan}
            journal.write(rec)
            st = state.setdefault(rel, FileState())
            st.header, st.image = rec, None
            bar.update()


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


def _check_labels_match(table: manifest.LabelTable, state: dict[str, FileState], rels: list[str]) -> None:
    """Before hours of decoding: a labels CSV that matches no image is a wrong CSV or column."""
    usable = [r for r in rels if state[r].header["scan"]["status"] == "ok"]
    if not usable:
        return
    probe = manifest.LabelTable(table.n_rows, table.primary, table.columns, table.index, table.ambiguous)
    if any(probe.match(r, state[r].header["scan"].get("ids") or {})[0] is not None for r in usable):
        return
    raise manifest.LabelsError(
        f"none of the {table.n_rows} rows of the labels CSV matches any of the {len(usable)} usable images "
        f"(key columns found: {', '.join(table.columns[k] for k in manifest.KEY_PRIORITY if k in table.columns)}); "
        f"paths must be relative to the input folder, UIDs exactly as in the headers")


def _decode_pass(root: Path, private: Path, rels: list[str], state: dict[str, FileState],
                 settings: IngestSettings, runner: _Runner, journal: Journal, progress: bool) -> tuple[int, int]:
    todo, reused = [], 0
    for rel in rels:
        st = state[rel]
        if st.header["scan"]["status"] != "ok":
            continue
        img = st.image
        if img is not None and (img["status"] != "ok" or entry_is_valid(private, img, settings.size)):
            reused += 1
            continue
        todo.append(rel)
    fp = settings.fingerprint
    tasks = ((str(root), rel, state[rel].header["scan"], str(private / entry_relpath(rel)), settings) for rel in todo)
    with _bar(len(todo), f"decode ({runner.workers} worker{'s' if runner.workers > 1 else ''})", progress) as bar:
        for rel, result in runner.imap(_decode_task, tasks, len(todo)):
            hdr = state[rel].header
            rec = {"type": "image", "rel": rel, "fp": fp, "size": hdr["size"], "mtime_ns": hdr["mtime_ns"],
                   "entry": entry_relpath(rel), **result}
            journal.write(rec)
            state[rel].image = rec
            bar.update()
    for st in state.values():  # finalize needs neither: keep the main process small for big cohorts
        if st.header is not None:
            st.header["scan"].pop("pixel", None)
            st.header["scan"].pop("intensity", None)
    return len(todo), reused


def _status_of(st: FileState) -> tuple[str, str | None, str | None]:
    scan = st.header["scan"] if st.header else {"status": "failed", "reason": "decode_error", "detail": "no header"}
    if scan["status"] != "ok":
        return scan["status"], scan.get("reason"), scan.get("detail")
    if st.image is None:
        return "failed", "decode_error", "not decoded (interrupted run or incomplete shard)"
    return st.image["status"], st.image.get("reason"), st.image.get("detail")


# ------------------------------------------------------------------------------ finalize

def finalize(out: Path, records: list[tuple[str, FileState]], settings: IngestSettings,
             table: manifest.LabelTable | None, salt_file: str | os.PathLike | None,
             fractions: Sequence[float], progress: bool, run: dict) -> dict:
    """Manifest + splits + packed cache + report from journalled per-file records."""
    private = out / PRIVATE
    for stale in (private / ENTRIES).glob("*/.*.tmp"):  # left by workers killed mid-write
        stale.unlink(missing_ok=True)
    salt, salt_source = manifest.load_or_create_salt(private, salt_file)
    pseudo = manifest.Pseudonymiser(salt)
    warnings: list[str] = []
    rows, keymap = [], []
    patient_fallback = Counter()
    for rel, st in records:
        row, ids = _manifest_row(rel, st, table, pseudo, patient_fallback)
        rows.append(row)
        keymap.append({"image_key": row["image_key"], "rel_path": rel, "patient_key": row["patient_key"],
                       "patient_id": ids.get("patient_id"), "study_key": row["study_key"], "study_uid": ids.get("study_uid"),
                       "series_key": row["series_key"], "series_uid": ids.get("series_uid"),
                       "sop_key": row["sop_key"], "sop_uid": ids.get("sop_uid")})
    _mark_duplicates(rows)
    ok_rows = [r for r in rows if r["status"] == "ok"]
    raw = sum(1 for (_, st), r in zip(records, rows) if r["status"] == "ok"
              and (st.header["scan"].get("meta") or {}).get("presentation_intent") == "FOR PROCESSING")
    if raw:
        warnings.append(f"{raw} images are DX 'FOR PROCESSING' (raw detector data, before the vendor's image "
                        f"processing): they look different from 'FOR PRESENTATION' images of the same chest")
    if patient_fallback["study"]:
        warnings.append(f"{patient_fallback['study']} images have no PatientID: their StudyInstanceUID stands in "
                        f"for the patient, so one patient's studies could land in different splits")
    if patient_fallback["file"]:
        warnings.append(f"{patient_fallback['file']} images have no patient id (no PatientID, no patient_id column): "
                        f"each counts as its own patient, so splits cannot prevent patient leakage for them")
    _dedupe_image_keys(rows)

    # Splits are over patients of successfully ingested images only.
    if ok_rows:
        import pandas as pd

        patients = manifest.patient_table(pd.DataFrame(ok_rows, columns=["patient_key", "label", "source_dataset"]))
        split_of = manifest.assign_splits(patients, pseudo, fractions)
        for r in ok_rows:
            r["split"] = split_of[r["patient_key"]]

    # Pack the cache in manifest order; an entry that cannot be read turns its row into a failure.
    manifest_path = out / MANIFEST
    manifest_path.unlink(missing_ok=True)  # a killed finalize must not leave an old manifest over a new cache
    n_packed, signature = _pack_cache(out, private, records, rows, settings, progress)

    df = manifest.to_frame(rows)
    report = _report(df, settings, fractions, table, salt_source, run, warnings)
    atomic.write_json(out / CACHE_META, {
        "size": settings.size, "count": n_packed, "dtype": "uint16", "fit": settings.fit,
        "window": settings.window, "percentiles": list(settings.percentiles),
        "intensity": "value / 65535 = display intensity in [0, 1] after Modality LUT, VOI LUT/window "
                     "and MONOCHROME1 inversion; bright = dense (bone), dark = air",
        "order": "row i is the manifest row whose cache_index is i",
        "pipeline_version": PIPELINE_VERSION, "xraymunit": __version__, "pack_signature": signature,
    })
    import pandas as pd

    with atomic.atomic_path(private / "keys.parquet", mode=0o600) as tmp:  # identifiers: owner only
        pd.DataFrame(keymap).to_parquet(tmp, index=False)
    atomic.write_json(out / INGEST_REPORT, report)
    manifest.write_manifest(df, manifest_path)
    return report


def _manifest_row(rel: str, st: FileState, table: manifest.LabelTable | None,
                  pseudo: manifest.Pseudonymiser, patient_fallback: Counter) -> tuple[dict, dict]:
    scan = st.header["scan"]
    meta = dict(scan.get("meta") or {})
    ids = dict(scan.get("ids") or {})
    status, reason, detail = _status_of(st)
    row = manifest.empty_row()
    row.update({k: meta.get(k) for k in ("modality", "sex", "age", "view_position", "body_part", "manufacturer",
                                         "photometric", "bits_stored", "transfer_syntax", "rows", "columns",
                                         "spacing_row_mm", "spacing_col_mm", "spacing_source")})
    row["source_format"] = scan.get("kind")
    row.update(status=status, reason=reason, reason_detail=detail)
    if status == "ok":
        row["window_source"] = st.image.get("window_source")
        row["pixel_steps"] = ";".join(st.image.get("steps") or [])
    hit, source = table.match(rel, ids) if table is not None else (None, None)
    if hit is not None:
        row["label"], row["label_source"] = hit.label, source
        row["source_dataset"] = hit.source_dataset
        row["sex"] = row["sex"] or hit.sex
        row["age"] = row["age"] if row["age"] is not None else hit.age
        row["view_position"] = row["view_position"] or hit.view
        if not ids.get("patient_id") and hit.patient_id:
            ids["patient_id"] = hit.patient_id
    if row["label"] is None:
        folder = manifest.folder_label(rel)
        if folder is not None:
            row["label"], row["label_source"] = folder, "folder"
    if ids.get("patient_id"):
        patient = ids["patient_id"]
    elif ids.get("study_uid"):
        patient = "study:" + ids["study_uid"]
        patient_fallback["study"] += status == "ok"
    else:
        patient = "file:" + rel
        patient_fallback["file"] += status == "ok"
    row.update(
        image_key=pseudo.key("image", rel), patient_key=pseudo.key("patient", patient),
        study_key=pseudo.key("study", ids.get("study_uid")), series_key=pseudo.key("series", ids.get("series_uid")),
        sop_key=pseudo.key("sop", ids.get("sop_uid")),
    )
    return row, ids


def _mark_duplicates(rows: list[dict]) -> None:
    """The same SOP instance stored twice (two exports, a copy on another disc) is one image:
    the first copy in path order stays, later ones are skipped as `duplicate`."""
    first: dict[str, str] = {}
    for row in rows:
        if row["status"] != "ok" or not row["sop_key"]:
            continue
        if row["sop_key"] in first:
            row.update(status="skipped", reason="duplicate", window_source=None, pixel_steps=None,
                       reason_detail=f"same SOPInstanceUID as image {first[row['sop_key']]}")
        else:
            first[row["sop_key"]] = row["image_key"]


def _dedupe_image_keys(rows: list[dict]) -> None:
    """Two paths hashing to one 64-bit key would be astronomically unlikely; fail loudly if it happens."""
    keys = Counter(r["image_key"] for r in rows)
    dup = [k for k, n in keys.items() if n > 1]
    if dup:
        raise IngestError(f"{len(dup)} image_key collisions; rerun with a new salt (--salt-file)")


def _pack_cache(out: Path, private: Path, records: list[tuple[str, FileState]], rows: list[dict],
                settings: IngestSettings, progress: bool) -> tuple[int, str]:
    """Write cache/images.npy (uint16 N×S×S memmap) from the entries, one image in memory at a time."""
    s = settings.size
    ok = []
    for (rel, st), row in zip(records, rows):
        if row["status"] != "ok":
            continue
        if entry_is_valid(private, st.image, s):
            ok.append((row, private / st.image["entry"]))
        else:
            row.update(status="failed", reason="decode_error", reason_detail="cache entry missing or damaged",
                       split=None, window_source=None, pixel_steps=None)
    path = out / CACHE_IMAGES
    signature = _pack_signature(ok, settings)
    if _cache_is_current(out, signature, len(ok), s):
        for i, (row, _entry) in enumerate(ok):
            row["cache_index"] = i
        return len(ok), signature
    path.parent.mkdir(parents=True, exist_ok=True)
    (out / CACHE_META).unlink(missing_ok=True)
    with atomic.atomic_path(path) as tmp:
        if not ok:
            np.save(tmp, np.zeros((0, s, s), np.uint16))
        else:
            np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint16, shape=(len(ok), s, s)).flush()
            chunk = max(1, (64 << 20) // (s * s * 2))  # map 64 MB at a time: RSS stays flat however big N is
            with _bar(len(ok), "pack cache", progress) as bar:
                if hasattr(os, "copy_file_range"):
                    _pack_in_kernel(tmp, ok, s, bar)
                else:
                    for start in range(0, len(ok), chunk):
                        cache = np.load(tmp, mmap_mode="r+")
                        for i in range(start, min(start + chunk, len(ok))):
                            row, entry = ok[i]
                            cache[i] = _load_entry(entry, s, private)
                            row["cache_index"] = i
                            bar.update()
                        cache.flush()
                        del cache
    return len(ok), signature


def _load_entry(entry: Path, size: int, private: Path) -> np.ndarray:
    arr = np.load(entry, allow_pickle=False)
    if arr.shape != (size, size) or arr.dtype != np.uint16:
        raise IngestError(f"cache entry {entry.name} has shape {arr.shape}; delete {private / ENTRIES} and rerun")
    return arr


def _pack_in_kernel(cache_path: Path, ok: list[tuple[dict, Path]], size: int, bar) -> None:
    """Copy each entry's pixel bytes into the cache file with copy_file_range (no user-space copy).

    Entries are checked first: the exact .npy header a 2-D uint16 size×size array gets, so the
    bytes after it are that array in C order — the layout of one row of the cache.
    """
    with open(cache_path, "r+b") as fp:
        header_len = _npy_header_length(fp)
        expected = _npy_header_bytes(size)
        nbytes = size * size * 2
        for i, (row, entry) in enumerate(ok):
            with open(entry, "rb") as src:
                if src.read(len(expected)) != expected:
                    raise IngestError(f"cache entry {entry.name} is not a {size}x{size} uint16 array; "
                                      f"delete it and rerun")
                offset_src, offset_dst, left = len(expected), header_len + i * nbytes, nbytes
                while left:
                    n = os.copy_file_range(src.fileno(), fp.fileno(), left, offset_src, offset_dst)
                    if n <= 0:
                        raise IngestError(f"cache entry {entry.name} is truncated; delete it and rerun")
                    offset_src, offset_dst, left = offset_src + n, offset_dst + n, left - n
            row["cache_index"] = i
            bar.update()


def _npy_header_length(fp) -> int:
    fp.seek(0)
    np.lib.format.read_magic(fp)
    np.lib.format.read_array_header_1_0(fp)
    return fp.tell()


def _npy_header_bytes(size: int) -> bytes:
    import io as _io

    buf = _io.BytesIO()
    np.save(buf, np.zeros((size, size), np.uint16), allow_pickle=False)
    return buf.getvalue()[:NPY_HEADER]


def _pack_signature(ok: list[tuple[dict, Path]], settings: IngestSettings) -> str:
    """Identifies a pack: which entries, in which order, made under which settings."""
    h = hashlib.sha256(settings.fingerprint.encode())
    for _row, entry in ok:
        st = entry.stat()
        h.update(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _cache_is_current(out: Path, signature: str, count: int, size: int) -> bool:
    """A rerun that changed nothing keeps the existing cache instead of rewriting it."""
    try:
        meta = json.loads((out / CACHE_META).read_text())
        header_ok = np.load(out / CACHE_IMAGES, mmap_mode="r").shape == (count, size, size)
    except (OSError, ValueError):
        return False
    return header_ok and meta.get("pack_signature") == signature


def _report(df, settings: IngestSettings, fractions: Sequence[float], table: manifest.LabelTable | None,
            salt_source: str, run: dict, warnings: list[str]) -> dict:
    by_status = {k: int(v) for k, v in df["status"].value_counts().sort_index().items()}
    reasons = df[df["status"] != "ok"]
    by_reason = {k: int(v) for k, v in reasons["reason"].value_counts().sort_index().items()}
    ok = df[df["status"] == "ok"]
    splits = {}
    for split in manifest.SPLITS:
        part = ok[ok["split"] == split]
        splits[split] = {
            "patients": int(part["patient_key"].nunique()), "images": int(len(part)),
            "labels": {str(k): int(v) for k, v in part["label"].fillna("unlabelled").value_counts().sort_index().items()},
        }
    labels = None
    if table is not None:
        labels = {
            "csv_rows": table.n_rows, "csv_rows_matched": len(table.used_rows),
            "csv_rows_unmatched": table.n_rows - len(table.used_rows),
            "key_columns": [table.columns[k] for k in manifest.KEY_PRIORITY if k in table.columns],
            "matched_by": {str(k): int(v) for k, v in ok["label_source"].value_counts().sort_index().items()},
        }
        if labels["csv_rows_unmatched"]:
            warnings.append(f"{labels['csv_rows_unmatched']} labels CSV rows matched no ingested file")
    unlabelled = int(ok["label"].isna().sum())
    if unlabelled:
        warnings.append(f"{unlabelled} ingested images have no label (kept as unlabelled)")
    problems = [{"image_key": r.image_key, "status": r.status, "reason": r.reason, "detail": r.reason_detail}
                for r in df[df["status"] != "ok"].itertuples()]
    return {
        "format": "xraymunit.ingest_report", "format_version": 1, "xraymunit": __version__,
        "settings": {**settings.to_json(), "split_fractions": list(fractions)},
        "salt": salt_source,
        "files": int(len(df)), "by_status": by_status, "by_reason": by_reason,
        "reason_descriptions": {k: dicom.REASONS.get(k, k) for k in by_reason},
        "images": int(len(ok)),
        "by_label": {str(k): int(v) for k, v in ok["label"].fillna("unlabelled").value_counts().sort_index().items()},
        "by_source_format": {str(k): int(v) for k, v in ok["source_format"].value_counts().sort_index().items()},
        "by_window_source": {str(k): int(v) for k, v in ok["window_source"].value_counts().sort_index().items()},
        "splits": splits, "labels": labels, "this_run": run, "warnings": warnings, "problems": problems,
    }


# ------------------------------------------------------------------------------ merge

def merge(
    shard_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike = "cohort",
    labels: str | os.PathLike | None = None,
    salt_file: str | os.PathLike | None = None,
    split: Sequence[float] = manifest.DEFAULT_FRACTIONS,
    progress: bool = True,
) -> IngestResult:
    """Finalize a cohort from `--shard I/N` runs: check every shard finished with the same
    settings, gather their journals and entries into `out_dir/private/`, then build the
    manifest, splits and cache exactly as a single run would.

    Args:
        shard_dirs: the shards' --out folders (may include out_dir itself, or be empty when
            all shards wrote into out_dir).
        out_dir: the cohort folder to finalize.
        labels / salt_file / split: as for `ingest`.
    """
    t0 = time.monotonic()
    out = Path(out_dir)
    dirs = [Path(d) for d in shard_dirs] or [out]
    for d in dirs:
        if not (d / PRIVATE).is_dir():
            raise IngestError(f"{d} is not a shard folder (no {PRIVATE}/ journal); run `xraymunit ingest DIR --shard I/N --out {d}` first")
    fractions = manifest.check_fractions(split)
    table = manifest.load_labels(labels) if labels is not None else None
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
    totals = {v["run"].get("files_total") for v in runs.values()}
    if len(totals) != 1:
        raise IngestError(f"shards saw different input folders ({', '.join(str(t) for t in sorted(totals))} files); "
                          f"run every shard on the same DICOM_DIR")
    fp = fps.pop()
    settings = IngestSettings.from_json(next(iter(runs.values()))["run"]["settings"])
    shard_runs = runs

    rels: list[str] = []
    for key in sorted(shard_runs):
        d = shard_runs[key]["dir"]
        _import_shard(d, out, key)
        listing = d / PRIVATE / files_list_name(key)
        rels.extend(line for line in listing.read_text(encoding="utf-8").splitlines() if line)
    state = load_state(private, fp)
    rels = sorted(set(rels))
    records = [(rel, state.get(rel) or FileState()) for rel in rels]
    records = [(rel, st) if st.header else (rel, FileState(header={"type": "header", "rel": rel, "size": -1, "mtime_ns": -1,
               "scan": {"kind": None, "status": "failed", "reason": "decode_error", "detail": "no journal record",
                        "meta": {}, "ids": {}}})) for rel, st in records]
    report = finalize(out, records, settings, table, salt_file, fractions, progress,
                      run={"decoded": 0, "reused": sum(1 for _, st in records if st.image is not None),
                           "merged_shards": n, "seconds": round(time.monotonic() - t0, 2)})
    return IngestResult(out, len(records), report["by_status"], report["by_reason"], 0,
                        report["this_run"]["reused"], finalized=True, report=report)


def _import_shard(shard_dir: Path, out: Path, shard: tuple[int, int]) -> None:
    """Copy a shard's journal, file list and entries into the cohort's private folder (hard links when possible)."""
    src, dst = shard_dir / PRIVATE, out / PRIVATE
    if src.resolve() == dst.resolve():
        return
    for name in (journal_name(shard), files_list_name(shard)):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    for entry in (src / ENTRIES).rglob("*.npy"):
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


from xraymunit._api import make_callable  # noqa: E402

make_callable(__name__)  # `xraymunit.ingest(...)` calls ingest()
