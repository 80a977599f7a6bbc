"""A very small MUNIT config for tests: the tiny CPU config, shrunk further for speed."""

from __future__ import annotations

from pathlib import Path

from xraymunit import config
from xraymunit.config.train import TrainConfig

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "munit_tiny_cpu.yaml"

FAST = [
    "model.dim=8", "model.mlp_dim=16", "model.n_res=1", "model.dis_dim=8", "perceptual.layer=relu1_2",
    "data.load_size=64", "data.crop_size=64", "data.num_workers=0",
    "train.batch_size=2", "train.log_every=1", "train.image_every=1000", "train.checkpoint_every=1000",
    "train.n_sample_images=2", "train.n_sample_styles=2",
]


def tiny_train_config(*overrides: str) -> TrainConfig:
    return config.load(TrainConfig, TINY, [*FAST, *overrides])
