"""Typed configs: YAML → dataclasses, with `key=value` overrides and validation.

Every stage's options are a tree of dataclasses (see the submodules). Loading checks
every key and type *before* any work starts, so a typo fails in a second with a
message naming the key, not an hour into training.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from xraymunit.errors import XraymunitError
from xraymunit.io import atomic

T = TypeVar("T")


class ConfigError(XraymunitError, ValueError):
    """A config value is missing, unknown or invalid; the message names the key."""


def from_dict(cls: type[T], data: dict | None, prefix: str = "") -> T:
    """Build dataclass `cls` from a plain dict, checking keys and types recursively."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean '{_join(prefix, close[0])}'?)" if close else ""
        raise ConfigError(f"unknown config key '{_join(prefix, key)}'{hint}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, _join(prefix, name))
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{prefix or 'config'}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as exc:
            raise ConfigError(_prefix_message(prefix, str(exc))) from None
    return obj


def _prefix_message(prefix: str, message: str) -> str:
    # validate() names keys relative to its own section; make them absolute.
    if prefix and message.startswith("'"):
        return "'" + prefix + "." + message[1:]
    return message


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"'{key}': invalid value {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if isinstance(value, bool) and "on" in choices and "off" in choices:
            value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as a boolean
        if value not in choices:
            raise ConfigError(f"'{key}' must be one of {list(choices)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"'{key}' must have {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"'{key}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"'{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{key}' must be a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"'{key}' must be a path, got {value!r}")
        return Path(value)
    return value


def to_dict(cfg: Any) -> dict:
    """Plain, YAML/JSON-safe dict of a config (paths as strings, tuples as lists)."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    return plain(cfg)


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """Apply `a.b.c=value` strings to a nested dict; values are parsed as YAML scalars."""
    data = dict(data or {})
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. train.steps=100)")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() != "" else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def shipped_dir() -> Path:
    """The configs shipped with xraymunit: xraymunit/configs/ in an installed wheel (copied there at
    build time), else the repository's configs/ (a source checkout or an editable install)."""
    package = Path(__file__).resolve().parents[1]
    inside = package / "configs"
    return inside if inside.is_dir() else package.parent / "configs"


def shipped_names() -> list[str]:
    """Names of the shipped configs (file stems), sorted."""
    folder = shipped_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def find(value: str | Path, cls: type | None = None) -> Path:
    """A config file: `value` itself when it exists, else a shipped config of that name.

    A bare name (`munit_tiny_cpu`, with or without .yaml) or a `configs/NAME.yaml` spelled from
    the repository root resolves from the shipped configs, so commands work from any folder and
    after a plain `pip install`. Anything else raises ConfigError listing the available names (of
    `cls`'s kind when given: a training command lists training configs).
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    if len(path.parts) == 1 or (len(path.parts) == 2 and path.parts[0] == "configs"):
        name = path.name[:-5] if path.name.endswith(".yaml") else path.name
        shipped = shipped_dir() / f"{name}.yaml"
        if shipped.is_file():
            return shipped
    wanted = _kind_name(cls)
    names = [n for n in shipped_names() if wanted is None or kind_of(read_yaml(shipped_dir() / f"{n}.yaml")) == wanted]
    what = f"shipped {wanted} configs" if wanted else "shipped config names"
    raise ConfigError(f"config file not found: {value} (not a file; {what}: {', '.join(names) or 'none found'})")


def load(cls: type[T], path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> T:
    """Load `cls` from an optional YAML file (a path, or a shipped config's name) plus `key=value` overrides."""
    data = read_yaml(find(path, cls)) if path is not None else {}
    _refuse_other_kind(cls, data, path)
    return from_dict(cls, apply_overrides(data, overrides))


_COMMAND_OF_KIND = {"training": "xraymunit train", "evaluate": "xraymunit evaluate", "pipeline": "xraymunit pipeline"}


def _config_kinds() -> dict[str, type]:
    from xraymunit.config.evaluate import EvaluateConfig
    from xraymunit.config.train import TrainConfig
    from xraymunit.pipeline.config import PipelineConfig

    return {"training": TrainConfig, "evaluate": EvaluateConfig, "pipeline": PipelineConfig}


def _kind_name(cls: type | None) -> str | None:
    return next((kind for kind, c in _config_kinds().items() if c is cls), None) if cls is not None else None


def kind_of(data: Any) -> str | None:
    """Which command's config a YAML mapping is: the one config class whose fields hold all its top-level
    keys (None when none or several do)."""
    if not isinstance(data, dict) or not data:
        return None
    fits = [kind for kind, c in _config_kinds().items() if set(data) <= {f.name for f in dataclasses.fields(c)}]
    return fits[0] if len(fits) == 1 else None


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _refuse_other_kind(cls: type, data: Any, path) -> None:
    """A pipeline or evaluate YAML given to train (and so on): say so, instead of its first unknown key."""
    wanted = _kind_name(cls)
    if wanted is None or not isinstance(data, dict) or set(data) <= {f.name for f in dataclasses.fields(cls)}:
        return
    kind = kind_of(data)
    if kind is not None and kind != wanted:
        raise ConfigError(f"{path} is {_a(kind)} {kind} config, not {_a(wanted)} {wanted} config: "
                          f"it goes to `{_COMMAND_OF_KIND[kind]} --config`")


def save(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically) next to the outputs it produced."""
    atomic.write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def require(condition: bool, key: str, message: str) -> None:
    """Raise ConfigError naming `key` unless `condition` holds (for validate() methods)."""
    if not condition:
        raise ConfigError(f"'{key}' {message}")


def resolve(cls: type[T], given: Any = None, overrides: typing.Iterable[str] = ()) -> T:
    """The config a stage function runs with: an object of `cls`, a shipped config's name or a YAML path
    (None: the defaults), with "key=value" overrides applied as `--set` applies them."""
    overrides = list(overrides)
    if given is None or isinstance(given, (str, os.PathLike)):
        return load(cls, given, overrides)
    if not isinstance(given, cls):
        raise ConfigError(f"expected a {cls.__name__}, a shipped config's name or a YAML path, "
                          f"got {type(given).__name__}")
    return from_dict(cls, apply_overrides(to_dict(given), overrides)) if overrides else given
