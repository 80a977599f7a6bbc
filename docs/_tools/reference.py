"""The generated reference pages: every config key and every CLI flag, read from the code.

Nothing here is copied by hand, so the pages cannot drift from the package:
- config keys come from the config dataclasses (names, types, defaults: what an omitted key means)
  and their explanations from the comments of the shipped configs/*.yaml (the one place a key is
  explained), else from the field's declared `option(help=...)`;
- CLI flags come from the argparse parsers `xraymunit` itself builds.
The mkdocs hook (hooks.py) puts them into docs/reference/*.md; tests/docs/test_docs_site.py checks
that no key or flag is left without its explanation.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"

_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w]*):(?P<value>.*?)(?:\s+#\s?(?P<comment>.*))?$")
_COMMENT_LINE = re.compile(r"^(?P<indent>\s+)#\s?(?P<comment>.*)$")


def yaml_comments(path: Path) -> dict[str, str]:
    """dotted key -> its comment in a commented YAML file (a comment on the key's line, continued by
    comment-only indented lines below it). The file's header comments are not any key's."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        more = _COMMENT_LINE.match(line)
        if more and last is not None:
            comments[last] = (comments.get(last, "") + " " + more["comment"].strip()).strip()
            continue
        match = _KEY_LINE.match(line)
        if not match:
            last = None
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        last = ".".join(key for _, key in stack)
        if match["comment"]:
            comments[last] = match["comment"].strip()
    return comments


def shipped_comments(pattern: str, first: str) -> dict[str, str]:
    """The comments of every shipped config matching `pattern`; `first` (the most complete) wins."""
    paths = sorted(CONFIGS.glob(pattern), key=lambda p: (p.name != first, p.name))
    merged: dict[str, str] = {}
    for path in reversed(paths):
        merged.update(yaml_comments(path))
    return merged


@dataclasses.dataclass
class Key:
    dotted: str
    type: str
    default: Any
    text: str
    section: bool  # a nested dataclass (its keys follow)


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def _explain(dotted: str, field: dataclasses.Field, comments: dict[str, str]) -> str:
    """The key's comment; else the comment of the same key in another section (e.g. the judge's
    `quality.judge.classifier.arch` is explained at `classifier.arch`); else the field's help."""
    if dotted in comments:
        return comments[dotted]
    parts = dotted.split(".")
    for start in range(1, len(parts)):
        suffix = ".".join(parts[start:])
        if suffix in comments and "." in suffix:
            return f"{comments[suffix]} (as `{suffix}`)"
    return field.metadata.get("help", "")


def config_keys(cls: type, comments: dict[str, str], prefix: str = "") -> Iterator[Key]:
    """Every key of a config dataclass, depth first in declaration order."""
    for field in dataclasses.fields(cls):
        dotted = prefix + field.name
        default = _default(field)
        nested = dataclasses.is_dataclass(default)
        yield Key(dotted, str(field.type), None if nested else default, _explain(dotted, field, comments), nested)
        if nested:
            yield from config_keys(type(default), comments, dotted + ".")


def _cell(text: str) -> str:
    return text.replace("|", "&#124;").replace("\n", " ")


def _value(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _type(annotation: str) -> str:
    """A field's annotation as a YAML writer reads it: `Optional[list[str]]` -> `list[str] or null`."""
    text = annotation.replace("typing.", "")
    optional = re.fullmatch(r"Optional\[(.*)\]", text)
    if optional:
        text = optional.group(1) + " | None"
    return text.replace(" | ", " or ").replace("None", "null")


def config_table(keys: list[Key]) -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key in keys:
        if key.section:
            rows.append(f"| **`{key.dotted}`** | section | | {_cell(key.text)} |")
        else:
            rows.append(f"| `{key.dotted}` | {_cell(_type(key.type))} | {_cell(_value(key.default))} | {_cell(key.text)} |")
    return "\n".join(rows)


def config_sections() -> list[tuple[str, str, type, dict[str, str]]]:
    """(title, shipped files, dataclass, comments) of each config kind."""
    from xraymunit.config.evaluate import EvaluateConfig
    from xraymunit.config.train import TrainConfig
    from xraymunit.pipeline.config import PipelineConfig

    return [
        ("Pipeline (`xraymunit pipeline --config`)", "pipeline_*.yaml", PipelineConfig,
         shipped_comments("pipeline_*.yaml", "pipeline_default.yaml")),
        ("Training (`xraymunit train --config`)", "munit_*.yaml", TrainConfig,
         shipped_comments("munit_*.yaml", "munit_cxr_256.yaml")),
        ("Evaluation (`xraymunit evaluate --config`)", "evaluate*.yaml", EvaluateConfig,
         shipped_comments("evaluate*.yaml", "evaluate.yaml")),
    ]


def config_reference() -> str:
    parts = []
    for title, pattern, cls, comments in config_sections():
        shipped = ", ".join(f"`{p.stem}`" for p in sorted(CONFIGS.glob(pattern)))
        parts += [f"## {title}", "", f"Shipped configs: {shipped}. Defaults are the dataclass "
                  f"`{cls.__module__}.{cls.__name__}`'s: what a key left out of a config file means.", "",
                  config_table(list(config_keys(cls, comments))), ""]
    return "\n".join(parts)


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    names = ", ".join(f"`{s}`" for s in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or (("{" + ",".join(map(str, action.choices)) + "}") if action.choices
                                 else action.dest.upper())
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    return f"{names} `{metavar}`"


def cli_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from xraymunit.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [("xraymunit", parser), *((f"xraymunit {name}", sub) for name, sub in subparsers.choices.items())]


def cli_rows(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str]]:
    """(flags, expanded help) of every argument the parser shows (help=SUPPRESS ones are hidden)."""
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        yield _flags(action), formatter._expand_help(action) if action.help else ""


def cli_reference() -> str:
    parts = []
    for title, parser in cli_parsers():
        parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
        description = (parser.description or "").strip()
        described = ["```text", description, "```"] if "\n" in description else [_cell(description)]
        parts += [f"## `{title}`", "", *described, "", "```text", parser.format_usage().strip(), "```", "",
                  "| argument | meaning |", "|---|---|"]
        parts += [f"| {_cell(flags)} | {_cell(text)} |" for flags, text in cli_rows(parser)]
        if parser.epilog:
            parts += ["", _cell(parser.epilog)]
        parts.append("")
    return "\n".join(parts)
