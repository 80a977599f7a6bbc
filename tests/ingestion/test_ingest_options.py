"""Ingest options declared once: CLI flags == IngestOptions fields, one set of defaults for CLI and Python."""

import argparse
import dataclasses
import inspect
from pathlib import Path

import pytest

from xraymunit.cli import build_parser
from xraymunit.ingestion import IngestError, IngestOptions, IngestSettings, ingest, merge
from xraymunit.ingestion.options import FIELDS, build_options
from xraymunit.options import from_args

SHARED = {"help", "verbose", "quiet", "log_file"}  # -h and the logging options every subcommand takes


def ingest_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["ingest"]


def test_every_cli_flag_is_a_field_and_every_field_a_flag():
    dests = {a.dest for a in ingest_parser()._actions} - SHARED
    assert dests == set(FIELDS)
    flags = {s for a in ingest_parser()._actions for s in a.option_strings}
    assert {"--spacing-mm", "--no-progress", "--salt-file", "--min-side", "--max-side"} <= flags


def test_cli_defaults_are_the_option_defaults():
    args = ingest_parser().parse_args(["studies"])
    assert from_args(IngestOptions, args) == IngestOptions(input_dir=Path("studies"))
    args = build_parser().parse_args(["ingest", "studies", "--spacing-mm", "0.25", "--modalities", "cr, dx,MG",
                                      "--percentiles", "1,99", "--no-progress"])
    opts = from_args(IngestOptions, args)
    assert (opts.spacing_mm, opts.modalities, opts.percentiles, opts.progress) == (0.25, ("cr", "dx", "MG"),
                                                                                   (1.0, 99.0), False)
    assert opts.settings().modalities == ("CR", "DX", "MG")


def test_python_api_takes_the_options_and_their_defaults():
    for fn in (ingest, merge):
        params = inspect.signature(fn).parameters
        assert [p for p in params if params[p].kind != inspect.Parameter.VAR_KEYWORD][-1] == "options"
        assert any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())  # no second set of defaults
    assert build_options(None, {}) == IngestOptions()
    opts = build_options(None, {"size": 128, "merge": ["a", "b"]}, input_dir="in", out=None)
    assert (opts.size, opts.merge, opts.input_dir, opts.out) == (128, (Path("a"), Path("b")), "in", Path("cohort"))
    assert build_options(IngestOptions(size=64), {"fit": "crop"}).size == 64


def test_settings_derive_from_the_options_and_keep_old_fingerprints():
    assert IngestOptions().settings() == IngestSettings()
    assert IngestSettings().fingerprint == "09b74c7064b221b0"  # the fingerprint of every cohort made before
    assert IngestSettings(contrast="clahe", size=128).fingerprint == "f28351f0fcaf5845"
    with_spacing = IngestOptions(spacing_mm=0.5).settings()
    assert "spacing_mm" not in IngestSettings().to_json() and with_spacing.to_json()["spacing_mm"] == 0.5
    assert with_spacing.fingerprint != IngestSettings().fingerprint
    assert IngestSettings.from_json(with_spacing.to_json()) == with_spacing
    assert IngestSettings.from_json(IngestSettings().to_json()).spacing_mm is None


def test_unknown_or_bad_options_are_one_clear_error(tmp_path):
    with pytest.raises(IngestError, match="unknown ingest option.*sizes"):
        ingest(tmp_path, tmp_path / "out", sizes=128)
    with pytest.raises(IngestError, match="unknown ingest option.*label\\b"):
        merge([], tmp_path / "out", label="x.csv")
    for bad, message in [({"spacing_mm": 0}, "--spacing-mm"), ({"spacing_mm": -1.0}, "--spacing-mm"),
                         ({"size": "big"}, "invalid ingest option")]:
        with pytest.raises(IngestError, match=message):
            IngestOptions(**bad).settings()
    with pytest.raises(IngestError, match="DICOM_DIR is required"):
        ingest(out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_options_are_frozen_and_documented():
    opts = IngestOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.size = 3  # type: ignore[misc]
    assert all(f.metadata["help"] for f in dataclasses.fields(IngestOptions))
    text = ingest_parser().format_help()
    assert "--spacing-mm MM" in text and "143" in text and "--spacing-mm 0.5" in text
