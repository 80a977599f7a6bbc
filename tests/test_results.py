"""Published results (results/<name>/): metrics.json parses, summary.md is exactly what it renders to,
every number the hand-written interpretation quotes is filled in from its own metrics.json path
(quotes.py), and the derived numbers (Holm p, point differences) are what derive() recomputes."""

import json
import math
import re
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "pipelines" / "cxr_study"))
import publish  # noqa: E402  (the first study's publisher; others are named by their metrics.json)
import quotes  # noqa: E402

RESULTS = sorted((REPO / "results").glob("*/metrics.json"))


def publisher(metrics: dict):
    """The script that wrote a results folder (metrics.json names it; the first study's has no name)."""
    import importlib.util

    path = REPO / metrics.get("publisher", "pipelines/cxr_study/publish.py")
    spec = importlib.util.spec_from_file_location(f"publisher_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", RESULTS, ids=[p.parent.name for p in RESULTS])
def test_summary_is_rendered_from_metrics(path):
    metrics = json.loads(path.read_text())
    assert metrics["format"] == "xraymunit.results"
    assert (path.parent / "summary.md").read_text() == publisher(metrics).render(metrics)


@pytest.mark.parametrize("path", RESULTS, ids=[p.parent.name for p in RESULTS])
def test_interpretation_quotes_numbers_only_by_their_metrics_path(path):
    metrics = json.loads(path.read_text())
    template = (path.parent / "interpretation.md").read_text().strip()
    assert metrics["interpretation"] == template, "metrics.json holds an older interpretation: rerun publish.py"
    assert quotes.hand_written_numbers(template) == [], "write measured numbers as {{path}} placeholders"
    filled = quotes.fill(template, metrics)  # raises QuoteError on a path metrics.json lacks
    assert "{{" not in filled and filled != template


@pytest.mark.parametrize("path", RESULTS, ids=[p.parent.name for p in RESULTS])
def test_derived_numbers_are_recomputed_from_the_gathered_ones(path):
    metrics = json.loads(path.read_text())
    assert publisher(metrics).derive(json.loads(path.read_text())) == metrics


def test_placeholders_fill_from_their_paths_and_refuse_missing_ones():
    m = {"a": {"d": {"delta": -0.0312, "ci_low": -0.07, "ci_high": 0.011}}, "n": [1700.0, 0.5], "p": 0.0004}
    assert quotes.fill("{{ci a/d}} {{a/d/delta|3}} {{int n/0}} {{pct n/1}} {{p p}}", m) == \
        "−0.03 [−0.07, 0.01] −0.031 1,700 50 % < 0.001"
    with pytest.raises(quotes.QuoteError, match="a/x"):
        quotes.fill("{{a/x}}", m)
    with pytest.raises(quotes.QuoteError, match="not a finite number"):
        quotes.fill("{{a}}", m)
    assert quotes.hand_written_numbers("K = 10, 3 seeds, `x=0.1`, {{a/d/delta}}") == []
    assert quotes.hand_written_numbers("AUROC 0.86, 1,700 steps, 45 % slower") == ["0.86", "1,700", "45 %"]


def test_holm_matches_the_step_down_rule():
    # p sorted 0.01, 0.04, 0.03 → 3·0.01, max(0.03, 2·0.03), max(0.06, 1·0.04)
    assert quotes.holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert quotes.holm({"a": 0.6, "b": 0.9}) == {"a": 1.0, "b": 1.0}


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


def _numbers(obj, out: set) -> set:
    """Every number of a results tree as a page may print it (0-3 decimals, also ×100 and /60, either minus)."""
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


def test_pictures_enter_results_compacted_and_radiographs_lossless(tmp_path):
    """compact_png: opaque alpha dropped and gray stored as gray, pixel for pixel; a 256-colour palette
    only when asked (line plots), so a grid of radiographs never shows banding the generator did not draw."""
    import numpy as np
    from PIL import Image
    from results_files import compact_png

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    colour = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    for name, pixels in (("gray", np.dstack([gray, gray, gray])), ("colour", colour)):
        src = tmp_path / f"{name}.png"
        Image.fromarray(np.dstack([pixels, np.full(gray.shape, 255, np.uint8)]), "RGBA").save(src)
        compact_png(src, tmp_path / f"{name}_out.png")
        out = Image.open(tmp_path / f"{name}_out.png")
        assert out.mode == ("L" if name == "gray" else "RGB")
        assert np.array_equal(np.asarray(out.convert("RGB")), pixels)  # lossless
    compact_png(tmp_path / "colour.png", tmp_path / "plot.png", palette=True)
    assert Image.open(tmp_path / "plot.png").mode == "P"
