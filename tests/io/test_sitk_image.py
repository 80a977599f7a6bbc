"""SimpleITK (GDCM) as a second DICOM decoder, and physical-spacing resampling with ITK."""

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, RLELossless

from fixtures.dicom_builder import CR_MONO1_CHEST, _small, write_dataset
from xraymunit.errors import XraymunitError
from xraymunit.ingestion.rules import scan_header
from xraymunit.io import dicom
from xraymunit.io.sitk_image import (SimpleITKReadError, antialias_sigma_mm, read_with_simpleitk,
                                     resample_to_spacing)


def _ours(path):
    """Stored pixels as our own decoder reads them (ingest's header pass, no policy limits)."""
    scan = scan_header(path, modalities=None, min_side=1, max_side=1 << 16)
    assert scan.status == "ok", scan.reason
    return dicom.read_stored_pixels(path, scan.pixel)


def _write(tmp_path, name, syntax=None, **overrides):
    """A 96×96 DX written by pydicom, optionally changed (`overrides`) and compressed (`syntax`)."""
    ds = _small(**{k: v for k, v in overrides.items() if k != "stored"})
    if "stored" in overrides:
        arr = overrides["stored"]
        ds.BitsAllocated = ds.BitsStored = arr.dtype.itemsize * 8
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = int(arr.dtype.kind == "i")
        ds.PixelData = arr.tobytes()
    if syntax is not None:
        ds.compress(syntax, ds.pixel_array, generate_instance_uid=False)
    return write_dataset(ds, tmp_path / name)


def _signed_stored():
    """Full-range 16-bit signed values (GDCM cannot invert a signed MONOCHROME1 of fewer bits: it raises)."""
    return np.random.default_rng(3).integers(-32768, 32767, size=(96, 96), endpoint=True).astype(np.int16)


@pytest.mark.parametrize("case", ["explicit", "rle", "j2k_lossless", "mono1_rescale", "signed_mono1_rescale",
                                  "pixel_spacing_only", "anisotropic"])
def test_simpleitk_gives_the_stored_values_pydicom_gives(tmp_path, case):
    """Same pixels both ways: GDCM's own rescale and MONOCHROME1 inversion are undone."""
    kwargs = {
        "explicit": {},
        "rle": {"syntax": RLELossless},
        "j2k_lossless": {"syntax": JPEG2000Lossless},
        "mono1_rescale": {"PhotometricInterpretation": "MONOCHROME1", "RescaleSlope": "0.5",
                          "RescaleIntercept": "-1024.25"},
        "signed_mono1_rescale": {"PhotometricInterpretation": "MONOCHROME1", "RescaleSlope": "2",
                                 "RescaleIntercept": "-10", "stored": _signed_stored()},
        "pixel_spacing_only": {"ImagerPixelSpacing": None, "PixelSpacing": [0.15, 0.15]},
        "anisotropic": {"ImagerPixelSpacing": [0.2, 0.1], "PixelSpacing": [0.3, 0.3]},
    }[case]
    path = _write(tmp_path, f"{case}.dcm", **kwargs)
    expected = pydicom.dcmread(path).pixel_array
    arr, spacing = read_with_simpleitk(path)
    assert arr.dtype == expected.dtype and arr.shape == (96, 96)
    np.testing.assert_array_equal(arr, expected)
    assert spacing == {"pixel_spacing_only": (0.15, 0.15), "anisotropic": (0.2, 0.1)}.get(case, (0.572, 0.572))
    # the same as our own decoder, so the intensity chain after it is the same
    np.testing.assert_array_equal(arr, _ours(path))


@pytest.mark.parametrize("path", [get_testdata_file("RG1_UNCR.dcm"), get_testdata_file("JPEGLSNearLossless_16.dcm"),
                                  get_testdata_file("CT_small.dcm"), str(CR_MONO1_CHEST)])
