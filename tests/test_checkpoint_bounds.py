"""What a checkpoint may describe (issue 23: 8): tensors backed by their own bytes, networks of
bounded size — refused before anything is built. Every hostile file is built here."""

from pathlib import Path

import pytest
import torch
from helpers.training import tiny_train_config

from xraymunit import checkpoint, checkpoint_bounds, config
from xraymunit.checkpoint import CheckpointError
from xraymunit.config.train import ModelConfig, TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny checkpoint as `xraymunit train` writes one, with its optimisers' state after one step."""
    cfg = tiny_train_config()
    gens, dis = checkpoint.build_networks(cfg)
    optimizers, schedulers = _optimisers(gens, dis)
    for opt in optimizers.values():  # moments exist only after a step
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = torch.zeros_like(p)
        opt.step()
    path = tmp_path_factory.mktemp("bounds") / "last.pt"
    checkpoint.save_training(path, gens, dis, optimizers=optimizers, schedulers=schedulers, step=1, cfg=cfg)
    return path, cfg


def _optimisers(gens, dis):
    optimizers = {"gen": torch.optim.Adam(gens.parameters()), "dis": torch.optim.Adam(dis.parameters())}
    return optimizers, {k: torch.optim.lr_scheduler.StepLR(o, 10) for k, o in optimizers.items()}


def _falsified(src, dst, change):
    state = torch.load(src, weights_only=True)
    change(state)
    torch.save(state, dst)
    return dst


def _expand_all(state, net="gen_a"):
    """Every weight of `net` as one repeated zero (stride 0): the file shrinks, the shapes still fit."""
    weights = state["models"][net]
    for key, value in weights.items():
        weights[key] = torch.zeros(1, dtype=value.dtype).expand(value.shape)


def test_expanded_weights_are_refused_before_any_network_is_built(tiny_run, tmp_path, monkeypatch):
    built = []
    real = checkpoint.MunitGenerators
    monkeypatch.setattr(checkpoint, "MunitGenerators", lambda **kw: built.append(kw) or real(**kw))
    bad = _falsified(tiny_run[0], tmp_path / "bad.pt", _expand_all)
    stored = torch.load(bad, weights_only=True)["models"]["gen_a"]["content_encoder.net.0.conv.weight"]
    assert stored.shape == (8, 1, 7, 7) and stored.untyped_storage().nbytes() == 4  # really one element
    with pytest.raises(CheckpointError) as info:
        checkpoint.load_generators(bad)
    text = str(info.value)
    assert text.startswith(str(bad)) and "an expanded or overlapping view" in text and "\n" not in text
    assert "models.gen_a.content_encoder.net.0.conv.weight" in text and "stores only 4 bytes" in text
    assert built == []


def test_a_small_file_describing_a_large_network_is_refused(tmp_path):
    """The issue's attack at a size this test can afford on old code: in-range arguments (dim 64,
    mlp_dim 8192) whose weights, stored as one element each, pass the shape check."""
    model = ModelConfig(dim=64, mlp_dim=8192)
    with torch.device("meta"):
        from xraymunit.models import MunitGenerators

        meta = MunitGenerators(**model.generator_kwargs())
    weights = {name: {k: torch.zeros(1).expand(v.shape) for k, v in getattr(meta, name).state_dict().items()}
               for name in ("gen_a", "gen_b")}
    import dataclasses

    state = {"format": checkpoint.FORMAT, "format_version": checkpoint.FORMAT_VERSION, "models": weights,
             "step": 1, "config": {}, "model": dataclasses.asdict(model), "image_size": 64,
             "domains": ["normal", "abnormal"]}
    path = tmp_path / "huge.pt"
    torch.save(state, path)
    assert path.stat().st_size < 200_000 and checkpoint_bounds.network_parameters(model, discriminators=False) > 2e7
    with pytest.raises(CheckpointError, match="an expanded or overlapping view"):
        checkpoint.load_generators(path)


@pytest.mark.parametrize("where", ["models", "optimizers"])
def test_expanded_tensors_anywhere_are_refused_on_load(tiny_run, tmp_path, where):
    def change(state):
        if where == "models":
            state["models"]["dis_b"]["extra"] = torch.ones(1).expand(10**9)  # 4 bytes describing 4 GB
        else:
            moments = next(iter(state["optimizers"]["gen"]["state"].values()))
            moments["exp_avg"] = torch.zeros(1).expand(moments["exp_avg"].shape)
    bad = _falsified(tiny_run[0], tmp_path / "bad.pt", change)
    with pytest.raises(CheckpointError, match="expanded or overlapping view") as info:
        checkpoint.load(bad)  # what every reader goes through: resume, records, inference
    assert where in str(info.value)


