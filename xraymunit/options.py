"""Options declared once: a dataclass field carries its default, its help and its CLI spelling.

A stage's options class (e.g. `ingestion.options.IngestOptions`) is the one place an option
exists. The CLI builds its arguments from the fields (`add_options`) and turns the parsed
namespace back into the class (`from_args`); the Python API and the pipeline config take the
same class, so a default or a help text can never disagree between them.
tests/cli/test_options_once.py checks that every CLI flag is a field of its stage's class.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, TypeVar

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, flag: str | None = None, positional: bool = False,
           choices: tuple | None = None, parse: Callable[[str], Any] | None = None, metavar: str | None = None,
           nargs: str | int | None = None, cli: bool = True, default_factory: Callable[[], Any] | None = None,
           show_default: bool = True, required: bool = False, append: bool = False) -> Any:
    """A dataclass field with its CLI spelling.

    flag: the option string (default `--field-name`); a bool defaulting to True needs an explicit
    `--no-...` flag, and a `--no-...` flag on a None default (automatic) stores False. parse: argparse `type` (a text → value function). cli=False: Python/config
    only. show_default: append "(default: X)" to the help text. required: the flag must be given
    (the field's default serves Python callers; a field without a default is always required). append: repeatable flag collecting a list.
    """
    meta = dict(help=help, flag=flag, positional=positional, choices=choices, parse=parse, metavar=metavar,
                nargs=nargs, cli=cli, show_default=show_default, required=required, append=append)
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def cli_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", False)]


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _default(field: dataclasses.Field) -> Any:
    if field.default is not _MISSING:
        return field.default
    if field.default_factory is not _MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                skip: tuple[str, ...] = (), absent_unless_given: bool = False) -> None:
    """Add one argument per CLI field of `cls` (in declaration order).

    absent_unless_given: a flag not given leaves no attribute on the namespace, so another
    source (a config file) keeps its value; the help still shows the declared default.
    """
    for field in cli_fields(cls):
        if field.name in skip:
            continue
        meta, default = field.metadata, _default(field)
        text = meta["help"]
        empty = default is None or isinstance(default, bool) or (isinstance(default, (str, list, tuple)) and not default)
        if meta["show_default"] and not empty and "default" not in text:
            text = f"{text} (default: {_shown(default)})"
        kwargs: dict[str, Any] = {"help": text.replace("%", "%%")}
        if meta["positional"]:
            parser.add_argument(field.name, metavar=meta["metavar"], nargs=meta["nargs"],
                                type=meta["parse"], default=default, **kwargs)
            continue
        if default is None and (meta["flag"] or "").startswith("--no-"):  # None = automatic
            kwargs.update(action="store_const", const=False)
        elif isinstance(default, bool) and meta["parse"] is None:
            if default and not (meta["flag"] or "").startswith("--no-"):
                raise TypeError(f"{cls.__name__}.{field.name}: a bool defaulting to True needs a --no-... flag")
            kwargs["action"] = "store_false" if default else "store_true"
        else:
            for key, arg in (("choices", "choices"), ("parse", "type"), ("metavar", "metavar"), ("nargs", "nargs")):
                if meta[key] is not None:
                    kwargs[arg] = meta[key]
            if meta["append"]:
                kwargs["action"], default = "append", None  # argparse appends to a given default list
        if meta["required"] or (field.default is _MISSING and field.default_factory is _MISSING):  # type: ignore[misc]
            kwargs["required"] = True  # no default: the flag must be given
        parser.add_argument(flag_of(field), dest=field.name,
                            default=argparse.SUPPRESS if absent_unless_given else default, **kwargs)


def from_args(cls: type[T], args: argparse.Namespace, **extra: Any) -> T:
    """The options object for a parsed namespace: CLI fields from `args`, the rest from `extra`/defaults."""
    values = {f.name: getattr(args, f.name) for f in cli_fields(cls) if hasattr(args, f.name)}
    for f in cli_fields(cls):  # a repeatable flag never given: the field's own default
        if f.metadata.get("append") and values.get(f.name) is None:
            values.pop(f.name, None)
    values.update(extra)
    return cls(**values)


def help_of(cls: type, name: str) -> str:
    """The declared help text of one field (for config-file docs and error messages)."""
    for field in dataclasses.fields(cls):
        if field.name == name:
            return field.metadata.get("help", "")
    raise KeyError(name)
