"""xraymunit.analysis.synthetic: summaries, filters and joins of the synthetic manifest.

On real stage outputs (the default pipeline run, a cohort with ingest problems); every expected
number is recomputed from the manifests / cache / metrics.json.
"""

import pytest

from analysis_fixtures import run  # noqa: F401 (fixtures)
from xraymunit import analysis as xa

pytestmark = pytest.mark.slow  # every test reads the session's default pipeline run or a real ingest


# ------------------------------------------------------------------ synthetic tables


def test_synthetic_summary_counts(run):
    m = run.synth.manifest
    s = xa.synthetic_summary(run.synth)
    assert s["images"] == len(m) and s["source_images"] == m["source_image_key"].nunique()
    assert s["with_png"] == m["png_path"].notna().sum()


def test_filter_synthetic_by_style_and_seed(run):
    m = run.synth.manifest
    first = xa.filter_synthetic(run.synth, style_index=0)
    assert (first["style_index"] == 0).all() and len(first) == m["source_image_key"].nunique()
    two = xa.filter_synthetic(run.synth, style_index=[0, 1])
    assert len(two) == ((m["style_index"] == 0) | (m["style_index"] == 1)).sum()
    seed = int(m["seed"].iloc[0])
    assert len(xa.filter_synthetic(run.synth, seed=seed)) == (m["seed"] == seed).sum()
    assert len(xa.filter_synthetic(run.synth, seed=seed + 12345)) == 0
    key = m["source_image_key"].iloc[0]
    one = xa.filter_synthetic(run.synth, source_image_key=key)
    assert set(one["source_image_key"]) == {key} and list(one["style_index"]) == sorted(one["style_index"])


def test_with_sources_joins_cohort_metadata(run):
    rows = xa.with_sources(xa.filter_synthetic(run.synth, style_index=0), run.cohort)
    ok = run.cohort.ok().set_index("image_key")
    assert (rows["cache_index"] >= 0).all()
    for _, r in rows.head(5).iterrows():
        assert r["cache_index"] == ok.loc[r["source_image_key"], "cache_index"]
        assert r["source_cohort_label"] == ok.loc[r["source_image_key"], "label"] == "normal"


def test_pick_sources_is_seeded(run):
    a = xa.pick_sources(run.synth, 4, seed=0)
    assert a == xa.pick_sources(run.synth, 4, seed=0) and len(set(a)) == 4
    assert a != xa.pick_sources(run.synth, 4, seed=1)