def test_strided_but_complete_tensors_still_load(tiny_run, tmp_path):
    """Channels-last weights (a CUDA run's) are non-contiguous yet store every value once."""
    def channels_last(state):
        weights = state["models"]["gen_a"]
        for key, value in weights.items():
            if value.dim() == 4:
                weights[key] = value.contiguous(memory_format=torch.channels_last)
    path = _falsified(tiny_run[0], tmp_path / "cl.pt", channels_last)
    assert not all(v.is_contiguous() for v in torch.load(path, weights_only=True)["models"]["gen_a"].values())
    loaded = checkpoint.load_generators(path)
    saved = torch.load(tiny_run[0], weights_only=True)["models"]["gen_a"]
    assert all(torch.equal(v, saved[k]) for k, v in loaded.gens.gen_a.state_dict().items())


def test_networks_beyond_the_parameter_limit_are_refused_before_building(tiny_run, monkeypatch):
    path, cfg = tiny_run
    count = checkpoint_bounds.network_parameters(cfg.model, discriminators=False)
    built = []
    real = checkpoint.MunitGenerators
    monkeypatch.setattr(checkpoint, "MunitGenerators", lambda **kw: built.append(kw) or real(**kw))
    monkeypatch.setattr(checkpoint_bounds, "MAX_NETWORK_PARAMETERS", count - 1)
    with pytest.raises(CheckpointError, match=f"build generators of {count:,} parameters") as info:
        checkpoint.load_generators(path)
    assert str(info.value).startswith(str(path)) and built == []
    with pytest.raises(CheckpointError, match="the training config: its model arguments build generators and"):
        checkpoint.build_networks(cfg)  # a training run (and a resume) is bounded the same way
    assert built == []


@pytest.mark.parametrize("name", ["munit_cxr_256.yaml", "munit_cxr_128_fast.yaml", "munit_cxr_128_cpu.yaml",
                                  "munit_tiny_cpu.yaml"])
def test_the_shipped_configs_fit_the_limit_with_room(name):
    model = config.load(TrainConfig, CONFIGS / name).model
    assert checkpoint_bounds.network_parameters(model) * 4 < checkpoint_bounds.MAX_NETWORK_PARAMETERS


def test_the_default_model_is_counted_exactly():
    from xraymunit.models import MunitDiscriminators, MunitGenerators

    model = ModelConfig()
    nets = [MunitGenerators(**model.generator_kwargs()), MunitDiscriminators(**model.discriminator_kwargs())]
    real = sum(t.numel() for n in nets for t in [*n.parameters(), *n.buffers()])
    assert checkpoint_bounds.network_parameters(model) == real


# --------------------------------------------------------------------------- resume: weights and moments checked


@pytest.mark.parametrize("change, message", [
    (lambda s: s["models"]["dis_a"].update({k: torch.zeros(3) for k in list(s["models"]["dis_a"])[:1]}),
     "its dis_a weights do not fit its config: "),
    (lambda s: s["models"].pop("dis_b"), "is incomplete: no dis_b weights"),
    (lambda s: next(iter(s["optimizers"]["dis"]["state"].values())).update(exp_avg_sq=torch.zeros(5)),
     "its optimiser state does not fit its networks (ValueError: \"moment 'exp_avg_sq' has shape (5,)"),
    (lambda s: s["optimizers"].pop("gen"), "its optimiser state does not fit its networks (KeyError"),
])
def test_a_falsified_resume_state_is_one_line(tiny_run, tmp_path, change, message):
    path, cfg = tiny_run
    bad = _falsified(path, tmp_path / "bad.pt", change)
    state = checkpoint.load(bad)
    gens, dis = checkpoint.build_networks(cfg)
    optimizers, schedulers = _optimisers(gens, dis)
    with pytest.raises(CheckpointError) as info:
        checkpoint.restore_training(state, gens, dis, optimizers=optimizers, schedulers=schedulers, path=bad)
    text = str(info.value)
    assert text.startswith(str(bad)) and message in text and "\n" not in text and len(text) < 400


def test_a_genuine_resume_state_restores(tiny_run):
    path, cfg = tiny_run
    gens, dis = checkpoint.build_networks(cfg)
    optimizers, schedulers = _optimisers(gens, dis)
    assert checkpoint.restore_training(checkpoint.load(path), gens, dis, optimizers=optimizers,
                                       schedulers=schedulers, path=path) == 1
    assert len(optimizers["gen"].state) == len(list(gens.parameters()))
