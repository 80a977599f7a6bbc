"""The ingest pixel chain (real MONAI Compose of MapTransforms) on real and built radiographs."""

import numpy as np
import pytest
from monai.transforms import Compose, MapTransform
from pydicom.data import get_testdata_file

from fixtures.dicom_builder import CR_MONO1_CHEST, CXR_DIR, SITE_VARIANTS
from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from xraymunit.data import transforms as T
from xraymunit.data.transforms import ingest_transforms


def roi(img, r0, r1, c0, c1):
    n = img.shape[0]
    return float(img[int(r0 * n):int(r1 * n), int(c0 * n):int(c1 * n)].mean())


def lungs_and_mediastinum(img):
    return (roi(img, .3, .5, .22, .35), roi(img, .3, .5, .65, .78)), roi(img, .3, .5, .46, .54)


@pytest.fixture(scope="module")
def chain():
    return ingest_transforms(size=256, header_key=None)


@pytest.fixture(scope="module")
def rg1(chain):
    return {name: chain({"image": get_testdata_file(f"RG1_{name}.dcm")}) for name in ("UNCR", "J2KR", "J2KI")}


def test_chain_is_a_monai_compose_of_dictionary_transforms():
    c = ingest_transforms()
    assert isinstance(c, Compose) and all(isinstance(t, MapTransform) for t in c.transforms)


def test_real_mono1_cr_lungs_darker_than_mediastinum(rg1):
    out = rg1["UNCR"]
    img = out["image"]
    assert img.shape == (1, 256, 256) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    (right, left), mediastinum = lungs_and_mediastinum(img[0])
    assert right < mediastinum - 0.2 and left < mediastinum - 0.2
    steps = out["image_meta_dict"]["steps"]
    assert "invert:MONOCHROME1" in steps and out["image_meta_dict"]["window_source"] == "window"
    assert "pad_square(1955x1841)" in steps
    # the padding columns (black) are outside the body: 1841 → 1955 adds ~7 px per side at 256
    assert img[0, :, :6].max() == 0.0 and img[0, :, -6:].max() == 0.0


def test_without_the_inversion_the_image_would_be_a_negative():
    c = Compose([t for t in ingest_transforms(size=256, header_key=None).transforms if not isinstance(t, T.InvertMonochrome1d)])
    img = c({"image": get_testdata_file("RG1_UNCR.dcm")})["image"][0]
    (right, left), mediastinum = lungs_and_mediastinum(img)
    assert right > mediastinum and left > mediastinum


def test_compressed_and_uncompressed_agree(rg1):
    np.testing.assert_array_equal(rg1["UNCR"]["image"], rg1["J2KR"]["image"])
    diff = np.abs(rg1["UNCR"]["image"] - rg1["J2KI"]["image"])
    assert diff.mean() < 0.002 and diff.max() < 0.05


def test_real_no_preamble_cr(chain):
    out = chain({"image": str(CR_MONO1_CHEST)})
    (right, left), mediastinum = lungs_and_mediastinum(out["image"][0])
    assert right < mediastinum - 0.2 and left < mediastinum - 0.2
    assert out["image_meta_dict"]["steps"][0] == "load:dicom"


# tolerance on |decoded − expected| (mean, max) per storage; values are in [0, 1]
TOLERANCE = {"j2k_lossy": (0.01, 0.06), "jpeg_baseline": (0.02, 0.2)}


@pytest.mark.parametrize("name", [v.name for _, v in SITE_VARIANTS])
def test_built_variants_decode_to_the_source_image(built, name):
    """Each header variant (photometric, bits, rescale, LUTs, syntax, window function) must give back the PNG."""
    f = built.site.by_name(name)
    out = ingest_transforms(size=256, header_key=None)({"image": str(built.site.root / f.rel)})
    img = out["image"][0].astype(np.float64)
    expected = T.square_fit(f.expected, "pad")
    if f.variant.window is None and not f.variant.voi_lut:  # percentile window: a contrast stretch of the PNG
        assert out["image_meta_dict"]["window_source"] == "percentile"
        assert np.corrcoef(img.ravel(), expected.ravel())[0, 1] > 0.995
        lo, hi = np.percentile(expected, [0.5, 99.5])
        stretched = np.clip((expected - lo) / (hi - lo), 0, 1)
        assert np.abs(img - stretched).mean() < 0.03
        return
    mean_tol, max_tol = TOLERANCE.get(f.variant.syntax, (0.001, 0.002 if not f.variant.voi_function else 0.01))
    err = np.abs(img - expected)
    assert err.mean() < mean_tol and err.max() < max_tol, (err.mean(), err.max())


