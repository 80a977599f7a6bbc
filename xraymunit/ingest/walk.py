"""Which files a run sees: the recursive walk and stable hash shards."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

from xraymunit.ingest.settings import IngestError


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
