"""Training checkpoints: one plain dict per file, written atomically, read with weights_only=True.

This module owns the MUNIT networks' life outside the training loop: it builds and seeds
them (`build_networks`), writes a run's state (`save_training`), restores it for a resume
(`restore_training`) and rebuilds the generators for inference (`load_generators`).

The dict carries what inference needs apart from the training config: `model` (the
ModelConfig fields, i.e. the constructor arguments), `image_size` and `domains`. `config`
(the whole resolved TrainConfig) stays for provenance and resume, and is never parsed
strictly on load, so renaming a training-only key cannot make a checkpoint unloadable.
Files written before those keys existed (same FORMAT_VERSION) fall back to `config.model`
and `config.data`, read leniently. The step lives inside the file, never in its name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from xraymunit import __version__, checkpoint_bounds
from xraymunit.config.train import ModelConfig
from xraymunit.errors import XraymunitError
from xraymunit.io.atomic import atomic_path
from xraymunit.models import MunitDiscriminators, MunitGenerators, init_weights
from xraymunit.seeding import stable_seed

if TYPE_CHECKING:
    from xraymunit.config.train import TrainConfig

FORMAT = "xraymunit.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(XraymunitError):
    """A checkpoint is missing, unreadable, or from an incompatible version."""


def versions() -> dict[str, str]:
    return {"xraymunit": str(__version__), "torch": str(torch.__version__), "python": platform.python_version()}


def save(path: str | Path, *, models: dict, optimizers: dict, schedulers: dict, step: int,
         config: dict, extra: dict | None = None, inference: dict | None = None) -> Path:
    """Write a checkpoint atomically (a killed run never leaves a truncated file).

    inference: the top-level keys inference reads (`model`, `image_size`, `domains`)."""
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
        **(inference or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def _cpu_state(module: torch.nn.Module) -> dict:
    module = getattr(module, "module", module)  # unwrap DDP / compiled wrappers
    module = getattr(module, "_orig_mod", module)
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


TORCH_FILE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; the legacy format's pickle
_FILE_KINDS = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"II*\x00", "a TIFF image"),
               (b"MM\x00*", "a TIFF image"), (b"\x1f\x8b", "a gzip file"))


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(8)


def _looks_like(head: bytes) -> str:
    for magic, kind in _FILE_KINDS:
        if head.startswith(magic):
            return f" (it is {kind})"
    return " (it is empty)" if not head else ""


def load(path: str | Path, map_location: str | torch.device = "cpu", *, data: bytes | None = None) -> dict[str, Any]:
    """Read and check a checkpoint; errors say what is wrong with the file.

    data: the file's bytes when the caller already read them (to hash them too): read once."""
    path = Path(path)
    if data is None and not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    head = data[:8] if data is not None else _head(path)
    if not head.startswith(TORCH_FILE_MAGIC):
        raise CheckpointError(f"{path} is not a checkpoint: not a torch file{_looks_like(head)}; give the run "
                              f"folder or RUN/checkpoints/last.pt")
    try:
        source = io.BytesIO(data) if data is not None else path
        state = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # torch's text advises weights_only=False: never, for a file of unknown origin
        raise CheckpointError(f"{path} is not an xraymunit checkpoint: it holds Python objects a checkpoint never "
                              f"contains (refused unread: checkpoints are loaded with weights_only=True)") from None
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt...
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
    check_storage(path, state)
    return state


def check_storage(path: str | Path, state: Any) -> None:
    """Refuse a tensor that claims more values than its file stores (checkpoint_bounds): every
    tensor then costs at most the file's own size, whatever its shape."""
    if problem := checkpoint_bounds.expanded_tensor(state):
        raise CheckpointError(f"{path}: {problem} (damaged, or not written by xraymunit train)")


def check_network_size(source: str | Path, model: ModelConfig, *, discriminators: bool = True) -> None:
    """Refuse model arguments whose networks together pass checkpoint_bounds.MAX_NETWORK_PARAMETERS,
    before a single layer is allocated."""
    if problem := checkpoint_bounds.oversized_networks(model, discriminators=discriminators):
        raise CheckpointError(f"{source}: {problem}")


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
    """The checkpoint file that `spec` names: a file; a run folder (its `checkpoints/last.pt`); or
    `RUN/last`, `RUN/best`. best.pt is used only when asked for: the quality score that selects it
    rewards an untrained generator (near-copies of the input look realistic), so it tends to be the
    first, blurry measurement (issue 21)."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        return path / "checkpoints" / "last.pt"
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


# --------------------------------------------------------------------------- the networks a checkpoint holds

GENERATORS, DISCRIMINATORS = ("gen_a", "gen_b"), ("dis_a", "dis_b")


def build_networks(cfg: "TrainConfig") -> tuple[MunitGenerators, MunitDiscriminators]:
    """Both generators (cfg.model.gen_init) and both discriminators (cfg.model.dis_init), seeded
    by train.seed, so two runs of one config start from the same weights."""
    check_network_size("the training config", cfg.model)
    gens = MunitGenerators(**cfg.model.generator_kwargs())
    dis = MunitDiscriminators(**cfg.model.discriminator_kwargs())
    init_weights(gens, cfg.model.gen_init, seed=stable_seed(cfg.train.seed, "gen"))
    gens.reset_output_heads()  # residual_mask: start as the identity
    init_weights(dis, cfg.model.dis_init, seed=stable_seed(cfg.train.seed, "dis"))
    return gens, dis


def save_training(path: str | Path, gens: MunitGenerators, dis: MunitDiscriminators, *, optimizers: dict,
                  schedulers: dict, step: int, cfg: "TrainConfig", extra: dict | None = None) -> Path:
    """A training run's state: the four networks, optimisers, schedulers, config and what inference reads."""
    from xraymunit.config import to_dict

    models = {name: getattr(gens, name) for name in GENERATORS}
    models.update({name: getattr(dis, name) for name in DISCRIMINATORS})
    inference = {"model": dataclasses.asdict(cfg.model), "image_size": int(cfg.data.load_size),
                 "domains": [cfg.data.domain_a, cfg.data.domain_b]}
    return save(path, models=models, optimizers=optimizers, schedulers=schedulers, step=step,
                config=to_dict(cfg), extra=extra, inference=inference)