@pytest.mark.parametrize("fit", ["pad", "crop"])
def test_deferred_window_affine_gives_the_same_images(built, fit):
    """The fast path (clip at full size, affine after the resize) equals window-then-resize."""
    for f in built.site.files:
        path = str(built.site.root / f.rel)
        fast = ingest_transforms(size=100, fit=fit, header_key=None, defer=True)({"image": path})
        slow = ingest_transforms(size=100, fit=fit, header_key=None, defer=False)({"image": path})
        np.testing.assert_allclose(fast["image"], slow["image"], atol=2e-6, err_msg=f.variant.name)
        assert fast["image_meta_dict"]["steps"] == slow["image_meta_dict"]["steps"]
        assert "pending" not in fast["image_meta_dict"] or fast["image_meta_dict"]["pending"] is None


def test_voi_window_alone_returns_display_values(built):
    f = built.site.by_name("cr_mono1_15bit")
    d = T.LoadRadiographd("image", header_key=None)({"image": str(built.site.root / f.rel)})
    for defer in (False, True):
        out = T.ChannelFirstd("image")(T.VOIWindowd("image", defer=defer)(dict(d, image_meta_dict=dict(d["image_meta_dict"], steps=[]))))
        assert 0.0 <= out["image"].min() and out["image"].max() <= 1.0 and out["image"].max() > 0.9


def test_nonsquare_mono1_is_padded_black_after_inversion(built):
    f = built.site.by_name("mono1_nonsquare_rle")
    out = ingest_transforms(size=256, header_key=None)({"image": str(built.site.root / f.rel)})
    img = out["image"][0]
    assert img[:, :28].max() == 0.0 and img[:, -28:].max() == 0.0  # 256 wide, 200 stored: 28 black each side
    assert img[:, 28:228].mean() > 0.2
    crop = ingest_transforms(size=200, fit="crop", header_key=None)({"image": str(built.site.root / f.rel)})["image"][0]
    assert crop.shape == (200, 200) and crop[:, :5].mean() > 0.05  # no black bars when cropping


def test_percentile_mode_ignores_header_windows(built):
    f = built.site.by_name("sigmoid_multi_window")
    out = ingest_transforms(window="percentile", header_key=None)({"image": str(built.site.root / f.rel)})
    assert out["image_meta_dict"]["window_source"] == "percentile"


def test_png_8bit_is_kept_as_published(chain):
    path = CXR_DIR / "nih__00000061_012.png"
    from PIL import Image

    with Image.open(path) as im:
        png = np.asarray(im, dtype=np.float32) / 255.0
    out = chain({"image": str(path)})
    np.testing.assert_allclose(out["image"][0], png, atol=1e-6)
    assert out["image_meta_dict"]["window_source"] == "full_range"


def test_custom_keys_and_header_passthrough(built):
    f = built.site.by_name("mono2_12bit_window")
    from xraymunit.ingestion.rules import scan_header

    scan = scan_header(built.site.root / f.rel).to_json()
    c = ingest_transforms(size=64, keys="xray", header_key="hdr")
    out = c({"xray": str(built.site.root / f.rel), "hdr": scan})
    assert out["xray"].shape == (1, 64, 64) and "xray_meta_dict" in out


# ------------------------------------------------------------------ pieces

