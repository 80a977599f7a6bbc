import shutil
from pathlib import Path

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
    (b"", r"not a torch file \(it is empty\)"),
    (b"garbage" * 100, "not a torch file; give the run folder"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, r"not a torch file \(it is a PNG image\)"),  # a sample grid given by mistake
    (b"PK\x03\x04" + b"\0" * 100, "not a readable"),  # a zip, but not torch's
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
    with pytest.raises(CheckpointError, match="holds Python objects") as caught:
        checkpoint.load(tmp_path / "evil.pt")  # weights_only=True never runs code
    assert "weights_only set to False" not in str(caught.value)  # torch's advice is never passed on


# --------------------------------------------------------------------------- a checkpoint's networks (issue 13: 6)

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "checkpoint_v1_tiny.pt"  # written by commit 7cea06b (README there)


@pytest.fixture(scope="module", params=["v1", "current"])
def generator_checkpoint(request, tmp_path_factory):
    """An untrained tiny checkpoint: "current" as `xraymunit train` writes one now (the inference keys
    apart), "v1" as it wrote one before (the networks' arguments only inside `config`)."""
    from helpers.training import tiny_train_config

    from xraymunit.config import to_dict

    cfg = tiny_train_config()
    gens, dis = checkpoint.build_networks(cfg)
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    if request.param == "current":
        checkpoint.save_training(path, gens, dis, optimizers={}, schedulers={}, step=1, cfg=cfg)
    else:
        checkpoint.save(path, models={"gen_a": gens.gen_a, "gen_b": gens.gen_b, "dis_a": dis.dis_a,
                                      "dis_b": dis.dis_b}, optimizers={}, schedulers={}, step=1, config=to_dict(cfg))
    return path


def _falsified(src, dst, change):
    state = torch.load(src, weights_only=True)
    change(state)
    torch.save(state, dst)
    return dst


def _model(state):
    """The model arguments inference reads: top-level in current files, inside `config` in version-1 ones."""
    return state["model"] if "model" in state else state["config"]["model"]


def _set_size(state, value):
    if "image_size" in state:
        state["image_size"] = value
    else:
        state["config"]["data"]["load_size"] = value


def _load_generators(path):
    return checkpoint.load_generators(path, torch.device("cpu"))


def test_a_valid_checkpoint_rebuilds_its_generators(generator_checkpoint):
    loaded = _load_generators(generator_checkpoint)
    assert loaded.sha256 == checkpoint.file_sha256(generator_checkpoint)  # hashed from the one read
    saved = checkpoint.load(generator_checkpoint)["models"]["gen_b"]
    assert all(torch.equal(v, saved[k]) for k, v in loaded.gens.gen_b.state_dict().items())
    assert (loaded.model.dim, loaded.image_size, loaded.domain_a, loaded.domain_b, loaded.step) == (
        8, 64, "normal", "abnormal", 1)
    assert "models" not in loaded.state and loaded.state["config"]["model"]["dim"] == 8
    assert not loaded.gens.training and not any(p.requires_grad for p in loaded.gens.parameters())


@pytest.mark.parametrize("key, value, message", [
    ("n_res", 1e9, "model.n_res = 1000000000, outside 0..64"),  # the config: would build forever
    ("n_res", 10**9, "model.n_res = 1000000000, outside 0..64"),
    ("mlp_layers", 10**6, "model.mlp_layers = 1000000, outside 1..64"),
    ("mlp_dim", 10**8, "model.mlp_dim = 100000000, outside 1..65536"),
    ("dim", 10**7, "model.dim = 10000000, outside 1..4096"),
    ("load_size", 10**6, "data.load_size = 1000000, outside 8..4096"),
])
def test_absurd_model_arguments_are_refused_before_any_network_is_built(generator_checkpoint, tmp_path,
                                                                        monkeypatch, key, value, message):
    built = []
    real = checkpoint.MunitGenerators
    monkeypatch.setattr(checkpoint, "MunitGenerators", lambda **kw: built.append(kw) or real(**kw))
    change = (lambda s: _set_size(s, value)) if key == "load_size" else (lambda s: _model(s).update({key: value}))
    bad = _falsified(generator_checkpoint, tmp_path / "bad.pt", change)
    with pytest.raises(CheckpointError) as info:
        _load_generators(bad)
    assert built == []  # refused from the arguments alone: no network built (asserted, not timed)
    assert message in str(info.value) and str(bad) in str(info.value) and "\n" not in str(info.value)


def _no_model(state):
    state.pop("model", None)
    state.update(config={})


