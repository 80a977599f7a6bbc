"""Training checkpoints: one plain dict per file, written atomically, read with weights_only=True.

The dict carries the resolved config, so a checkpoint alone rebuilds its networks (no
config file needed) and the step lives inside it, never in the file name.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import torch

from xraymunit import __version__
from xraymunit.errors import XraymunitError
from xraymunit.io.atomic import atomic_path

FORMAT = "xraymunit.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(XraymunitError):
    """A checkpoint is missing, unreadable, or from an incompatible version."""


def versions() -> dict[str, str]:
    return {"xraymunit": str(__version__), "torch": str(torch.__version__), "python": platform.python_version()}


def save(path: str | Path, *, models: dict, optimizers: dict, schedulers: dict, step: int,
         config: dict, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (a killed run never leaves a truncated file)."""
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "models": {k: _cpu_state(m) for k, m in models.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "step": int(step),
        "config": config,
        "versions": versions(),
        "extra": extra or {},
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def _cpu_state(module: torch.nn.Module) -> dict:
    module = getattr(module, "module", module)  # unwrap DDP / compiled wrappers
    module = getattr(module, "_orig_mod", module)
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint; errors say what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, not a torch file, pickled code...
        raise CheckpointError(f"{path} is not a readable xraymunit checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an xraymunit checkpoint (no '{FORMAT}' marker)")
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        made_by = state.get("versions", {}).get("xraymunit", "?")
        raise CheckpointError(
            f"{path} has checkpoint format {version} (written by xraymunit {made_by}); "
            f"this xraymunit {__version__} reads format {FORMAT_VERSION}"
        )
    for key in ("models", "step", "config"):
        if key not in state:
            raise CheckpointError(f"{path} is incomplete: no '{key}'")
    if type(state["step"]) is not int or state["step"] < 0:
        raise CheckpointError(f"{path}: its step is not a count of steps ({_short(state['step'])})")
    return state


# A checkpoint's model arguments must lie in these ranges (inclusive) before any network is
# built from them: far beyond any model trained here, small enough that building the networks
# is instant (a falsified `n_res: 1e9` would otherwise build layers until memory runs out).
MODEL_BOUNDS = {
    "dim": (1, 4096), "style_dim": (1, 4096), "n_downsample": (0, 8), "n_res": (0, 64),
    "mlp_dim": (1, 65536), "mlp_layers": (1, 64), "style_downsample": (0, 12),
    "dis_dim": (1, 4096), "dis_layers": (1, 12), "dis_scales": (1, 8),
}
LOAD_SIZE_BOUNDS = (8, 4096)  # data.load_size: the side images are rendered at (ingest caches 16..4096)


def check_model_args(path: str | Path, model: dict, load_size: Any = None) -> None:
    """Refuse model arguments outside MODEL_BOUNDS (or not integers), and a `load_size` outside
    LOAD_SIZE_BOUNDS when given, with one line naming the first."""
    checks = [(f"model.{key}", model.get(key), bounds) for key, bounds in MODEL_BOUNDS.items()]
    if load_size is not None:
        checks.append(("data.load_size", load_size, LOAD_SIZE_BOUNDS))
    for key, value, (low, high) in checks:
        if type(value) is not int or not low <= value <= high:
            raise CheckpointError(f"{path}: its config has {key} = {_short(value)}, outside {low}..{high} "
                                  f"(damaged, or not written by xraymunit train)")


def check_weights(path: str | Path, name: str, expected: dict[str, torch.Tensor], stored: Any) -> None:
    """Refuse stored weights of network `name` whose names or shapes differ from `expected`
    (the state dict its config builds; a meta-device one costs no memory), naming the first
    difference in one line (load_state_dict would list every one of them)."""
    problem = None
    if stored is None:
        raise CheckpointError(f"{path} is incomplete: no {name} weights")
    if not isinstance(stored, dict):
        problem = f"not a table of tensors ({type(stored).__name__})"
    else:
        missing = [k for k in expected if k not in stored]
        unexpected = [k for k in stored if k not in expected]
        if missing:
            problem = f"no {_short(missing[0])}" + (
                f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else "")
        elif unexpected:
            problem = f"unexpected {_short(unexpected[0])}" + (
                f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
        else:
            for key, want in expected.items():
                have = stored[key]
                if not isinstance(have, torch.Tensor):
                    problem = f"{key} is not a tensor"
                elif tuple(have.shape) != tuple(want.shape):
                    problem = f"{key} has shape {tuple(have.shape)}, its config builds {tuple(want.shape)}"
                if problem:
                    break
    if problem:
        raise CheckpointError(f"{path}: its {name} weights do not fit its config: {problem}")


def _short(value: Any, limit: int = 80) -> str:
    """repr() of a value from a file, on one line and cut short (a falsified file is hostile input)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve(spec: str | Path) -> Path:
    """The checkpoint file that `spec` names: a file; a run folder (its `checkpoints/best.pt` when
    quality tracking saved one, else `checkpoints/last.pt`); or `RUN/best`, `RUN/last`."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        best = path / "checkpoints" / "best.pt"
        return best if best.is_file() else path / "checkpoints" / "last.pt"
    if path.name in ("best", "last"):
        named = path.parent / "checkpoints" / f"{path.name}.pt"
        if named.is_file() or (path.parent / "checkpoints").is_dir():
            return named
    return path  # load() says it is missing


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash of a checkpoint, recorded as provenance of everything made from it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