def restore_training(state: dict, gens: MunitGenerators, dis: MunitDiscriminators, *, optimizers: dict,
                     schedulers: dict, path: str | Path = "checkpoint") -> int:
    """Load a `save_training` state into freshly built objects; returns its step.

    Every network's weights are checked against the built ones first and every optimiser moment
    against its parameter, so a falsified file is one line, never a mismatch dump mid-resume."""
    nets = {name: getattr(gens, name) for name in GENERATORS}
    nets.update({name: getattr(dis, name) for name in DISCRIMINATORS})
    models = state["models"] if isinstance(state["models"], dict) else {}
    for name, net in nets.items():
        check_weights(path, name, net.state_dict(), models.get(name))
    for name, net in nets.items():
        net.load_state_dict(models[name])
    try:
        for key, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
            _check_moments(opt)
        for key, sched in schedulers.items():
            sched.load_state_dict(state["schedulers"][key])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path}: its optimiser state does not fit its networks "
                              f"({type(exc).__name__}: {_short(first)})") from None
    return int(state["step"])


def _check_moments(opt: torch.optim.Optimizer) -> None:
    """Adam's per-parameter moments must have their parameter's shape (load_state_dict does not look)."""
    for group in opt.param_groups:
        for param in group["params"]:
            for key, value in opt.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    raise ValueError(f"moment {key!r} has shape {tuple(value.shape)}, its parameter "
                                     f"{tuple(param.shape)}")


@dataclasses.dataclass(frozen=True)
class InferenceSpec:
    """What rebuilding the generators needs: their constructor arguments, image side and domains."""

    model: ModelConfig
    image_size: int
    domain_a: str
    domain_b: str


def inference_spec(path: str | Path, state: dict) -> InferenceSpec:
    """The inference keys of a loaded checkpoint, checked (bounds before anything is built).

    Top-level `model`/`image_size`/`domains` when present, else `config.model`/`config.data`;
    only those keys are read, unknown ones ignored, missing ones take today's defaults."""
    from xraymunit import config as config_mod
    from xraymunit.config.train import DataConfig

    saved = state.get("config") if isinstance(state.get("config"), dict) else {}
    data = saved.get("data") if isinstance(saved.get("data"), dict) else {}
    model = state["model"] if "model" in state else saved.get("model")
    if not isinstance(model, dict):
        raise CheckpointError(f"{path}: its config has no 'model' section (damaged, or not written by "
                              f"xraymunit train)")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    try:
        parsed = config_mod.from_dict(ModelConfig, {k: v for k, v in model.items() if k in known}, prefix="model")
    except config_mod.ConfigError as exc:
        raise CheckpointError(f"{path}: its config cannot be read by this version ({exc})") from None
    size = _integral(state["image_size"] if "image_size" in state else data.get("load_size", DataConfig.load_size))
    check_model_args(path, vars(parsed), size)
    domains = state["domains"] if "domains" in state else [data.get("domain_a", DataConfig.domain_a),
                                                           data.get("domain_b", DataConfig.domain_b)]
    if (not isinstance(domains, (list, tuple)) or len(domains) != 2
            or not all(isinstance(d, str) and d for d in domains)):
        raise CheckpointError(f"{path}: its domains are not two labels ({_short(domains)})")
    return InferenceSpec(parsed, size, domains[0], domains[1])


def _integral(value: Any) -> Any:
    """1e3 → 1000 (YAML and JSON write some integers as floats); anything else unchanged."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


@dataclasses.dataclass
class LoadedGenerators:
    """Both generators of a checkpoint, ready for inference (eval mode, no gradients), and what
    synthesis records: `state` is the checkpoint without its weights (config, extra, versions)."""

    gens: MunitGenerators
    model: ModelConfig
    image_size: int
    domain_a: str
    domain_b: str
    step: int
    state: dict
    sha256: str  # of the file's bytes: the provenance of everything rendered from it


def load_generators(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerators:
    """Rebuild both generators from a checkpoint alone (read once; no config file needed).

    Before building anything: arguments in bounds, then every stored tensor's name and shape
    equal to what those arguments build (on the meta device: shapes only, no memory), so a
    damaged or falsified checkpoint is one line, never a runaway build or a mismatch dump."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    state = load(path, data=data)
    spec = inference_spec(path, state)
    check_network_size(path, spec.model, discriminators=False)
    with torch.device("meta"):
        expected = MunitGenerators(**spec.model.generator_kwargs())
    models = state["models"] if isinstance(state["models"], dict) else {}
    for name in GENERATORS:
        check_weights(path, name, getattr(expected, name).state_dict(), models.get(name))
    gens = MunitGenerators(**spec.model.generator_kwargs())
    try:
        for name in GENERATORS:
            getattr(gens, name).load_state_dict(models[name])
    except (KeyError, RuntimeError) as exc:  # not expected after the checks above
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path}: generator weights do not fit its config ({first})") from None
    gens.to(device).eval().requires_grad_(False)
    meta = {k: v for k, v in state.items() if k not in ("models", "optimizers", "schedulers")}
    return LoadedGenerators(gens, spec.model, spec.image_size, spec.domain_a, spec.domain_b, state["step"], meta,
                            hashlib.sha256(data).hexdigest())
