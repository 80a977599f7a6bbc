"""Our Modality LUT / VOI LUT / windowing / MONOCHROME1 steps against pydicom's reference functions.

pydicom (`pydicom.pixels.apply_modality_lut`, `apply_voi_lut`) is the independent implementation of
PS3.3 C.11. Modality values must agree to float32 precision. Display values differ by design in
their scale only: pydicom maps a window onto the stored value range [y_min, y_max] (PS3.3 C.11.2.1.2)
and returns VOI LUT entries as stored; we map both onto [0, 1] (LUT entries divided by 2^bits − 1),
and we invert MONOCHROME1 (pydicom leaves that to the caller). The tests rescale pydicom's output
accordingly and then require equality. Two deliberate differences are asserted as such at the end.
"""

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from fixtures.dicom_builder import CR_MONO1_CHEST, _small, write_dataset
from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from xraymunit.data import transforms as T


def ours(path):
    """(stored, modality, voi, display, meta) through our chain's intensity steps, unresized."""
    d = T.LoadRadiographd("image", header_key=None)({"image": str(path)})
    stored = d["image"]
    d = T.ModalityLUTd("image")(d)
    modality = d["image"]
    d = T.VOIWindowd("image", defer=False)(d)
    voi = d["image"]
    d = T.InvertMonochrome1d("image")(d)
    return stored, modality, voi, d["image"], d["image_meta_dict"]


def header(path):
    ds = pydicom.dcmread(str(path), force=True, stop_before_pixels=True)
    if "TransferSyntaxUID" not in ds.file_meta:  # an old file without file meta (CR-MONO1-10-chest)
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def pydicom_window_range(ds):
    """pydicom's output range of a window (its documented rule: the LUT's depth, else BitsStored, rescaled)."""
    if ds.get("ModalityLUTSequence"):
        return 0.0, float(2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1)
    bits = int(ds.BitsStored)
    lo, hi = (0, 2 ** bits - 1) if ds.PixelRepresentation == 0 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = lo * slope + intercept, hi * slope + intercept
    return float(lo), float(hi)