def test_real_files_match_our_decoder(path):
    """A real MONOCHROME1 CR (PixelSpacing 0.000 → None), JPEG-LS, a rescaled signed CT, a file with no preamble."""
    arr, spacing = read_with_simpleitk(path)
    ours = _ours(path)
    assert arr.dtype == ours.dtype
    np.testing.assert_array_equal(arr, ours)
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    expected_spacing = {get_testdata_file("CT_small.dcm"): tuple(float(v) for v in ct.PixelSpacing)}
    assert spacing == expected_spacing.get(path)


def test_unreadable_and_colour_files_raise_a_user_error(tmp_path):
    junk = tmp_path / "notes.dcm"
    junk.write_text("not an image\n" * 50)
    with pytest.raises(SimpleITKReadError, match="cannot decode") as err:
        read_with_simpleitk(junk)
    assert isinstance(err.value, XraymunitError) and "\n" not in str(err.value)
    with pytest.raises(SimpleITKReadError, match="samples per pixel"):
        read_with_simpleitk(get_testdata_file("SC_rgb.dcm"))
    with pytest.raises(SimpleITKReadError):
        read_with_simpleitk(tmp_path / "missing.dcm")


# ------------------------------------------------------------------ resampling

def _disc(shape, spacing, radius_mm):
    """Image with a disc of `radius_mm` centred on the physical extent (pixel i's centre at i * spacing)."""
    h, w = shape
    sr, sc = spacing
    yy = (np.arange(h) - (h - 1) / 2.0)[:, None] * sr
    xx = (np.arange(w) - (w - 1) / 2.0)[None, :] * sc
    return (yy ** 2 + xx ** 2 <= radius_mm ** 2).astype(np.float32)


def test_anisotropic_disc_becomes_a_circle_of_the_expected_radius():
    img = _disc((200, 400), (0.2, 0.1), 12.0)  # 40 x 40 mm field; an ellipse in pixels (60 x 120 radii)
    out = resample_to_spacing(img, (0.2, 0.1), 0.4)
    assert out.shape == (100, 100) and out.dtype == np.float32
    mask = out > 0.5
    assert np.sqrt(mask.sum() / np.pi) == pytest.approx(30.0, abs=0.5)  # 12 mm / 0.4 mm
    rows, cols = np.nonzero(mask)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(height - width) <= 1 and abs(height - 60) <= 2
    assert rows.mean() == pytest.approx(49.5, abs=0.5) and cols.mean() == pytest.approx(49.5, abs=0.5)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_upsampling_one_axis_keeps_the_other():
    img = _disc((100, 200), (0.2, 0.1), 6.0)
    out = resample_to_spacing(img, (0.2, 0.1), 0.1)
    assert out.shape == (200, 200)
    assert np.sqrt((out > 0.5).sum() / np.pi) == pytest.approx(60.0, abs=0.7)


def test_identity_when_the_spacing_is_already_the_target():
    img = np.random.default_rng(0).random((64, 80)).astype(np.float32)
    out = resample_to_spacing(img, (0.5, 0.5), 0.5)
    assert out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, img)


def test_downsampling_is_anti_aliased_and_edges_are_not_filled():
    stripes = np.tile(np.array([0.0, 1.0], dtype=np.float32), (200, 100))  # 1-pixel stripes at 0.1 mm
    out = resample_to_spacing(stripes, (0.1, 0.1), 0.5)
    assert out.shape == (40, 40)
    assert abs(float(out.mean()) - 0.5) < 0.02 and float(out.std()) < 0.05  # no moiré
    flat = np.full((90, 70), 0.7, dtype=np.float32)
    np.testing.assert_allclose(resample_to_spacing(flat, (0.143, 0.15), 0.5), 0.7, atol=1e-6)
    assert antialias_sigma_mm(0.1, 0.5) == pytest.approx(0.2) and antialias_sigma_mm(0.5, 0.1) == 0.0


def test_bad_arguments_are_rejected():
    img = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError):
        resample_to_spacing(img, (0.0, 0.1), 0.5)
    with pytest.raises(ValueError):
        resample_to_spacing(img, (0.1, 0.1), -1)
    with pytest.raises(ValueError):
        resample_to_spacing(np.zeros((2, 8, 8)), (0.1, 0.1), 0.5)
