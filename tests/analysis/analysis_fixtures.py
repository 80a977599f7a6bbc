"""Fixtures and helpers shared by the tests of xraymunit.analysis (imported by name, not a conftest,
so `from conftest import REPO` elsewhere keeps meaning tests/conftest.py)."""

from __future__ import annotations

import io

import pytest
from matplotlib.figure import Figure

from fixtures.ingest_fixtures import built, ingested  # noqa: F401 (fixtures problem_cohort needs)
from xraymunit import analysis as xa
from xraymunit.io.cohort import Cohort


@pytest.fixture(scope="module")
def run(default_run):
    return xa.open_run(default_run)


@pytest.fixture(scope="module")
def problem_cohort(ingested):  # noqa: F811
    """A real ingest of the fixtures' mixed tree: a few good images plus one file per failure reason."""
    return Cohort.open(ingested[0])


def images_shown(fig: Figure) -> int:
    return sum(len(ax.images) for ax in fig.axes)


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
