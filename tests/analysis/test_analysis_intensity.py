"""xraymunit.analysis.intensity: per-label samples and intensity statistics, checked against the cache.

On real stage outputs (the default pipeline run, a cohort with ingest problems); every expected
number is recomputed from the manifests / cache / metrics.json.
"""

import numpy as np
import pytest

from analysis_fixtures import run  # noqa: F401 (fixtures)
from xraymunit import analysis as xa

pytestmark = pytest.mark.slow  # every test reads the session's default pipeline run or a real ingest


# ------------------------------------------------------------------ intensity


def test_sample_per_label_is_capped_and_seeded(run):
    ok = run.cohort.ok()
    a = xa.sample_per_label(run.cohort, 5, seed=1)
    assert a["label"].value_counts().to_dict() == {"normal": 5, "abnormal": 5}
    assert a["image_key"].equals(xa.sample_per_label(run.cohort, 5, seed=1)["image_key"])
    assert not a["image_key"].equals(xa.sample_per_label(run.cohort, 5, seed=2)["image_key"])
    assert len(xa.sample_per_label(run.cohort, None)) == len(ok)
    train = xa.sample_per_label(run.cohort, 3, split="train")
    assert (train["split"] == "train").all()


def test_intensity_by_label_equals_the_cache(run):
    cohort = run.cohort
    table = xa.intensity_by_label(cohort, n_per_label=None)
    ok = cohort.ok()
    for label in ("normal", "abnormal"):
        idx = ok.loc[ok["label"] == label, "cache_index"].to_numpy()
        images = cohort.images[np.sort(idx)].astype(np.float64) / 65535.0
        assert table.loc[label, "images"] == table.loc[label, "sampled"] == len(idx)
        per_image_mean = images.reshape(len(idx), -1).mean(axis=1)
        assert table.loc[label, "mean_mean"] == pytest.approx(per_image_mean.mean(), abs=1e-4)
        assert table.loc[label, "mean_sd"] == pytest.approx(per_image_mean.std(ddof=1), abs=1e-4)
        zero = (images.reshape(len(idx), -1) == 0).mean(axis=1)
        assert table.loc[label, "zero_fraction_mean"] == pytest.approx(zero.mean(), abs=1e-4)
    capped = xa.intensity_by_label(cohort, n_per_label=4, seed=0)
    assert (capped["sampled"] == 4).all() and (capped["images"] == table["images"]).all()
