"""DistributedDataParallel on CPU: 2 gloo processes, as `torchrun --nproc_per_node 2` would run them."""

import csv
import socket

import pytest
import torch
import torch.multiprocessing as mp
from helpers import ddp_workers
from helpers.evaluate_data import write_cohort

from xraymunit import checkpoint

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gradients_are_synchronised_and_equal_the_full_batch(tmp_path):
    g = torch.Generator().manual_seed(1)
    batch = [torch.rand(4, 1, 64, 64, generator=g) * 2 - 1, torch.rand(4, 1, 64, 64, generator=g) * 2 - 1,
             torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)]
    mp.spawn(ddp_workers.step_worker, args=(2, _free_port(), str(tmp_path), batch), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "rank0.pt", weights_only=True)
    assert ddp["params_equal_across_ranks"]

    # one process on the whole batch: the losses are per-sample means, so DDP's gradient
    # average over two half-batches must equal it
    gens, dis = ddp_workers.tiny_nets()
    ddp_workers.sgd_step(gens, dis, batch)
    for name, p in gens.named_parameters():
        assert torch.allclose(ddp["gen_grads"][name], p.grad, rtol=1e-4, atol=1e-6), name
    for name, p in dis.named_parameters():
        assert torch.allclose(ddp["dis_grads"][name], p.grad, rtol=1e-4, atol=1e-6), name


def test_train_under_two_processes_has_one_writer(tmp_path):
    cohort = write_cohort(tmp_path / "cohort", n_patients=12, size=64)
    out = tmp_path / "run"
    mp.spawn(ddp_workers.train_worker,
             args=(2, _free_port(), str(cohort), str(out), ["train.steps=2", "train.checkpoint_every=1"]),
             nprocs=2, join=True)
    with open(out / "metrics.csv", newline="") as fh:
        steps = [row["step"] for row in csv.DictReader(fh)]
    assert steps == ["1", "2"]  # rank 0 alone logs
    assert checkpoint.load(out / "checkpoints" / "last.pt")["step"] == 2
    assert len(list((out / "tensorboard").glob("events.*"))) == 1


def test_a_sigterm_on_one_rank_stops_every_rank_at_the_same_step_after_one_save(tmp_path):
    from xraymunit.training.loop import STOP_SYNC_EVERY

    cohort = write_cohort(tmp_path / "cohort", n_patients=12, size=64)
    out = tmp_path / "run"
    mp.spawn(ddp_workers.stop_worker,
             args=(2, _free_port(), str(cohort), str(out), ["train.steps=20", "train.checkpoint_every=100"]),
             nprocs=2, join=True)
    messages = [(out / f"stopped_{rank}.txt").read_text() for rank in (0, 1)]  # both ranks raised Stopped
    assert all(m.startswith(f"SIGTERM at step {STOP_SYNC_EVERY} of 20") for m in messages)
    assert checkpoint.load(out / "checkpoints" / "last.pt")["step"] == STOP_SYNC_EVERY
    with open(out / "metrics.csv", newline="") as fh:
        assert [int(row["step"]) for row in csv.DictReader(fh)][-1] == STOP_SYNC_EVERY
