"""Ingest settings: contrast standardisation, fingerprints of existing cohorts."""

import json

import numpy as np
import pytest

from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from xraymunit.ingestion import IngestError, ingest


def test_contrast_equalize_flattens_every_histogram_and_default_fingerprint_is_unchanged(built, tmp_path):
    from xraymunit.ingestion.settings import IngestSettings
    from xraymunit.io.cohort import Cohort

    assert "contrast" not in IngestSettings().to_json()  # cohorts ingested before the option stay valid
    assert IngestSettings(contrast="equalize").fingerprint != IngestSettings().fingerprint
    plain, equalized = tmp_path / "plain", tmp_path / "equalized"
    ingest(built.png_root, plain, labels=built.png_csv, progress=False)
    ingest(built.png_root, equalized, labels=built.png_csv, contrast="equalize", progress=False)
    a, b = Cohort.open(plain), Cohort.open(equalized)
    medians_plain = np.median(a.images.reshape(len(a.images), -1), axis=1)
    medians_eq = np.median(b.images.reshape(len(b.images), -1), axis=1) / 65535
    assert np.ptp(medians_eq) < 0.5 * np.ptp(medians_plain / 65535)
    assert all("contrast:equalize" in s for s in b.manifest["pixel_steps"])
    assert json.loads((equalized / "cache" / "meta.json").read_text())["contrast"] == "equalize"
    with pytest.raises(IngestError, match="--contrast"):
        ingest(built.png_root, tmp_path / "bad", contrast="bogus", progress=False)


def test_spacing_mm_resamples_dicom_images_and_changes_the_fingerprint(built, tmp_path):
    from xraymunit.io.cohort import Cohort

    ingest(built.site.root, tmp_path / "mm", size=64, spacing_mm=0.5, progress=False)
    cohort = Cohort.open(tmp_path / "mm")
    ok = cohort.manifest[cohort.manifest["status"] == "ok"]
    with_spacing = ok[ok["spacing_row_mm"].notna()]
    assert len(with_spacing) > 0
    assert all("spacing 0.5mm" in s for s in with_spacing["pixel_steps"])
    runs = [json.loads(line) for line in (tmp_path / "mm" / "private" / "journal.jsonl").read_text().splitlines()]
    assert next(r for r in runs if r["type"] == "run")["settings"]["spacing_mm"] == 0.5
    with pytest.raises(IngestError, match="--spacing-mm"):
        ingest(built.site.root, tmp_path / "bad", spacing_mm=0, progress=False)
