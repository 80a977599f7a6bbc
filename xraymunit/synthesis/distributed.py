"""Several processes (torchrun): each renders every world-th source; rank 0 merges the manifest.

Styles are a pure function of (seed, source, j), so a source's images are the same bytes in
whichever process renders it. Each rank writes its manifest rows to a part file
(`manifest.rank-R-of-W.jsonl`); after a barrier rank 0 merges the parts in the
single-process order (sources by image_key, then style index) and removes them. Rank 0 holds
the output folder's lock for the launch; the others write only while it does.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from xraymunit.io import atomic
from xraymunit.runtime import resolve_device


@dataclass
class Group:
    rank: int = 0
    world: int = 1
    owned: bool = False  # this call initialised the process group (and destroys it)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def leader(self) -> bool:
        return self.rank == 0


def join(device_name: str) -> tuple[Group, torch.device]:
    """This process's place in a torchrun launch (WORLD_SIZE > 1) and its device.

    The group is gloo on a CPU, nccl on CUDA; each process takes the GPU of its LOCAL_RANK.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    device = resolve_device(device_name, local_rank=local_rank if world > 1 else None)
    if world <= 1:
        return Group(), device
    owned = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owned = True
    return Group(dist.get_rank(), dist.get_world_size(), owned), device


def leave(group: Group) -> None:
    import torch.distributed as dist

    if group.owned and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(group: Group, value):
    """Rank 0's `value` on every rank (a picklable object)."""
    if not group.distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(group: Group, flag: bool) -> bool:
    """True on every rank when `flag` is True on any (a collective: every rank must call it)."""
    if not group.distributed:
        return flag
    import torch.distributed as dist

    flags = [None] * group.world
    dist.all_gather_object(flags, bool(flag))
    return any(flags)


def total(group: Group, counts: tuple[int, ...]) -> tuple[int, ...]:
    """Element-wise sums of `counts` over every rank (a collective)."""
    if not group.distributed:
        return counts
    import torch.distributed as dist

    gathered = [None] * group.world
    dist.all_gather_object(gathered, tuple(counts))
    return tuple(sum(c[i] for c in gathered) for i in range(len(counts)))


def barrier(group: Group) -> None:
    if group.distributed:
        import torch.distributed as dist

        dist.barrier()


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
