"""distributed.py: the one torchrun process group of every stage (no-op in a single process)."""

import os
import socket

import torch
import torch.multiprocessing as mp

from xraymunit import distributed
from xraymunit.distributed import Group


def test_a_single_process_is_a_group_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    group, device = distributed.join("cpu")
    assert group == Group() and group.main and not group.enabled and device == torch.device("cpu")
    assert distributed.broadcast(group, {"a": 1}) == {"a": 1}
    assert distributed.any_rank(group, True) is True and distributed.any_rank(group, False) is False
    assert distributed.total(group, (2, 3)) == (2, 3)
    group.barrier()
    distributed.leave(group)
    assert distributed.is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert not distributed.is_main_process()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, results) -> None:
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    group, device = distributed.join("cpu")
    try:
        results.put((rank, group.rank, group.world, group.local_world, group.owned, str(device),
                     distributed.broadcast(group, f"from {rank}"), distributed.any_rank(group, rank == 1),
                     distributed.any_rank(group, False), distributed.total(group, (rank, 1))))
        group.barrier()
    finally:
        distributed.leave(group)


def test_two_gloo_processes_agree():
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, 2, port, results)) for r in range(2)]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for rank, grank, world, local_world, owned, device, message, any_true, any_false, sums in got:
        assert (grank, world, local_world, owned, device) == (rank, 2, 2, True, "cpu")
        assert message == "from 0" and any_true is True and any_false is False and sums == (1, 2)
