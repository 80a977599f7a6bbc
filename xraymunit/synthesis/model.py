"""The two generators rebuilt from a checkpoint alone (its own config; no config file needed)."""

from __future__ import annotations

from pathlib import Path

import torch

from xraymunit import checkpoint, config
from xraymunit.config.train import TrainConfig
from xraymunit.models import MunitGenerators


def load_generators(path: str | Path, device: torch.device) -> tuple[MunitGenerators, TrainConfig, dict]:
    """Rebuild both generators from a checkpoint's own config (no config file needed)."""
    state = checkpoint.load(path)
    try:
        cfg = config.from_dict(TrainConfig, state["config"])
    except config.ConfigError as exc:
        raise checkpoint.CheckpointError(f"{path}: its config cannot be read by this version ({exc})") from None
    # Before building anything: arguments in bounds, then every stored tensor's name and shape
    # equal to what those arguments build (on the meta device: shapes only, no memory), so a
    # damaged or falsified checkpoint is one line, never a runaway build or a mismatch dump.
    if not isinstance(state["config"], dict) or not isinstance(state["config"].get("model"), dict):
        raise checkpoint.CheckpointError(f"{path}: its config has no 'model' section (damaged, or not written by "
                                         f"xraymunit train)")
    checkpoint.check_model_args(path, vars(cfg.model), cfg.data.load_size)
    with torch.device("meta"):
        expected = MunitGenerators(**cfg.model.generator_kwargs())
    models = state["models"] if isinstance(state["models"], dict) else {}
    for name in ("gen_a", "gen_b"):
        checkpoint.check_weights(path, name, getattr(expected, name).state_dict(), models.get(name))
    gens = MunitGenerators(**cfg.model.generator_kwargs())
    try:
        gens.gen_a.load_state_dict(models["gen_a"])
        gens.gen_b.load_state_dict(models["gen_b"])
    except (KeyError, RuntimeError) as exc:  # not expected after the checks above
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise checkpoint.CheckpointError(f"{path}: generator weights do not fit its config ({first})") from None
    gens.to(device).eval().requires_grad_(False)
    return gens, cfg, state
