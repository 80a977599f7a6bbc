"""One process group for every stage launched by `torchrun`: who this process is, and agreeing.

Training (DDP), synthesis (a share of the sources per process) and evaluation (a share of the
classifier runs) join the same way: WORLD_SIZE > 1 means torchrun started us; the group is nccl
on CUDA, gloo on a CPU; each process takes the GPU of its LOCAL_RANK. Without torchrun every
function here is a no-op on a group of one, so the same stage code runs in a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from xraymunit.runtime import resolve_device


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    owned: bool = False  # join() initialised the process group, so leave() destroys it

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the only process that writes shared files (reports, manifests, checkpoints)."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()


def is_main_process() -> bool:
    """Rank 0 or a single process, read from torchrun's environment (before any group exists):
    the process that takes the output folder's lock."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1 or int(os.environ.get("RANK", "0") or 0) == 0


def join(device_name: str | None = "auto"):
    """This process's group and device (`resolve_device`, the LOCAL_RANK GPU under torchrun)."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    device = resolve_device(device_name, local_rank=local_rank if world > 1 else None)
    if world <= 1:
        return Group(), device
    import torch.distributed as dist

    owned = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owned = True
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world) or world)
    return Group(dist.get_rank(), dist.get_world_size(), local_rank, local_world, owned), device


def leave(group: Group) -> None:
    if group.owned:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def broadcast(group: Group, value):
    """Rank 0's `value` (any picklable object) on every rank."""
    if not group.enabled:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(group: Group, flag: bool) -> bool:
    """True on every rank when `flag` is true on any (a collective: every rank must call it)."""
    if not group.enabled:
        return bool(flag)
    import torch.distributed as dist

    flags = [None] * group.world
    dist.all_gather_object(flags, bool(flag))
    return any(flags)


def total(group: Group, counts: tuple[int, ...]) -> tuple[int, ...]:
    """Element-wise sums of `counts` over every rank (a collective)."""
    if not group.enabled:
        return tuple(counts)
    import torch.distributed as dist

    gathered = [None] * group.world
    dist.all_gather_object(gathered, tuple(counts))
    return tuple(sum(c[i] for c in gathered) for i in range(len(counts)))
