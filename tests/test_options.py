"""options.py: an option declared once (dataclass field) gives the CLI flag, its default and its help."""

import argparse
from dataclasses import dataclass

import pytest

from xraymunit.options import add_options, cli_fields, from_args, help_of, option


@dataclass(frozen=True)
class Demo:
    input_dir: str | None = option(None, "folder to read", positional=True, nargs="?", metavar="DIR")
    size: int = option(256, "image side", parse=int)
    fit: str = option("pad", "how to square", choices=("pad", "crop"))
    progress: bool | None = option(None, "no progress bars", flag="--no-progress")
    merge: bool = option(False, "merge shards")
    percent: float = option(0.5, "a 50% share", parse=float)
    internal: int = option(3, "Python only", cli=False)


def _parser():
    parser = argparse.ArgumentParser(prog="demo")
    add_options(parser, Demo)
    return parser


def test_defaults_are_the_dataclass_defaults():
    assert from_args(Demo, _parser().parse_args([])) == Demo()


def test_flags_parse_into_the_fields():
    got = from_args(Demo, _parser().parse_args(["in", "--size", "64", "--fit", "crop", "--no-progress", "--merge"]),
                    internal=7)
    assert got == Demo(input_dir="in", size=64, fit="crop", progress=False, merge=True, internal=7)


def test_help_shows_the_declared_help_and_default_once():
    text = _parser().format_help()
    assert "image side (default: 256)" in text and "a 50% share" in text
    assert "--internal" not in text
    assert [f.name for f in cli_fields(Demo)] == ["input_dir", "size", "fit", "progress", "merge", "percent"]
    assert help_of(Demo, "internal") == "Python only"


def test_choices_are_enforced():
    with pytest.raises(SystemExit):
        _parser().parse_args(["--fit", "stretch"])


def test_a_true_default_needs_a_no_flag():
    @dataclass
    class Bad:
        colour: bool = option(True, "colour output")

    with pytest.raises(TypeError, match="--no-"):
        add_options(argparse.ArgumentParser(), Bad)


def test_an_integer_default_of_one_is_shown():  # 1 == True must not hide it
    @dataclass
    class Workers:
        workers: int = option(1, "processes", parse=int)

    parser = argparse.ArgumentParser()
    add_options(parser, Workers)
    assert "processes (default: 1)" in parser.format_help()


def test_required_and_repeatable_flags():
    @dataclass
    class Run:
        out: str | None = option(None, "run folder", required=True)
        overrides: tuple = option((), "KEY=VALUE override (repeatable)", append=True, metavar="KEY=VALUE",
                                  flag="--set")

    parser = argparse.ArgumentParser()
    add_options(parser, Run)
    with pytest.raises(SystemExit):
        parser.parse_args([])
    assert from_args(Run, parser.parse_args(["--out", "o"])) == Run(out="o", overrides=())
    got = from_args(Run, parser.parse_args(["--out", "o", "--set", "a=1", "--set", "b=2"]))
    assert got.overrides == ["a=1", "b=2"]
