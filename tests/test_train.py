import csv
import importlib

import pytest
import torch
from helpers.evaluate_data import write_cohort
from helpers.training import tiny_train_config

from xraymunit import checkpoint
from xraymunit.losses import LossWeights
from xraymunit.models import AdaINGenerator, MunitDiscriminators, MunitGenerators, build_vgg16
from xraymunit.losses import PerceptualLoss
from xraymunit.training import TrainingError, train
from xraymunit.training.step import MunitStep

step_module = importlib.import_module("xraymunit.training.step")  # where MunitStep looks up its loss terms


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cohort"), n_patients=16, size=64)


def _metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _tiny_step(cycle=1.0, perceptual=1.0):
    torch.manual_seed(0)
    gens = MunitGenerators(dim=8, n_res=1, mlp_dim=16)
    dis = MunitDiscriminators(dim=8, n_layers=3, n_scales=2)
    gen_opt = torch.optim.Adam(gens.parameters(), 1e-3)
    dis_opt = torch.optim.Adam(dis.parameters(), 1e-3)
    p = PerceptualLoss(build_vgg16("random", "relu1_2")) if perceptual else None
    step = MunitStep(gens, dis, gen_opt, dis_opt, LossWeights(cycle=cycle, perceptual=perceptual), p,
                     torch.device("cpu"))
    return step, gens, dis, gen_opt, dis_opt


def _grads(module):
    return {n: (p.grad.clone() if p.grad is not None else None) for n, p in module.named_parameters()}


