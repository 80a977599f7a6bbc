"""Several processes (torchrun): each renders every world-th source; rank 0 merges the manifest parts.

Styles are a pure function of (seed, source, j), so a source's images are the same bytes in
whichever process renders it. Each rank writes its manifest rows to a part file
(`manifest.rank-R-of-W.jsonl`); after a barrier rank 0 merges the parts in the
single-process order (sources by image_key, then style index) and removes them. Rank 0 holds
the output folder's lock for the launch; the others write only while it does.
"""

from __future__ import annotations

import json
from pathlib import Path

from xraymunit.distributed import Group
from xraymunit.io import atomic


def part_path(out: Path, rank: int, world: int) -> Path:
    return Path(out) / f"manifest.rank-{rank}-of-{world}.jsonl"


def write_part(out: Path, group: Group, records: list[dict]) -> None:
    """This rank's manifest rows (JSON keeps Python floats exact, so the merge is lossless)."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    atomic.write_text(part_path(out, group.rank, group.world), text)


def merge_parts(out: Path, group: Group, order: dict[str, int]) -> list[dict]:
    """Every rank's rows in single-process order (`order`: source image_key → position)."""
    records = []
    for rank in range(group.world):
        with open(part_path(out, rank, group.world), encoding="utf-8") as fh:
            records.extend(json.loads(line) for line in fh if line.strip())
    records.sort(key=lambda r: (order[r["source_image_key"]], r["style_index"]))
    return records


def remove_parts(out: Path) -> None:
    """Part files of this or an earlier (stopped) launch, once the manifest holds their rows."""
    for path in Path(out).glob("manifest.rank-*-of-*.jsonl"):
        path.unlink(missing_ok=True)
