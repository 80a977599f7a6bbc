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


# --------------------------------------------------------------------------- a checkpoint's networks (issue 13: 6)


@pytest.fixture(scope="module")
def generator_checkpoint(tmp_path_factory):
    """An untrained tiny checkpoint written as `xraymunit train` writes one (no training needed)."""
    from helpers.training import tiny_train_config

    from xraymunit.config import to_dict
    from xraymunit.training.stage import build_networks

    cfg = tiny_train_config()
    gens, dis = build_networks(cfg)
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    checkpoint.save(path, models={"gen_a": gens.gen_a, "gen_b": gens.gen_b, "dis_a": dis.dis_a, "dis_b": dis.dis_b},
                    optimizers={}, schedulers={}, step=1, config=to_dict(cfg))
    return path


def _falsified(src, dst, change):
    state = torch.load(src, weights_only=True)
    change(state)
    torch.save(state, dst)
    return dst


def _load_generators(path):
    from xraymunit.synthesis.stage import load_generators

    return load_generators(path, torch.device("cpu"))


def test_a_valid_checkpoint_rebuilds_its_generators(generator_checkpoint):
    gens, cfg, _ = _load_generators(generator_checkpoint)
    saved = checkpoint.load(generator_checkpoint)["models"]["gen_b"]
    assert all(torch.equal(v, saved[k]) for k, v in gens.gen_b.state_dict().items())


@pytest.mark.parametrize("section, key, value, message", [
    ("model", "n_res", 1e9, "model.n_res = 1000000000, outside 0..64"),  # the config: would build forever
    ("model", "n_res", 10**9, "model.n_res = 1000000000, outside 0..64"),
    ("model", "mlp_layers", 10**6, "model.mlp_layers = 1000000, outside 1..64"),
    ("model", "mlp_dim", 10**8, "model.mlp_dim = 100000000, outside 1..65536"),
    ("model", "dim", 10**7, "model.dim = 10000000, outside 1..4096"),
    ("data", "load_size", 10**6, "data.load_size = 1000000, outside 8..4096"),
])
def test_absurd_model_arguments_are_refused_before_any_network_is_built(generator_checkpoint, tmp_path,
                                                                        monkeypatch, section, key, value, message):
    import time

    from xraymunit.synthesis.stage import load_generators

    built = []
    real = load_generators.__globals__["MunitGenerators"]
    monkeypatch.setitem(load_generators.__globals__, "MunitGenerators",
                        lambda **kw: built.append(kw) or real(**kw))
    bad = _falsified(generator_checkpoint, tmp_path / "bad.pt", lambda s: s["config"][section].update({key: value}))
    t = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        _load_generators(bad)
    assert time.perf_counter() - t < 5  # the checkpoint read; nothing is built (next line)
    assert built == []
    assert message in str(info.value) and str(bad) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("change, message", [
    (lambda s: s["config"]["model"].update(dim=12),  # shapes no longer fit
     "its gen_a weights do not fit its config: content_encoder.net.0.conv.weight has shape (8, 1, 7, 7), "
     "its config builds (12, 1, 7, 7)"),
    (lambda s: s["config"]["model"].update(n_res=2), "its gen_a weights do not fit its config: no '"),
    (lambda s: s.update(config={}), "its config has no 'model' section"),  # missing config: defaults would not fit
    (lambda s: s.update(config=None), "its config has no 'model' section"),
    (lambda s: s["models"].pop("gen_b"), "is incomplete: no gen_b weights"),
    (lambda s: s["models"]["gen_a"].update({"x\nsize mismatch": torch.zeros(1)}),
     r"its gen_a weights do not fit its config: unexpected 'x\nsize mismatch'"),  # escaped: one line
    (lambda s: s["models"]["gen_b"].update({"mlp.net.0.weight": "text"}), "mlp.net.0.weight is not a tensor"),
    (lambda s: s.update(step="9\n" * 100), "its step is not a count of steps ('9\\n9\\n"),
])
def test_weights_that_do_not_fit_the_config_are_one_line(generator_checkpoint, tmp_path, change, message):
    bad = _falsified(generator_checkpoint, tmp_path / "bad.pt", change)
    with pytest.raises(CheckpointError) as info:
        _load_generators(bad)
    text = str(info.value)
    assert message in text and text.startswith(str(bad))
    assert "\n" not in text and "size mismatch for" not in text and len(text) < 400