def _same(g1, g2):
    return all((a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
               for a, b in zip(g1.values(), g2.values()))


def test_generator_update_leaves_discriminator_gradients_untouched_and_vice_versa():
    step, gens, dis, gen_opt, dis_opt = _tiny_step()
    seen = {}
    dis_opt.register_step_pre_hook(lambda *_: seen.update(d_at_d=_grads(dis), g_at_d=_grads(gens)))
    gen_opt.register_step_pre_hook(lambda *_: seen.update(d_at_g=_grads(dis), g_at_g=_grads(gens)))
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    s = torch.randn(2, 8)
    step(x, x.flip(-1), s, -s)
    g_prev = seen["g_at_g"]
    assert any(g is not None and g.abs().sum() > 0 for g in seen["d_at_d"].values())
    assert _same(seen["d_at_d"], seen["d_at_g"])  # the generator step did not touch D's gradients
    step(x, x.flip(-1), s, -s)
    assert _same(g_prev, seen["g_at_d"])  # the discriminator step did not touch G's gradients
    assert not _same(g_prev, seen["g_at_g"])
    assert all(p.requires_grad for p in dis.parameters())  # D is unfrozen again after the step


def test_discriminator_update_reads_the_real_samples_not_the_generator_inputs():
    step, gens, dis, *_ = _tiny_step(cycle=0.0, perceptual=0.0)
    seen = []
    dis.register_forward_pre_hook(lambda _m, args: seen.append([a.detach().clone() for a in args]))
    x_a, x_b = torch.rand(2, 1, 64, 64) * 2 - 1, torch.rand(2, 1, 64, 64) * 2 - 1
    real_a, real_b = x_a.flip(-2), x_b.flip(-2)  # e.g. without the photometric augmentation
    s = torch.randn(2, 8)
    step(x_a, x_b, s, -s, real_a, real_b)
    d_step = seen[0]  # the discriminator update: reals, then detached translations
    assert torch.equal(d_step[0][:2], real_a) and torch.equal(d_step[1][:2], real_b)
    step(x_a, x_b, s, -s)  # without reals: the generator inputs are the reals
    assert torch.equal(seen[2][0][:2], x_a) and torch.equal(seen[2][1][:2], x_b)


def test_step_returns_every_weighted_term():
    step, *_ = _tiny_step(cycle=1.0, perceptual=1.0)
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    losses = step(x, x, torch.randn(1, 8), torch.randn(1, 8))
    for name in ("image_recon", "style_recon", "content_recon", "gan", "cycle", "perceptual"):
        assert f"gen/{name}_a" in losses and f"gen/{name}_b" in losses
    assert {"dis/a", "dis/b", "dis/total", "gen/total"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())


def test_overfit_tiny_autoencoder_reconstructs_four_images():
    """A tiny generator learns to reconstruct 4 images: the L1 loss falls at least 4×."""
    torch.manual_seed(0)
    from helpers.evaluate_data import anatomy
    import numpy as np

    rng = np.random.default_rng(0)
    x = torch.stack([torch.from_numpy(anatomy(rng, 32)[0]) for _ in range(4)])[:, None] * 2 - 1
    gen = AdaINGenerator(dim=16, n_res=1, mlp_dim=32)
    opt = torch.optim.Adam(gen.parameters(), 2e-3)
    first = None
    for _ in range(150):
        loss = torch.mean(torch.abs(gen(x) - x))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 4, (first, loss.item())


def test_training_run_writes_all_outputs_and_learns(cohort, tmp_path):
    cfg = tiny_train_config("train.steps=20", "train.image_every=10", "train.checkpoint_every=10",
                            "train.keep_every=10", "train.log_every=5")
    result = train(cohort, tmp_path / "run", cfg, progress=False)
    run = tmp_path / "run"
    assert result.steps == 20 and result.checkpoint == run / "checkpoints" / "last.pt"
    for path in ("config.yaml", "metrics.csv", "checkpoints/last.pt", "checkpoints/step_0000010.pt",
                 "checkpoints/step_0000020.pt", "samples/a2b_0000010.png", "samples/b2a_0000020.png"):
        assert (run / path).is_file(), path
    assert any((run / "tensorboard").glob("events.out.tfevents.*"))
    rows = _metrics(run)
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    first, last = rows[0], rows[-1]
    # the within-domain reconstruction is learnt quickly even by this tiny model
    assert float(last["gen/image_recon_a"]) < float(first["gen/image_recon_a"])
    state = checkpoint.load(run / "checkpoints" / "last.pt")
    assert state["step"] == 20 and state["config"]["model"]["dim"] == 8
    assert checkpoint.load(run / "checkpoints" / "step_0000010.pt")["step"] == 10


def test_resume_continues_exactly(cohort, tmp_path):
    cfg6 = tiny_train_config("train.steps=6", "train.checkpoint_every=3")
    train(cohort, tmp_path / "straight", cfg6, progress=False)
    cfg3 = tiny_train_config("train.steps=3", "train.checkpoint_every=3")
    train(cohort, tmp_path / "resumed", cfg3, progress=False)
    run = tmp_path / "resumed"
    stale = [run / "checkpoints" / ".last.pt.k1ll3d_0.tmp.pt", run / ".metrics.csv.abcdefgh.tmp.csv"]  # a kill -9's
    kept = run / "checkpoints" / "notes.tmp.pt"  # not a name atomic writes make
    for path in stale + [kept]:
        path.write_bytes(b"half")
    train(cohort, run, cfg6, resume=True, progress=False)
    assert not any(p.exists() for p in stale) and kept.exists()  # issue 13: 12
    a, b = _metrics(tmp_path / "straight"), _metrics(tmp_path / "resumed")
    assert [r["step"] for r in b] == [str(i) for i in range(1, 7)]  # no step logged twice
    for ra, rb in zip(a, b):
        for key in ra:
            if key.startswith(("gen/", "dis/")):
                assert ra[key] == rb[key], (ra["step"], key)  # bit-identical losses
    sa = checkpoint.load(tmp_path / "straight" / "checkpoints" / "last.pt")["models"]
    sb = checkpoint.load(tmp_path / "resumed" / "checkpoints" / "last.pt")["models"]
    for name in sa:
        for key in sa[name]:
            assert torch.equal(sa[name][key], sb[name][key]), (name, key)


def test_refuses_to_overwrite_and_checks_resume_config(cohort, tmp_path):
    cfg = tiny_train_config("train.steps=1")
    train(cohort, tmp_path / "run", cfg, progress=False)
    with pytest.raises(TrainingError, match="--resume"):
        train(cohort, tmp_path / "run", cfg, progress=False)
    with pytest.raises(TrainingError, match="model.dim"):
        train(cohort, tmp_path / "run", tiny_train_config("train.steps=2", "model.dim=4"), resume=True,
              progress=False)
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(cohort, tmp_path / "other", cfg, resume=True, progress=False)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(cohort, tmp_path, monkeypatch):
    real_terms = step_module.generator_terms
    calls = {"n": 0}

    def diverging_terms(*args, **kwargs):  # the model "diverges" at step 5
        calls["n"] += 1
        terms = real_terms(*args, **kwargs)
        if calls["n"] >= 5:
            terms["image_recon_a"] = terms["image_recon_a"] * float("nan")
        return terms

    monkeypatch.setattr(step_module, "generator_terms", diverging_terms)
    cfg = tiny_train_config("train.steps=10", "train.checkpoint_every=2")
    with pytest.raises(TrainingError, match=r"non-finite loss.*step 5.*image_recon_a.*step 4"):
        train(cohort, tmp_path / "run", cfg, progress=False)
    state = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["models"]["gen_a"].values())


def test_missing_domain_is_a_clear_error(cohort, tmp_path):
    with pytest.raises(TrainingError, match="no 'pneumothorax' images"):
        train(cohort, tmp_path / "run", tiny_train_config("data.domain_b=pneumothorax"), progress=False)


def test_perceptual_on_without_weights_fails_before_training(cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    torch.hub.set_dir(str(tmp_path / "empty-hub" / "hub"))
    from xraymunit.models.vgg import VGGWeightsError

    with pytest.raises(VGGWeightsError, match="perceptual.backbone=random"):
        train(cohort, tmp_path / "run", tiny_train_config("perceptual.backbone=imagenet", "loss.perceptual=1"),
              progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
