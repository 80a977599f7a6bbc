"""PNG/JPEG reading: grey channel, bit depth, colour conversion and orientation are recorded."""

import io

import numpy as np
import pytest
from PIL import Image

from fixtures.dicom_builder import CXR_DIR
from xraymunit.io import raster

REAL_PNG = CXR_DIR / "nih__00001280_004.png"


def real_grey() -> np.ndarray:
    with Image.open(REAL_PNG) as im:
        return np.asarray(im.convert("L"))


def test_sniff_by_content_not_extension():
    assert raster.sniff_format(REAL_PNG.read_bytes()[:16]) == "png"
    buf = io.BytesIO()
    Image.fromarray(real_grey()).save(buf, format="JPEG")
    assert raster.sniff_format(buf.getvalue()[:16]) == "jpeg"
    assert raster.sniff_format(b"DICM" + b"\0" * 12) is None


def test_grey8_png_is_unchanged():
    img = raster.read_raster(REAL_PNG)
    assert img.bits == 8 and img.array.dtype == np.uint8 and img.steps == ["grey8"]
    np.testing.assert_array_equal(img.array, real_grey())


def test_grey16_png_keeps_16_bits(tmp_path):
    grey = real_grey().astype(np.uint16) * 257 + 3
    path = tmp_path / "x16.png"
    Image.fromarray(grey).save(path)
    img = raster.read_raster(path)
    assert img.bits == 16 and img.array.dtype == np.uint16 and "grey16" in img.steps
    np.testing.assert_array_equal(img.array, grey)
    assert raster.read_raster_header(path).bits == 16


def test_rgb_of_grey_is_detected_and_true_colour_uses_luma(tmp_path):
    grey = real_grey()
    Image.fromarray(grey).convert("RGB").save(tmp_path / "grey_rgb.png")
    img = raster.read_raster(tmp_path / "grey_rgb.png")
    assert img.steps == ["rgb_grey"]
    np.testing.assert_array_equal(img.array, grey)

    rgb = np.stack([grey, grey // 2, 255 - grey], axis=2).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    img = raster.read_raster(tmp_path / "colour.png")
    assert img.steps == ["rgb_to_luma(ITU-R 601)"]
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert np.abs(img.array.astype(float) - luma).max() <= 1.0


def test_rgba_and_palette(tmp_path):
    grey = real_grey()
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 200)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    assert raster.read_raster(tmp_path / "a.png").steps == ["rgb_grey"]
    Image.fromarray(grey).convert("P").save(tmp_path / "p.png")
    img = raster.read_raster(tmp_path / "p.png")
    assert img.array.shape == grey.shape and img.bits == 8


def test_exif_rotation_is_applied_and_recorded(tmp_path):
    grey = real_grey()[:, :200]  # non-square so a rotation is visible in the shape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    Image.fromarray(grey).save(tmp_path / "r.jpg", exif=exif, quality=95)
    header = raster.read_raster_header(tmp_path / "r.jpg")
    img = raster.read_raster(tmp_path / "r.jpg")
    assert img.array.shape == (200, 256) == (header.rows, header.columns)
    assert img.steps[0] == "exif_orientation(6)"
    assert np.corrcoef(img.array.ravel().astype(float), np.rot90(grey, -1).ravel().astype(float))[0, 1] > 0.98


def test_truncated_png_raises(tmp_path):
    data = REAL_PNG.read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    assert raster.read_raster_header(tmp_path / "t.png").rows == 256  # the header is intact …
    with pytest.raises(OSError):
        raster.read_raster(tmp_path / "t.png")  # … the pixels are not
