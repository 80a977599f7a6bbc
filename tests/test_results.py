"""Published results (results/<name>/): metrics.json parses, summary.md is exactly what it renders to,
and every number the hand-written interpretation quotes is one the metrics hold."""

import json
import math
import re
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "pipelines" / "cxr_study"))
import publish  # noqa: E402

RESULTS = sorted((REPO / "results").glob("*/metrics.json"))


def _numbers(obj, out: set) -> set:
    """Every number of a metrics tree, as summary.md may print it (1-3 decimals, rounded ints, ±)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k != "interpretation":
                _numbers(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _numbers(v, out)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and math.isfinite(obj):
        for d in (0, 1, 2, 3):
            for v in (obj, obj / 60, obj * 100):
                text = f"{v:.{d}f}"
                out.update({text, text.lstrip("-"), text.replace("-", "−")})
    return out


@pytest.mark.parametrize("path", RESULTS, ids=[p.parent.name for p in RESULTS])
def test_summary_is_rendered_from_metrics(path):
    metrics = json.loads(path.read_text())
    assert metrics["format"] == "xraymunit.results"
    assert (path.parent / "summary.md").read_text() == publish.render(metrics)


@pytest.mark.parametrize("path", RESULTS, ids=[p.parent.name for p in RESULTS])
def test_interpretation_quotes_only_measured_numbers(path):
    metrics = json.loads(path.read_text())
    known = _numbers(metrics, set())
    quoted = re.findall(r"(?<![\w.])[−-]?\d+\.\d+", metrics.get("interpretation", ""))
    unknown = [q for q in quoted if q not in known]
    assert not unknown, f"the interpretation quotes numbers metrics.json does not hold: {unknown}"


def test_results_folders_are_small():
    for folder in (REPO / "results").glob("*/"):
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert size < 5_000_000, f"{folder} holds {size / 1e6:.1f} MB (keep it under ~5 MB)"
