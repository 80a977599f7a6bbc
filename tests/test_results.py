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


def _report(tmp_path, comparison: dict) -> dict:
    """A minimal evaluate metrics.json with one level, gathered the way publish.py gathers a study."""
    arms = {"real": {"auroc": {"value": 0.7, "ci_low": 0.6, "ci_high": 0.8, "per_seed": [0.70, 0.72]}},
            "synthetic": {"auroc": {"value": 0.75, "ci_low": 0.65, "ci_high": 0.85, "per_seed": [0.76, 0.71]}}}
    level = {"n_real_abnormal": 10, "arms": arms, "comparisons": {"synthetic vs real": {"auroc": comparison}},
             "synthetic_vs_controls": {"synthetic": {"comparisons": {"synthetic vs real": {"auroc": comparison}},
                                                     "answer": {"helps": False, "text": "no: …"}}}}
    metrics = {"results": {"10": level}, "seeds": [0, 1], "data": {}, "config": {"classifier": {}}, "quality": None}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics))
    return publish._study(path, lambda name: tmp_path / "no_quality.csv")["levels"]["10"]


def test_publish_keeps_holm_p_and_every_per_seed_difference(tmp_path):
    new = {"delta": 0.025, "ci_low": -0.01, "ci_high": 0.06, "p_bootstrap": 0.2, "p_holm": 0.4,
           "per_seed": [0.06, -0.01], "per_generator": [{"generator": 1, "delta": 0.025, "per_seed": [0.06, -0.01]}]}
    got = _report(tmp_path, new)
    for published in (got["delta"]["synthetic vs real"], got["vs_controls"]["synthetic"]["comparisons"]["synthetic vs real"]):
        assert published == new
    # a report written before comparisons kept per-seed differences: derived from the arms' per-seed AUROCs
    old = {k: new[k] for k in ("delta", "ci_low", "ci_high", "p_bootstrap", "p_holm")}
    derived = _report(tmp_path, old)["delta"]["synthetic vs real"]
    assert derived["p_holm"] == 0.4 and derived["per_seed"] == pytest.approx([0.06, -0.01])
    assert derived["per_generator"] is None
