"""Where this process sits in a (possibly single-process) distributed run, and agreeing across ranks.

The same code runs on one device or under `torchrun` (DDP): decisions that end the loop
(time limit, SIGTERM) are all-reduced so that every rank stops at the same step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as torch_dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank, world, local)


def is_main_process() -> bool:
    """Rank 0 (or a single process): the only one that writes the run folder, so the only one that locks it."""
    return int(os.environ.get("WORLD_SIZE", "1")) <= 1 or int(os.environ.get("RANK", "0")) == 0


def any_rank(flag: bool, dist: Dist, device: torch.device) -> bool:
    """True when `flag` is true on any rank (a host sync under DDP; the flag itself on one process)."""
    if not dist.enabled:
        return bool(flag)
    import torch.distributed as torch_dist

    value = torch.tensor(float(flag), device=device)
    torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX)
    return bool(value)


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as torch_dist

        torch_dist.barrier()
