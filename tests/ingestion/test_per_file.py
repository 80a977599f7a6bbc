"""One file's header rules with --spacing-mm: the resampled size is checked before anything is allocated."""

import json

import numpy as np
import pytest

from fixtures.dicom_builder import _small, write_dataset
from xraymunit.ingestion import ingest
from xraymunit.io import sitk_image
from xraymunit.io.cohort import Cohort

pytest.importorskip("SimpleITK")


def _declaring(folder, name, spacing, side=256):
    """A side x side 16-bit DX whose header declares `spacing` (row, col) mm pixels (131 KB at 256²)."""
    ds = _small(f"SPACING{name}", ImagerPixelSpacing=list(spacing))
    ds.Rows = ds.Columns = side
    ds.PixelData = (np.arange(side * side, dtype=np.uint16) % 4096).tobytes()
    return write_dataset(ds, folder / f"{name}.dcm")


def test_resampled_sizes_pass_the_size_and_aspect_rules_before_anything_is_allocated(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    _declaring(src, "normal", (0.6, 0.6))        # -> 307 x 307: ok
    _declaring(src, "coarse40", (40.0, 40.0))    # -> 20480 x 20480: 1.7 GB of float32 asked for
    _declaring(src, "coarse100", (100.0, 100.0))  # -> 51200 x 51200: 10 GB
    _declaring(src, "strip", (0.01, 10.0))       # -> 5 x 5120: a strip of a square image
    resampled = []
    real = sitk_image.resample_to_spacing

    def spy(image, spacing, target, *args, **kwargs):
        resampled.append(tuple(spacing))
        return real(image, spacing, target, *args, **kwargs)

    monkeypatch.setattr(sitk_image, "resample_to_spacing", spy)
    ingest(src, tmp_path / "out", size=64, spacing_mm=0.5, progress=False)
    m = Cohort.open(tmp_path / "out").manifest.set_index("spacing_col_mm")  # (no paths in a manifest)
    assert m.loc[0.6, "status"] == "ok"
    for col_mm, size in [(40.0, "20480 x 20480"), (100.0, "51200 x 51200"), (10.0, "5 x 5120")]:
        row = m.loc[col_mm]
        assert (row.status, row.reason) == ("failed", "absurd_dimensions"), col_mm
        assert "resampled to 0.5 mm" in row.reason_detail and size in row.reason_detail, row.reason_detail
    assert resampled == [(0.6, 0.6)]  # the refused files were never decoded, let alone resampled
    journal = [json.loads(line) for line in (tmp_path / "out" / "private" / "journal.jsonl").open()]
    assert {r["rel"] for r in journal if r["type"] == "image"} == {"normal.dcm"}


def test_without_spacing_mm_the_same_files_are_ingested(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _declaring(src, "coarse40", (40.0, 40.0), side=96)
    _declaring(src, "strip", (0.01, 10.0), side=96)
    ingest(src, tmp_path / "out", size=64, progress=False)
    assert Cohort.open(tmp_path / "out").manifest["status"].tolist() == ["ok", "ok"]


def test_resample_to_spacing_refuses_a_huge_grid_before_allocating():
    image = np.zeros((256, 256), np.float32)
    with pytest.raises(ValueError, match="more than"):
        sitk_image.resample_to_spacing(image, (100.0, 100.0), 0.5)  # 51200² would be 10 GB
    assert sitk_image.resampled_shape((256, 256), (0.01, 10.0), 0.5) == (5, 5120)
