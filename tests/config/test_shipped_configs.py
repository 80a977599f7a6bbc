"""Every shipped YAML config loads, writes out every key, and explains every key in a comment."""


import pytest
import yaml

from conftest import REPO
from helpers.config_keys import dotted_keys
from xraymunit import config
from xraymunit.config.train import TrainConfig

CONFIGS = REPO / "configs"


def _pipeline_config_class():
    from xraymunit.pipeline.config import PipelineConfig

    return PipelineConfig


@pytest.mark.parametrize("name, cls", [
    ("munit_cxr_256.yaml", TrainConfig),
    ("munit_cxr_128_fast.yaml", TrainConfig),
    ("munit_tiny_cpu.yaml", TrainConfig),
    ("munit_cxr_128_cpu.yaml", TrainConfig),
    ("pipeline_default.yaml", None),
])
def test_config_is_complete_and_commented(name, cls):
    cls = cls or _pipeline_config_class()
    path = CONFIGS / name
    cfg = config.load(cls, path)
    assert dotted_keys(config.to_dict(cfg)) == dotted_keys(yaml.safe_load(path.read_text()))
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            assert "#" in line, f"{name}: no comment on {line!r}"


def test_paper_defaults_in_the_256_config():
    cfg = config.load(TrainConfig, CONFIGS / "munit_cxr_256.yaml")
    m, lw, o = cfg.model, cfg.loss, cfg.optim
    assert (m.dim, m.style_dim, m.mlp_dim, m.n_downsample, m.n_res, m.pad_type) == (64, 8, 256, 2, 4, "reflect")
    assert (m.dis_scales, m.dis_layers, m.style_downsample) == (3, 4, 4)
    assert (lw.gan, lw.image_recon, lw.style_recon, lw.content_recon) == (1, 10, 1, 1)
    assert (o.lr, o.betas, o.weight_decay, o.lr_step, o.lr_gamma) == (1e-4, (0.5, 0.999), 1e-4, 100_000, 0.5)
    assert (cfg.train.batch_size, cfg.data.crop_size, cfg.perceptual.layer) == (1, 256, "relu5_3")


def test_pipeline_synthesis_batch_size_is_auto_or_positive():
    cls = _pipeline_config_class()
    path = CONFIGS / "pipeline_default.yaml"
    assert config.load(cls, path).synthesize.batch_size == "auto"
    assert config.load(cls, path, ["synthesize.batch_size=4"]).synthesize.batch_size == 4
    with pytest.raises(config.ConfigError, match="batch_size"):
        config.load(cls, path, ["synthesize.batch_size=0"])


def test_the_cpu_study_configs_share_one_judge():
    """The CPU recipe's quality tracking and the CPU evaluation ask for the same judge (trained once)."""
    from xraymunit.config.evaluate import EvaluateConfig

    train = config.load(TrainConfig, CONFIGS / "munit_cxr_128_cpu.yaml")
    assert train.quality.judge == config.load(EvaluateConfig, CONFIGS / "evaluate_cpu.yaml").quality.judge
    tiny = config.load(TrainConfig, CONFIGS / "munit_tiny_cpu.yaml")
    assert tiny.quality.judge == config.load(EvaluateConfig, CONFIGS / "evaluate_tiny.yaml").quality.judge
