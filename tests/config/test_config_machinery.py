from dataclasses import dataclass, field
from typing import Literal

import pytest

from xraymunit import config
from xraymunit.config import ConfigError


@dataclass
class Inner:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    mode: Literal["a", "b"] = "a"

    def validate(self):
        config.require(self.lr > 0, "lr", "must be > 0")


@dataclass
class Outer:
    name: str = "x"
    steps: int = 10
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_nested_values():
    cfg = config.from_dict(Outer, {"steps": 5, "inner": {"lr": 0.1, "betas": [0.1, 0.2]}})
    assert cfg.steps == 5 and cfg.inner.lr == 0.1 and cfg.inner.betas == (0.1, 0.2)
    assert config.to_dict(cfg)["inner"]["betas"] == [0.1, 0.2]


@pytest.mark.parametrize(
    "data, key",
    [
        ({"stepz": 1}, "stepz"),
        ({"steps": "many"}, "steps"),
        ({"inner": {"mode": "c"}}, "inner.mode"),
        ({"inner": {"lr": -1.0}}, "inner.lr"),
        ({"inner": {"betas": [1.0]}}, "inner.betas"),
    ],
)
def test_errors_name_the_key(data, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        config.from_dict(Outer, data)


def test_unknown_key_suggests_close_match():
    with pytest.raises(ConfigError, match="did you mean 'inner.lr'"):
        config.from_dict(Outer, {"inner": {"lrr": 1.0}})


def test_overrides_and_roundtrip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 3\ninner:\n  lr: 0.5\n")
    cfg = config.load(Outer, path, ["inner.mode=b", "name=run1", "steps=7"])
    assert (cfg.steps, cfg.inner.mode, cfg.inner.lr, cfg.name) == (7, "b", 0.5, "run1")
    config.save(cfg, tmp_path / "resolved.yaml")
    assert config.load(Outer, tmp_path / "resolved.yaml") == cfg


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key=value"):
        config.apply_overrides({}, ["novalue"])


def test_a_config_of_another_command_is_named_as_such(tmp_path):
    """`xraymunit train --config evaluate_tiny` once said "unknown config key 'classifier'"."""
    from xraymunit.config.evaluate import EvaluateConfig
    from xraymunit.config.train import TrainConfig
    from xraymunit.pipeline.config import PipelineConfig

    with pytest.raises(config.ConfigError, match=r"evaluate_tiny is an evaluate config, not a training config: "
                                                 r"it goes to `xraymunit evaluate --config`"):
        config.load(TrainConfig, "evaluate_tiny")
    with pytest.raises(config.ConfigError, match="is a pipeline config, not an evaluate config"):
        config.load(EvaluateConfig, "pipeline_default")
    with pytest.raises(config.ConfigError, match="is a training config, not a pipeline config"):
        config.load(PipelineConfig, "munit_tiny_cpu")
    (tmp_path / "typo.yaml").write_text("modle: {dim: 8}\n")
    with pytest.raises(config.ConfigError, match=r"unknown config key 'modle' \(did you mean 'model'\?\)"):
        config.load(TrainConfig, tmp_path / "typo.yaml")  # a typo is still a typo
    with pytest.raises(config.ConfigError, match=r"shipped training configs: munit_cxr_128_cpu, .*munit_tiny_cpu\)"):
        config.load(TrainConfig, "munit_tinyy")
    try:
        config.load(TrainConfig, "munit_tinyy")
    except config.ConfigError as exc:
        assert "evaluate" not in str(exc) and "pipeline_default" not in str(exc)
