"""Which files a run sees: the recursive walk and stable hash shards."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Sequence

from xraymunit.ingestion.settings import PRIVATE, IngestError
from xraymunit.io import outdir
from xraymunit.io.cohort import CACHE_IMAGES, INGEST_REPORT, MANIFEST

log = logging.getLogger(__name__)
# what ingest writes at the top of --out: skipped when --out is the input folder itself
_OWN_TOP = frozenset({PRIVATE, CACHE_IMAGES.parts[0], MANIFEST, INGEST_REPORT})


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
    return int(hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:12], 16) % n == i - 1


def input_fingerprint(root: Path, rels: Sequence[str]) -> str:
    """SHA-256 of an input listing (each relative path and size): shards of one job array see the
    same one, shards of different input folders (even with as many files) do not. Independent of
    where the folder is mounted and of modification times (a copy of the folder is the same input)."""
    digest = hashlib.sha256()
    for rel in rels:
        try:
            size = (root / rel).stat().st_size
        except OSError:
            size = -1
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0" + str(size).encode() + b"\n")
    return digest.hexdigest()


def discover(root: Path, exclude: Sequence[Path] = (), unreadable: list[str] | None = None) -> list[str]:
    """Posix paths (relative to `root`) of every regular file, sorted; hidden names ignored.

    A folder that cannot be listed is skipped with a warning (and appended to `unreadable`
    when given: the report counts them). Directory symlinks are not followed (no cycles);
    file symlinks are. Never read as input, however reached (`..`, links, bind mounts:
    compared by device and inode):
    folders in `exclude` (the output folder), any other xraymunit output folder below
    `root` (see _is_output), file links into those; and, when `root` is itself the
    output folder, the cohort's own files at its top.
    """
    root = root.resolve()
    excluded = {ident for ident in map(_identity, exclude) if ident is not None}
    excluded_real = [p.resolve() for p in exclude]
    root_is_out = _identity(root) in excluded
    rels: list[str] = []

    def cannot_list(exc: OSError) -> None:  # os.walk skips a folder it cannot read: warn, count
        log.warning("cannot read folder %s (%s): its files are not ingested", exc.filename, exc.strerror)
        if unreadable is not None:
            unreadable.append(os.fspath(exc.filename))

    for dirpath, dirnames, filenames in os.walk(root, onerror=cannot_list):
        here = Path(dirpath)
        top = root_is_out and here == root
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (top and d in _OWN_TOP)
                             and not _is_output(here / d, excluded))
        for name in filenames:
            if name.startswith(".") or (top and name in _OWN_TOP):
                continue
            path = here / name
            if path.is_file() and not (path.is_symlink() and _links_into(path, excluded_real)):
                rels.append(path.relative_to(root).as_posix())
    return sorted(rels)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_output(folder: Path, excluded: set[tuple[int, int]]) -> bool:
    """An output folder: --out (by device and inode), or one an xraymunit stage claimed (its
    lock file), or a cohort or shard made before locks existed (its ingest report or journal)."""
    if _identity(folder) in excluded:
        return True
    if outdir.is_output_folder(folder) or (folder / INGEST_REPORT).is_file() or \
            any((folder / PRIVATE).glob("journal*.jsonl")):
        log.info("not ingesting %s: an xraymunit output folder", folder)
        return True
    return False


def _links_into(path: Path, folders: list[Path]) -> bool:
    target = path.resolve()
    return any(target == f or f in target.parents for f in folders)
