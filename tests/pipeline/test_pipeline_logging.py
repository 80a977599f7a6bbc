"""The pipeline's log handlers live as long as its run: a second run in the same process (a notebook, a
test) logs into its own OUT/pipeline.log only, and no handler is left writing to a stream that closed."""

from __future__ import annotations

import logging

import pytest

import xraymunit
from xraymunit.errors import XraymunitError
from xraymunit.pipeline import run
from xraymunit.pipeline.config import PipelineConfig


class StandInStop(XraymunitError):
    pass


def test_handlers_are_removed_when_a_run_ends_and_each_run_logs_into_its_own_file(tmp_path, monkeypatch):
    def stop(*args, **kwargs):  # the stand-in ingest: the run logs its start, then stops at once
        logging.getLogger("xraymunit.pipeline").info("stand-in ingest into %s", args[1])
        raise StandInStop("stand-in stop")

    monkeypatch.setattr(xraymunit, "ingest", stop)
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    for name in ("first", "second"):
        with pytest.raises(StandInStop):
            run(PipelineConfig(out=str(tmp_path / name)), progress=False)
        assert root.handlers == before and root.level == level
    first, second = ((tmp_path / n / "pipeline.log").read_text() for n in ("first", "second"))
    assert "stand-in ingest" in first and "stand-in ingest" in second
    assert str(tmp_path / "second") not in first  # the old code kept the first run's file handler
