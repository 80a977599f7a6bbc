"""SimpleITK (GDCM) decodes the compressed pixel data no pydicom plugin can; the manifest says so."""

import shutil

import numpy as np
import pydicom.pixels
import pytest
from pydicom.uid import RLELossless

from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from xraymunit.ingestion import ingest
from xraymunit.ingestion.entries import close_writers, new_run_token
from xraymunit.ingestion.per_file import decode_file, scan_file
from xraymunit.ingestion.settings import IngestSettings
from xraymunit.io import dicom_pixels
from xraymunit.io.cohort import Cohort

pytest.importorskip("SimpleITK")


@pytest.fixture
def rle_file(built, tmp_path):
    f = built.site.by_name("mono2_12bit_rle")
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(built.site.root / f.rel, src / "IM0001.dcm")
    return src


def without_rle_decoder(monkeypatch):
    """pydicom as if no plugin could decode RLE (a missing decoder): get_decoder raises for it."""
    real = pydicom.pixels.get_decoder

    def get_decoder(uid):
        if uid == RLELossless:
            raise NotImplementedError(f"no pixel data decoder for {uid.name}")
        return real(uid)

    monkeypatch.setattr(pydicom.pixels, "get_decoder", get_decoder)


def test_header_pass_leaves_undecodable_syntax_to_simpleitk(rle_file, tmp_path, monkeypatch):
    ingest(rle_file, tmp_path / "ref", size=64, progress=False)
    without_rle_decoder(monkeypatch)
    ingest(rle_file, tmp_path / "fallback", size=64, progress=False)
    ref, fb = Cohort.open(tmp_path / "ref"), Cohort.open(tmp_path / "fallback")
    assert fb.manifest["status"].tolist() == ["ok"]
    steps = fb.manifest["pixel_steps"][0].split(";")
    assert steps[:2] == ["load:dicom", "simpleitk_fallback"] and "simpleitk_fallback" not in ref.manifest["pixel_steps"][0]
    assert np.array_equal(fb.images[0], ref.images[0])  # lossless: the same stored values, the same image


def test_without_simpleitk_the_file_still_fails_as_before(rle_file, tmp_path, monkeypatch):
    without_rle_decoder(monkeypatch)
    monkeypatch.setattr(dicom_pixels, "SIMPLEITK_SYNTAXES", frozenset())
    ingest(rle_file, tmp_path / "out", size=64, progress=False)
    row = Cohort.open(tmp_path / "out").manifest.iloc[0]
    assert (row.status, row.reason) == ("failed", "unsupported_transfer_syntax")


def test_decoder_missing_at_decode_time_falls_back(rle_file, tmp_path, monkeypatch):
    settings = IngestSettings(size=64)
    path = rle_file / "IM0001.dcm"
    scan = scan_file(path, settings)
    assert scan["status"] == "ok" and "decoder" not in scan["pixel"]  # pydicom could decode it at header time
    without_rle_decoder(monkeypatch)
    private = tmp_path / "private"
    private.mkdir()
    try:
        result = decode_file(path, scan, private, new_run_token(), settings)
    finally:
        close_writers()
    assert result["status"] == "ok", result
    assert "simpleitk_fallback" in result["steps"]