@pytest.mark.parametrize("change, message", [
    (lambda s: _model(s).update(dim=12),  # shapes no longer fit
     "its gen_a weights do not fit its config: content_encoder.net.0.conv.weight has shape (8, 1, 7, 7), "
     "its config builds (12, 1, 7, 7)"),
    (lambda s: _model(s).update(n_res=2), "its gen_a weights do not fit its config: no '"),
    (_no_model, "its config has no 'model' section"),  # no model arguments: defaults would not fit
    (lambda s: (s.pop("model", None), s.update(config=None)), "its config has no 'model' section"),
    (lambda s: _model(s).update(pad_type="mirror"), "its config cannot be read by this version"),
    (lambda s: s.update(domains=["normal"]), "its domains are not two labels (['normal'])"),
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


# --------------------------------------------------------------------------- old files, renamed keys (issue 14)


def test_the_version_1_fixture_loads_for_inference():
    loaded = _load_generators(FIXTURE_V1)
    state = torch.load(FIXTURE_V1, weights_only=True)
    assert "model" not in state and state["format_version"] == 1  # really a file of the old layout
    assert (loaded.model.dim, loaded.model.style_dim, loaded.image_size, loaded.step) == (4, 4, 32, 2)
    assert (loaded.domain_a, loaded.domain_b) == ("normal", "abnormal")
    for name in ("gen_a", "gen_b"):
        got = getattr(loaded.gens, name).state_dict()
        assert all(torch.equal(got[k], v) for k, v in state["models"][name].items())
    out = loaded.gens.gen_a.decode(*loaded.gens.gen_a.encode(torch.zeros(1, 1, 32, 32)))
    assert out.shape == (1, 1, 32, 32) and torch.isfinite(out).all()


def _renamed_training_keys(state):
    cfg = state["config"]
    cfg["loss"]["adversarial"] = cfg["loss"].pop("gan")  # a training-only key renamed
    cfg["train"]["a_future_option"] = True  # and one added
    del cfg["optim"]  # and a whole section gone
    cfg["model"]["a_future_model_knob"] = 3  # unknown model keys are ignored too


def _current_checkpoint(path, *overrides):
    from helpers.training import tiny_train_config

    cfg = tiny_train_config(*overrides)
    gens, dis = checkpoint.build_networks(cfg)
    return checkpoint.save_training(path, gens, dis, optimizers={}, schedulers={}, step=5, cfg=cfg,
                                    extra={"note": 1}), cfg, gens


@pytest.mark.parametrize("source", ["fixture", "current"])
def test_renamed_or_unknown_training_keys_do_not_stop_inference(source, tmp_path):
    from xraymunit import config
    from xraymunit.config.train import TrainConfig

    src = FIXTURE_V1 if source == "fixture" else _current_checkpoint(tmp_path / "c.pt")[0]
    bad = _falsified(src, tmp_path / "renamed.pt", _renamed_training_keys)
    with pytest.raises(config.ConfigError):  # the strict parser (training's) refuses the config...
        config.from_dict(TrainConfig, torch.load(bad, weights_only=True)["config"])
    loaded = _load_generators(bad)  # ...inference does not need it
    assert loaded.model.dim == (4 if source == "fixture" else 8)


def test_current_checkpoints_carry_the_inference_keys_and_build_seeded(tmp_path):
    path, cfg, gens = _current_checkpoint(tmp_path / "c.pt", "data.domain_b=effusion", "data.load_size=96")
    again, _ = checkpoint.build_networks(cfg)
    assert all(torch.equal(a, b) for a, b in zip(gens.state_dict().values(), again.state_dict().values()))
    state = checkpoint.load(path)
    assert state["format_version"] == 1  # older readers still read it (they ignore the new keys)
    assert state["model"]["dim"] == cfg.model.dim and state["image_size"] == 96
    assert state["domains"] == ["normal", "effusion"] and state["config"]["data"]["load_size"] == 96
    assert state["extra"] == {"note": 1} and set(state["models"]) == {"gen_a", "gen_b", "dis_a", "dis_b"}


def test_training_resumes_from_the_version_1_fixture(tmp_path):
    from helpers.evaluate_data import write_cohort

    from xraymunit import config
    from xraymunit.config.train import TrainConfig
    from xraymunit.training import train

    state = torch.load(FIXTURE_V1, weights_only=True)
    cfg = config.from_dict(TrainConfig, state["config"])  # the run's own config (still valid today)
    cfg.train.steps = 3
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(FIXTURE_V1, run / "checkpoints" / "last.pt")
    cohort = write_cohort(tmp_path / "cohort", n_patients=8, size=32)
    result = train(cohort, run, cfg, resume=True, progress=False)
    assert result.steps == 3
    resumed = checkpoint.load(run / "checkpoints" / "last.pt")
    assert resumed["step"] == 3 and resumed["model"]["dim"] == 4 and resumed["image_size"] == 32
    assert resumed["extra"]["train_seconds"] >= state["extra"]["train_seconds"]