def test_window_functions_follow_the_dicom_formulas():
    x = np.array([0.0, 1023.5, 1024.0, 2047.0, 4095.0], dtype=np.float32)
    lin = T.apply_window(x, center=1024, width=2048, function="LINEAR")
    # LINEAR: (x - (c - 0.5)) / (w - 1) + 0.5, clipped
    np.testing.assert_allclose(lin, np.clip((x - 1023.5) / 2047 + 0.5, 0, 1), atol=1e-6)
    exact = T.apply_window(x, center=1024, width=2048, function="LINEAR_EXACT")
    np.testing.assert_allclose(exact, np.clip((x - 1024) / 2048 + 0.5, 0, 1), atol=1e-6)
    sig = T.apply_window(x, center=1024, width=2048, function="SIGMOID")
    assert sig[2] == pytest.approx(0.5) and 0 < sig[0] < sig[-1] < 1


def test_robust_range_is_close_to_full_percentiles():
    rng = np.random.default_rng(0)
    x = rng.normal(2000, 300, size=(1024, 1024)).astype(np.float32)
    lo, hi = T.robust_range(x, (0.5, 99.5))
    full = np.percentile(x, [0.5, 99.5])
    assert abs(lo - full[0]) < 15 and abs(hi - full[1]) < 15


def test_square_fit_and_area_resize():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    padded = T.square_fit(x, "pad")
    assert padded.shape == (4, 4) and padded[3].sum() == 0 and padded[0, 0] == 1  # 1 row of black at the bottom
    assert T.square_fit(x, "crop").shape == (3, 3)
    img = np.random.default_rng(1).random((512, 512)).astype(np.float32)
    small = T.area_resize(img, 128)
    np.testing.assert_allclose(small, img.reshape(128, 4, 128, 4).mean(axis=(1, 3)), atol=1e-5)
    odd = T.area_resize(img[:500, :500], 128)
    assert abs(float(odd.mean()) - float(img[:500, :500].mean())) < 1e-3
    up = T.area_resize(img[:64, :64], 128)
    assert up.shape == (128, 128)


def test_fits_and_window_modes_match_the_stage_options():
    from xraymunit.ingestion import settings

    assert T.FITS == settings.FITS and T.WINDOW_MODES == settings.WINDOW_MODES and T.CONTRASTS == settings.CONTRASTS


def test_bad_options_are_rejected():
    with pytest.raises(ValueError):
        T.SquareFitd("image", fit="stretch")
    with pytest.raises(ValueError):
        T.VOIWindowd("image", percentiles=(99, 1))


def test_equalize_gives_an_image_and_a_darker_copy_the_same_histogram():
    """A monotone intensity change (darker exposure) is undone: the intensity shortcut is gone."""
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0.6, 0.15, (128, 128)), 0, 1).astype(np.float32)
    darker = x ** 1.8
    assert abs(float(np.median(x)) - float(np.median(darker))) > 0.1
    ex, ed = T.standardise_contrast(x, "equalize"), T.standardise_contrast(darker, "equalize")
    assert ex.dtype == np.float32 and 0.0 <= ex.min() and ex.max() <= 1.0
    assert np.abs(ex - ed).max() < 5e-3  # within the 1,024-bin resolution
    assert abs(float(ex.mean()) - 0.5) < 0.02  # flat histogram
    assert np.array_equal(T.standardise_contrast(x, "none"), x)
    clahe = T.standardise_contrast(x, "clahe")
    assert clahe.shape == x.shape and 0.0 <= clahe.min() and clahe.max() <= 1.0 and not np.allclose(clahe, x)
    with pytest.raises(ValueError, match="contrast"):
        T.standardise_contrast(x, "bogus")


def test_contrast_runs_before_the_square_fit_so_padding_stays_black():
    chain = ingest_transforms(size=64, header_key=None, contrast="equalize")
    out = chain({"image": get_testdata_file("RG1_UNCR.dcm")})
    img, meta = out["image"][0], out[T.meta_key("image")]
    assert "contrast:equalize" in meta["steps"]
    steps = meta["steps"]
    assert steps.index("contrast:equalize") < next(i for i, s in enumerate(steps) if "_square" in s)
    assert img.shape == (64, 64) and img.min() == 0.0 and img.max() <= 1.0
