"""xraymunit.analysis.figures: montages, metadata/intensity plots and synthetic grids render what they say.

On real stage outputs (the default pipeline run, a cohort with ingest problems); every expected
number is recomputed from the manifests / cache / metrics.json.
"""

import pytest
from matplotlib.figure import Figure

from analysis_fixtures import images_shown as _images_shown, png_bytes as _png_bytes
from analysis_fixtures import problem_cohort, run  # noqa: F401 (fixtures)
from fixtures.ingest_fixtures import built, ingested  # noqa: F401 (fixtures)
from xraymunit import analysis as xa

pytestmark = pytest.mark.slow  # every test reads the session's default pipeline run or a real ingest


# ------------------------------------------------------------------ figures


def test_real_montage_shows_n_images_per_label(run):
    fig = xa.real_montage(run.cohort, n_per_label=3, seed=0)
    assert isinstance(fig, Figure) and _images_shown(fig) == 6
    assert _png_bytes(fig).startswith(b"\x89PNG")
    one_split = xa.real_montage(run.cohort, n_per_label=2, split="test")
    assert _images_shown(one_split) == 4


def test_metadata_and_intensity_figures_render(run, problem_cohort):
    for fig in (xa.metadata_figure(run.cohort), xa.intensity_histograms(run.cohort, n_per_label=5),
                xa.metadata_figure(problem_cohort)):
        assert isinstance(fig, Figure) and _png_bytes(fig).startswith(b"\x89PNG")
    fig = xa.intensity_histograms(run.cohort, n_per_label=5)
    assert len(fig.axes[0].lines) == 2  # one curve per label


def test_synthetic_grid_shows_sources_and_their_styles(run):
    styles = run.synth.manifest.groupby("source_image_key").size().min()
    fig = xa.synthetic_grid(run.cohort, run.synth, n_sources=3, n_styles=styles, seed=0)
    assert _images_shown(fig) == 3 * (1 + styles)
    rows = xa.filter_synthetic(run.synth, style_index=0)
    fig = xa.synthetic_grid(run.cohort, run.synth, rows=rows.head(2))
    assert _images_shown(fig) == 2 * 2  # two sources, one style each
    key = rows["source_image_key"].iloc[0]
    detail = xa.source_and_styles(run.cohort, run.synth, key, max_styles=3)
    assert _images_shown(detail) == 1 + 2 * min(3, styles)  # source, styles, difference maps
    assert _png_bytes(detail).startswith(b"\x89PNG")
