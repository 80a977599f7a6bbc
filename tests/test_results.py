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


def _results_files() -> list:
    return [json.loads(p.read_text()) for p in sorted((REPO / "results").rglob("*.json"))]


def _intervals(obj, out: list) -> list:
    """(other numbers, low, high) of every dict of a results tree that holds an interval
    (`ci_low`/`ci_high`, or `ci: [low, high]`): a quoted "value [low, high]" is one of these."""
    if isinstance(obj, dict):
        low, high = obj.get("ci_low"), obj.get("ci_high")
        if low is None and isinstance(obj.get("ci"), list) and len(obj["ci"]) == 2:
            low, high = obj["ci"]
        if isinstance(low, (int, float)) and isinstance(high, (int, float)):
            values = [v for k, v in obj.items() if k not in ("ci_low", "ci_high", "ci")
                      and isinstance(v, (int, float)) and not isinstance(v, bool)]
            out.append((values, low, high))
        for v in obj.values():
            _intervals(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _intervals(v, out)
    return out


def _printed(value: float, like: str) -> str:
    """`value` printed as `like` is: same decimals, same minus sign."""
    text = f"{value:.{len(like.split('.')[1])}f}"
    return text.replace("-", "−") if like.startswith("−") else text


def _quotes(interval: tuple, quoted: tuple) -> bool:
    values, low, high = interval
    value_text, low_text, high_text = quoted
    return (_printed(low, low_text) == low_text and _printed(high, high_text) == high_text
            and any(_printed(v, value_text) == value_text for v in values))


def _results_section(readme: str) -> str:
    section = re.search(r"^## Results\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S)
    assert section, "README has no Results section"
    return section.group(1)


NUMBER = r"[−-]?\d+\.\d+"


@pytest.mark.parametrize("source", ["README.md", "docs/results.md"])
def test_results_pages_quote_only_measured_numbers(source):
    """The studies' numbers quoted in README's Results section and on the docs' results page are
    numbers the results files hold, and each "value [low, high]" is one measurement's value and
    interval (a retyped, swapped or stale number fails)."""
    text = (REPO / source).read_text()
    text = _results_section(text) if source == "README.md" else text
    files = _results_files()
    known = set().union(*(_numbers(f, set()) for f in files))
    quoted = re.findall(rf"(?<![\w.]){NUMBER}", text)
    assert len(quoted) >= 30  # the tables and the controls' intervals are there
    assert [q for q in quoted if q not in known] == []
    measured = [i for f in files for i in _intervals(f, [])]
    intervals = re.findall(rf"(?<![\w.])({NUMBER}) \[({NUMBER}), ({NUMBER})\]", text)
    assert len(intervals) >= 10
    unmatched = [q for q in intervals if not any(_quotes(m, q) for m in measured)]
    assert unmatched == [], f"value [low, high] that no single measurement holds: {unmatched}"
