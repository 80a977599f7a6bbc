"""xraymunit.analysis.report: the evaluation numbers as tables, equal to metrics.json.

On real stage outputs (the default pipeline run, a cohort with ingest problems); every expected
number is recomputed from the manifests / cache / metrics.json.
"""

import json

import pytest

from analysis_fixtures import run  # noqa: F401 (fixtures)
from xraymunit import analysis as xa

pytestmark = pytest.mark.slow  # every test reads the session's default pipeline run or a real ingest


# ------------------------------------------------------------------ evaluation numbers


def test_quality_table_carries_the_report_numbers(run):
    q = run.metrics["quality"]
    table = xa.quality_table(run.metrics).set_index("measure")
    fd = q["realism"]["synthetic_vs_real_abnormal"]
    row = table.loc["Fréchet distance to real abnormal"]
    assert row["synthetic"] == fd["frechet"]
    assert row["yardstick"] == q["realism"]["yardstick_real_normal_vs_real_abnormal"]["frechet"]
    div = q["diversity"]["synthetic_styles_of_same_input"]["lpips_style"]
    row = table.loc["LPIPS-style between styles of one input"]
    assert (row["synthetic"], row["synthetic_ci_low"], row["synthetic_ci_high"]) == (
        div["mean"], div["ci_low"], div["ci_high"])
    assert row["yardstick"] == q["diversity"]["yardstick_real_abnormal_pairs"]["lpips_style"]["mean"]
    assert set(table["group"]) == {"realism", "diversity", "content", "memorisation"}
    assert len(xa.quality_table(None)) == 0 and len(xa.quality_table({"quality": None})) == 0


def test_classifier_table_has_every_level_and_arm(run):
    m = run.metrics
    table = xa.classifier_table(m)
    assert len(table) == len(m["levels"]) * len(m["arms"])
    lv = m["levels"][0]["name"]
    for arm in m["arms"]:
        row = table[(table["level"] == lv) & (table["arm"] == arm)].iloc[0]
        assert row["auroc"] == m["results"][lv]["arms"][arm]["auroc"]["value"]
    assert table.loc[table["arm"] == "real", "delta_vs_real"].isna().all()


def test_load_metrics(run, tmp_path):
    assert xa.load_metrics(run.report_dir) == json.loads((run.report_dir / "metrics.json").read_text())
    assert xa.load_metrics(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not an xraymunit evaluation"):
        xa.load_metrics(tmp_path)
