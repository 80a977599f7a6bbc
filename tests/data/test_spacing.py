"""The optional physical-spacing step of the ingest chain, and the default chain staying as it was."""

import hashlib

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from fixtures.dicom_builder import CR_MONO1_CHEST, CXR_DIR, _small, write_dataset
from xraymunit.data import transforms as T
from xraymunit.data.transforms import ingest_transforms
from xraymunit.ingestion.rules import scan_header

# sha256 of the float32 output bytes of the chain before spacing and the module split (same machine
# arithmetic: IEEE float32 ops and Pillow's box filter); steps as they were recorded then.
GOLDEN = {
    "RG1_UNCR": ("e4be2068fe82d965621359957ad67f494799bfef4dcc12ac011ddef1ce4c1a8e",
                 ["load:dicom", "voi:window(15000,30000,LINEAR)", "invert:MONOCHROME1", "pad_square(1955x1841)",
                  "resize:area(1955->256)"]),
    "CR_MONO1": ("f3fecbc762dad17967e54c404a4687bc9371bc6efaaa990e44a548ee64d2da65",
                 ["load:dicom", "voi:window(550,1024,LINEAR)", "invert:MONOCHROME1", "resize:area(440->256)"]),
}


@pytest.mark.parametrize("name,path", [("RG1_UNCR", get_testdata_file("RG1_UNCR.dcm")),
                                       ("CR_MONO1", str(CR_MONO1_CHEST))])
def test_default_chain_is_byte_identical_to_before(name, path):
    chain = ingest_transforms(size=256, header_key=None)
    assert not any(isinstance(t, T.ResampleSpacingd) for t in chain.transforms)
    assert [type(t).__name__ for t in chain.transforms] == [
        "LoadRadiographd", "ModalityLUTd", "VOIWindowd", "InvertMonochrome1d", "ContrastStandardised",
        "SquareFitd", "AreaResized", "ChannelFirstd"]
    out = chain({"image": path})
    digest, steps = GOLDEN[name]
    assert out["image_meta_dict"]["steps"] == steps
    assert hashlib.sha256(out["image"].tobytes()).hexdigest() == digest


def _anisotropic(tmp_path, **overrides):
    """96×96 stored pixels of 0.4 mm (rows) × 0.2 mm (columns): a 38.4 × 19.2 mm field."""
    ds = _small(ImagerPixelSpacing=[0.4, 0.2], **overrides)
    return write_dataset(ds, tmp_path / "aniso.dcm")


def test_anisotropic_pixels_are_made_square_before_the_square_fit(tmp_path):
    path = _anisotropic(tmp_path)
    out = ingest_transforms(size=96, header_key=None, spacing_mm=0.4)({"image": str(path)})
    img, meta = out["image"][0], out["image_meta_dict"]
    steps = meta["steps"]
    assert "spacing 0.4mm(from 0.4x0.2mm, 96x96->96x48)" in steps
    assert steps.index(next(s for s in steps if s.startswith("spacing"))) < steps.index("pad_square(96x48)")
    assert img.shape == (96, 96) and img[:, :24].max() == 0.0 and img[:, -24:].max() == 0.0  # black bars
    assert img[:, 24:72].mean() > 0.1 and 0.0 <= img.min() and img.max() <= 1.0
    assert meta["spacing_mm"] == (0.4, 0.2) and meta["spacing_source"] == "ImagerPixelSpacing"


def test_the_header_record_of_ingest_gives_the_spacing(tmp_path):
    path = _anisotropic(tmp_path, PixelSpacing=[0.1, 0.1])  # ImagerPixelSpacing wins for a projection image
    scan = scan_header(path, modalities=None).to_json()
    scan["kind"] = "dicom"
    out = ingest_transforms(size=64, spacing_mm=0.8)({"image": str(path), "header": scan})
    assert any(s.startswith("spacing 0.8mm(from 0.4x0.2mm, 96x96->48x24)") for s in out["image_meta_dict"]["steps"])
    assert out["image"].shape == (1, 64, 64)


@pytest.mark.parametrize("defer", [True, False])
def test_the_deferred_window_is_applied_before_resampling(tmp_path, defer):
    path = str(_anisotropic(tmp_path))
    fast = ingest_transforms(size=64, header_key=None, spacing_mm=0.3, defer=True)({"image": path})
    slow = ingest_transforms(size=64, header_key=None, spacing_mm=0.3, defer=defer)({"image": path})
    np.testing.assert_allclose(fast["image"], slow["image"], atol=2e-6)


def test_images_without_spacing_are_left_as_they_are():
    png = str(CXR_DIR / "nih__00000061_012.png")
    rg1 = get_testdata_file("RG1_UNCR.dcm")  # PixelSpacing 0.000\0.000: unknown
    for path in (png, rg1):
        plain = ingest_transforms(size=128, header_key=None)({"image": path})
        spaced = ingest_transforms(size=128, header_key=None, spacing_mm=0.5)({"image": path})
        np.testing.assert_array_equal(plain["image"], spaced["image"])
        steps = spaced["image_meta_dict"]["steps"]
        assert "spacing unknown" in steps and [s for s in steps if s != "spacing unknown"] == \
            plain["image_meta_dict"]["steps"]


def test_bad_spacing_is_rejected():
    for bad in (0, -0.5, float("nan")):
        with pytest.raises(ValueError, match="spacing_mm"):
            ingest_transforms(spacing_mm=bad)
        with pytest.raises(ValueError, match="spacing_mm"):
            T.ResampleSpacingd("image", spacing_mm=bad)
