"""Every option is declared once: each subcommand's flags are exactly the CLI fields of its options
class(es), and every subcommand's --help carries an example and the exit codes."""

from __future__ import annotations

import argparse
import importlib

import pytest

from xraymunit.cli import SUBCOMMANDS, build_parser
from xraymunit.options import cli_fields

SHARED = {"help", "verbose", "quiet", "log_file"}  # -h and the logging options of every subcommand
OPTIONS = {
    "ingest": ["xraymunit.ingestion.options:IngestOptions"],
    "train": ["xraymunit.training.options:TrainRunOptions"],
    "synthesize": ["xraymunit.synthesis.options:SynthesizeOptions"],
    "evaluate": ["xraymunit.config.evaluate:EvaluateInputs", "xraymunit.config.evaluate:EvaluateConfig"],
    "pipeline": ["xraymunit.pipeline:PipelineOptions"],
}


def _class(path: str) -> type:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_every_subcommand_is_covered():
    assert set(OPTIONS) == set(SUBCOMMANDS)


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_flags_are_exactly_the_declared_fields(command):
    parser = _subparser(command)
    dests = [a.dest for a in parser._actions if a.dest not in SHARED]
    declared = [f.name for path in OPTIONS[command] for f in cli_fields(_class(path))]
    assert len(dests) == len(set(dests)), f"{command}: a flag is added twice"
    assert sorted(dests) == sorted(set(declared)), f"{command}: flags and options fields differ"
    by_dest = {a.dest: a for a in parser._actions}
    for path in OPTIONS[command]:  # the help text shown is the one declared with the field
        for field in cli_fields(_class(path)):
            assert field.metadata["help"].split("(")[0].strip() in (by_dest[field.name].help or "").replace("%%", "%")


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_help_has_an_example_and_the_exit_codes(command):
    text = " ".join(_subparser(command).format_help().split())
    epilog = text.split("--log-file FILE", 2)[-1]  # after the option list
    assert "example" in epilog.lower() and f"xraymunit {command}" in epilog
    assert "exit status: 0 ok" in epilog and "130 interrupted" in epilog and "143 stopped by SIGTERM" in epilog