def check_against_pydicom(path):
    """Assert each of our intensity steps equals pydicom's on the same stored values; returns the window source."""
    stored, modality, voi, display, meta = ours(path)
    ds = header(path)
    theirs_modality = apply_modality_lut(np.asarray(stored), ds)
    scale = max(1.0, float(np.abs(theirs_modality).max()))
    np.testing.assert_allclose(modality, theirs_modality, rtol=0, atol=2e-7 * scale * 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "VOI LUT on a float input array" (integral values here)
        theirs_voi = apply_voi_lut(theirs_modality, ds, index=0, prefer_lut=True).astype(np.float64)
    source = meta["window_source"]
    if source == "voi_lut":
        bits = ds.VOILUTSequence[0].LUTDescriptor[2]
        expected = theirs_voi / float(2 ** bits - 1)
    elif source == "window":
        lo, hi = pydicom_window_range(ds)
        expected = (theirs_voi - lo) / (hi - lo)
    else:  # no VOI in the file: pydicom leaves the values; ours falls back to a percentile/full-range window
        assert source in ("percentile", "full_range")
        np.testing.assert_array_equal(theirs_voi, np.asarray(theirs_modality, dtype=np.float64))
        return source
    np.testing.assert_allclose(voi, expected, rtol=0, atol=1e-5)
    if (ds.PhotometricInterpretation or "").upper() == "MONOCHROME1":
        np.testing.assert_allclose(display, 1.0 - expected, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(display, voi)
    return source


# ------------------------------------------------------------------ the repo's DICOM fixtures

@pytest.mark.parametrize("path,source", [(get_testdata_file("RG1_UNCR.dcm"), "window"),
                                         (get_testdata_file("CT_small.dcm"), "percentile"),  # rescale, no window
                                         (get_testdata_file("MR_small.dcm"), "window"),
                                         (str(CR_MONO1_CHEST), "window")])
def test_real_files(path, source):
    assert check_against_pydicom(path) == source


def test_every_built_site_variant(built):
    sources = {f.variant.name: check_against_pydicom(built.site.root / f.rel) for f in built.site.files}
    assert sources["voi_lut_sequence_10bit"] == "voi_lut" and sources["modality_lut_sequence"] == "window"
    assert sources["sigmoid_multi_window"] == "window" and sources["cr_mono1_15bit"] == "window"
    assert sources["signed_16bit_rescale_percentile"] == "percentile"


# ------------------------------------------------------------------ files made here

def _lut_item(first, bits, data, vr="US"):
    item = Dataset()
    item.LUTDescriptor = [len(data), first, bits]
    item.add_new(0x00283006, vr, [int(v) for v in data] if vr == "US" else np.asarray(data, "<u2").tobytes())
    return item


def _made(tmp_path, name, **changes):
    ds = _small(**{k: v for k, v in changes.items() if not k.endswith("Sequence")})
    for keyword in ("WindowCenter", "WindowWidth", "VOILUTFunction", "RescaleSlope", "RescaleIntercept"):
        if changes.get(keyword, "") is None:
            delattr(ds, keyword)
    for keyword in ("ModalityLUTSequence", "VOILUTSequence"):
        if keyword in changes:
            setattr(ds, keyword, Sequence([changes[keyword]]))
    return write_dataset(ds, tmp_path / f"{name}.dcm")


MADE = {
    "rescale_linear": dict(RescaleSlope="0.5", RescaleIntercept="-1024.25", WindowCenter="0", WindowWidth="1500"),
    "linear_exact": dict(WindowCenter="2000.5", WindowWidth="2500", VOILUTFunction="LINEAR_EXACT"),
    "sigmoid": dict(WindowCenter="1800", WindowWidth="900", VOILUTFunction="SIGMOID"),
    "width_one_threshold": dict(WindowCenter="2000", WindowWidth="1"),
    "mono1_window": dict(PhotometricInterpretation="MONOCHROME1", WindowCenter="2100", WindowWidth="3000",
                         RescaleSlope="1", RescaleIntercept="0"),
    "modality_lut_then_window": dict(
        ModalityLUTSequence=_lut_item(300, 16, np.sqrt(np.arange(3000)) * 400), WindowCenter="16000",
        WindowWidth="20000", RescaleSlope=None, RescaleIntercept=None),
    "voi_lut_over_window": dict(  # a VOI LUT wins over a window (prefer_lut / PS3.3 C.11.2)
        VOILUTSequence=_lut_item(500, 16, (np.linspace(0, 1, 3000) ** 1.5) * 65535, vr="OW"),
        WindowCenter="100", WindowWidth="10"),
    "voi_lut_12bit_entries": dict(VOILUTSequence=_lut_item(0, 12, np.arange(4096)[::-1]), WindowCenter=None,
                                  WindowWidth=None),
}


@pytest.mark.parametrize("name", list(MADE))
def test_made_files(tmp_path, name):
    path = _made(tmp_path, name, **MADE[name])
    expected_source = "voi_lut" if "VOILUTSequence" in MADE[name] else "window"
    assert check_against_pydicom(path) == expected_source


def test_monochrome1_is_the_inverse_of_the_same_file_as_monochrome2(tmp_path):
    mono2 = ours(_made(tmp_path, "m2", WindowCenter="2100", WindowWidth="3000"))[3]
    mono1 = ours(_made(tmp_path, "m1", PhotometricInterpretation="MONOCHROME1", WindowCenter="2100",
                       WindowWidth="3000"))[3]
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)


# ------------------------------------------------------------------ deliberate differences

def test_voi_lut_on_fractional_modality_values_rounds_where_pydicom_truncates(tmp_path):
    """With a non-integer rescale, a VOI LUT index is the *nearest* entry for us; pydicom truncates.
    Equal on integral modality values; off by one LUT entry at most elsewhere."""
    table = np.arange(0, 65536, 16)  # 4096 entries, 16 apart
    path = _made(tmp_path, "frac", RescaleSlope="0.5", RescaleIntercept="0",
                 VOILUTSequence=_lut_item(0, 16, table), WindowCenter=None, WindowWidth=None)
    stored, modality, voi, _display, meta = ours(path)
    m = np.asarray(modality, dtype=np.float64)
    assert meta["window_source"] == "voi_lut" and (m % 1 != 0).any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = apply_voi_lut(apply_modality_lut(np.asarray(stored), header(path)), header(path))
    np.testing.assert_array_equal(theirs, table[np.floor(m).astype(int)])
    np.testing.assert_allclose(voi, table[np.rint(m).astype(int)] / 65535.0, atol=1e-6)
    integral = m % 1 == 0
    np.testing.assert_allclose(voi[integral], theirs[integral] / 65535.0, atol=1e-6)


def test_linear_width_below_one_is_a_threshold_where_pydicom_refuses():
    """PS3.3 requires width >= 1 for LINEAR; pydicom raises, we keep the image (threshold at c − 0.5)."""
    ds = Dataset()
    ds.PhotometricInterpretation, ds.BitsStored, ds.PixelRepresentation = "MONOCHROME2", 12, 0
    ds.WindowCenter, ds.WindowWidth = 100, 0.5
    x = np.array([98, 99, 100, 101], dtype=np.uint16)
    with pytest.raises(ValueError, match="Window Width"):
        apply_voi_lut(x, ds)
    np.testing.assert_array_equal(T.apply_window(x, 100, 0.5), [0, 0, 1, 1])
