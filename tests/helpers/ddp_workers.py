"""Worker functions for the CPU DDP tests (importable by spawned processes)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist


def _env(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      OMP_NUM_THREADS="1")  # what torchrun sets: the stages' thread rule honours it
    torch.set_num_threads(1)


def tiny_nets():
    from xraymunit.models import MunitDiscriminators, MunitGenerators

    torch.manual_seed(0)
    return MunitGenerators(dim=8, n_res=1, mlp_dim=16), MunitDiscriminators(dim=8, n_layers=3, n_scales=2)


def sgd_step(gens, dis, batch, wrap=None):
    """One MunitStep with plain SGD (so parameter updates are linear in the gradients)."""
    from xraymunit.losses import LossWeights
    from xraymunit.training.step import MunitStep

    g_run, d_run = (wrap(gens), wrap(dis)) if wrap else (gens, dis)
    step = MunitStep(g_run, d_run, torch.optim.SGD(gens.parameters(), lr=0.01),
                     torch.optim.SGD(dis.parameters(), lr=0.01), LossWeights(cycle=1.0), None,
                     torch.device("cpu"))
    return step(*batch)


def step_worker(rank: int, world: int, port: int, out_dir: str, batch) -> None:
    """Each rank takes its slice of one batch; rank 0 saves its gradients and the gathered params."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    _env(rank, world, port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    gens, dis = tiny_nets()
    n = batch[0].shape[0] // world
    mine = [t[rank * n:(rank + 1) * n] for t in batch]
    sgd_step(gens, dis, mine, wrap=lambda m: DDP(m, broadcast_buffers=False))
    flat = torch.cat([p.detach().flatten() for p in [*gens.parameters(), *dis.parameters()]])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        torch.save({
            "gen_grads": {k: p.grad.clone() for k, p in gens.named_parameters()},
            "dis_grads": {k: p.grad.clone() for k, p in dis.named_parameters()},
            "params_equal_across_ranks": all(torch.equal(gathered[0], g) for g in gathered[1:]),
        }, Path(out_dir) / "rank0.pt")
    dist.barrier()  # leave together: a rank that tears gloo down while its peer still works can abort it
    dist.destroy_process_group()


def train_worker(rank: int, world: int, port: int, cohort: str, out: str, overrides: list[str]) -> None:
    """The real `train()` under a 2-process gloo group (as torchrun would launch it)."""
    from helpers.training import tiny_train_config

    from xraymunit.training import train

    _env(rank, world, port)
    train(cohort, out, tiny_train_config(*overrides), progress=False)
    dist.destroy_process_group()


def stop_worker(rank: int, world: int, port: int, cohort: str, out: str, overrides: list[str]) -> None:
    """`train()` under 2 processes where only rank 1 receives SIGTERM (its stop flag is set from the
    start); each rank writes the Stopped message it raised, if any, to stopped_RANK.txt."""
    import contextlib

    from helpers.training import tiny_train_config

    from xraymunit.stopping import StopFlag, Stopped
    from xraymunit.training import stage

    _env(rank, world, port)
    flag = StopFlag()
    flag.requested = rank == 1
    stage.stop_requests = lambda: contextlib.nullcontext(flag)
    try:
        stage.train(cohort, out, tiny_train_config(*overrides), progress=False)
    except Stopped as exc:
        (Path(out) / f"stopped_{rank}.txt").write_text(str(exc))
    dist.destroy_process_group()
