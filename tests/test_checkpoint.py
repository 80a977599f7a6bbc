import pytest
import torch

from xraymunit import checkpoint
from xraymunit.checkpoint import CheckpointError


def _save(path, step=3):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    return checkpoint.save(path, models={"m": model}, optimizers={"o": opt}, schedulers={"s": sched},
                           step=step, config={"a": 1})


def test_roundtrip_with_weights_only(tmp_path):
    path = _save(tmp_path / "c.pt", step=7)
    state = checkpoint.load(path)
    assert state["step"] == 7 and state["config"] == {"a": 1}
    assert set(state["versions"]) >= {"xraymunit", "torch"}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("content, match", [
    (b"", "not a readable"),
    (b"garbage" * 100, "not a readable"),
])
def test_broken_files_give_clear_errors(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(path)


def test_truncated_checkpoint(tmp_path):
    path = _save(tmp_path / "c.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        checkpoint.load(path)


def test_foreign_and_future_checkpoints(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an xraymunit checkpoint"):
        checkpoint.load(tmp_path / "foreign.pt")
    state = checkpoint.load(_save(tmp_path / "c.pt"))
    state["format_version"] = 99
    torch.save(state, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format 99"):
        checkpoint.load(tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint.load(tmp_path / "missing.pt")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("boom",))

    torch.save({"format": checkpoint.FORMAT, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        checkpoint.load(tmp_path / "evil.pt")  # weights_only=True never runs code
