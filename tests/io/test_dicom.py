"""Header scan, skip classification, metadata and pixel reading on real and built DICOM files."""

import json
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEGLSLossless

from fixtures.dicom_builder import CR_MONO1_CHEST, _small, write_dataset, write_deflate_bomb
from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from xraymunit.ingestion import demographics, rules
from xraymunit.io import dicom

RG1_UNCR = get_testdata_file("RG1_UNCR.dcm")
RG1_J2KR = get_testdata_file("RG1_J2KR.dcm")


# ------------------------------------------------------------------ real files

def test_real_philips_cr_header_metadata_and_privacy():
    scan = rules.scan_header(RG1_UNCR)
    assert scan.status == "ok", scan
    m = scan.meta
    assert m["modality"] == "CR" and m["photometric"] == "MONOCHROME1" and m["bits_stored"] == 15
    assert (m["rows"], m["columns"]) == (1955, 1841)
    assert m["sex"] == "F" and m["view_position"] == "PA" and m["body_part"] == "CHEST"
    assert m["manufacturer"] == "Philips Medical Systems"
    assert m["age"] == 64.0  # born 1940-03-05, studied 2004-08-26; no PatientAge element
    assert m["spacing_row_mm"] is None and m["spacing_source"] is None  # PixelSpacing 0.000 is ignored
    assert m["transfer_syntax"] == "Explicit VR Little Endian"
    assert scan.ids["patient_id"] == "9RG1"
    text = json.dumps(scan.meta)
    assert "19400305" not in text and "9RG1" not in text  # no birth date or ID among the shareable facts
    assert scan.intensity["window_center"] == 15000 and scan.intensity["window_width"] == 30000


def test_real_file_without_preamble_is_read_with_detected_syntax():
    head = CR_MONO1_CHEST.read_bytes()[:132]
    assert head[128:132] != b"DICM"
    scan = rules.scan_header(CR_MONO1_CHEST)
    assert scan.status == "ok", scan
    assert scan.pixel["forced"] is True
    assert scan.meta["transfer_syntax"] == "Implicit VR Little Endian"
    assert scan.meta["bits_stored"] == 10 and scan.meta["photometric"] == "MONOCHROME1"
    arr = dicom.read_stored_pixels(CR_MONO1_CHEST, scan.pixel)
    assert arr.shape == (440, 440)
    assert 0 <= arr.min() and arr.max() <= 1023  # 10 bits stored
    ds = pydicom.dcmread(CR_MONO1_CHEST, force=True)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    np.testing.assert_array_equal(arr, ds.pixel_array)


def test_native_read_matches_pydicom_and_j2k_lossless_matches_uncompressed():
    unc = rules.scan_header(RG1_UNCR)
    j2k = rules.scan_header(RG1_J2KR)
    assert j2k.status == "ok" and j2k.meta["transfer_syntax"] == "JPEG 2000 Image Compression (Lossless Only)"
    assert j2k.pixel["length"] == -1 and unc.pixel["length"] == 1955 * 1841 * 2
    a = dicom.read_stored_pixels(RG1_UNCR, unc.pixel)
    b = dicom.read_stored_pixels(RG1_J2KR, j2k.pixel)
    np.testing.assert_array_equal(a, pydicom.dcmread(RG1_UNCR).pixel_array)
    np.testing.assert_array_equal(a, b)


def test_jpeg_ls_decodes_like_its_uncompressed_twin(tmp_path):
    """pydicom cannot encode JPEG-LS; re-label pydicom's own lossless JPEG-LS MR as a DX."""
    src = pydicom.dcmread(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    src.Modality = "DX"
    path = write_dataset(src, tmp_path / "jls.dcm")
    scan = rules.scan_header(path)
    assert scan.status == "ok" and scan.pixel["transfer_syntax"] == JPEGLSLossless
    arr = dicom.read_stored_pixels(path, scan.pixel)
    np.testing.assert_array_equal(arr, pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array)


def test_unchanged_file_is_required_between_passes(tmp_path):
    path = shutil.copy(RG1_UNCR, tmp_path / "rg1.dcm")
    scan = rules.scan_header(path)
    with open(path, "ab") as fp:
        fp.write(b"\0\0")
    with pytest.raises(dicom.PixelError) as err:
        dicom.read_stored_pixels(path, scan.pixel)
    assert err.value.reason == "changed_during_ingest"


# ------------------------------------------------------------------ every reason

EXPECTED = {
    "empty_file": ("failed", "empty_file"),
    "not_dicom": ("skipped", "not_dicom"),
    "truncated": ("failed", "truncated"),
    "truncated_encapsulated": ("failed", "truncated"),
    "no_pixel_data": ("failed", "no_pixel_data"),
    "sr_document": ("skipped", "sr_document"),
    "rt_object": ("skipped", "rt_object"),
    "non_image_object": ("skipped", "non_image_object"),
    "modality": ("skipped", "modality"),
    "colour": ("skipped", "colour"),
    "multi_frame": ("skipped", "multi_frame"),
    "zero_size": ("failed", "zero_size"),
    "absurd_dimensions": ("failed", "absurd_dimensions"),
    "absurd_dimensions_tiny": ("failed", "absurd_dimensions"),
    "unsupported_transfer_syntax": ("failed", "unsupported_transfer_syntax"),
    "unsupported_transfer_syntax_private": ("failed", "unsupported_transfer_syntax"),
    "unsupported_pixel_format": ("failed", "unsupported_pixel_format"),
    "header_error": ("failed", "header_error"),
    "dicomdir": ("skipped", "dicomdir"),
    "decompression_bomb": ("failed", "decompression_bomb"),
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_every_header_reason(built, case):
    scan = rules.scan_header(built.broken_root / built.broken[case])
    assert (scan.status, scan.reason) == EXPECTED[case], scan.detail
    assert scan.detail and str(built.broken_root) not in scan.detail
    assert scan.reason in dicom.REASONS


def test_decode_error_surfaces_in_the_pixel_pass(built):
    path = built.broken_root / built.broken["decode_error"]
    scan = rules.scan_header(path)
    assert scan.status == "ok"  # the header is fine; the codestream is junk
    with dicom.quiet_pydicom(), pytest.raises(dicom.PixelError) as err:
        dicom.read_stored_pixels(path, scan.pixel)
    assert err.value.reason == "decode_error"


def test_missing_file_is_unreadable(tmp_path):
    scan = rules.scan_header(tmp_path / "gone.dcm")
    assert (scan.status, scan.reason) == ("failed", "unreadable")


def test_dicomdir_lists_its_files(built):
    scan = rules.scan_header(built.site.root / "media" / "DICOMDIR")
    assert scan.reason == "dicomdir"
    assert len(scan.referenced_files) == 2
    assert all((built.site.root / "media" / r).is_file() for r in scan.referenced_files)


def test_missing_decoder_plugin_is_reported_with_a_fix():
    from pydicom.pixels import get_decoder

    decoder = get_decoder(JPEGLSLossless)
    saved = dict(decoder._available), dict(decoder._unavailable)
    try:
        for label in list(decoder._available):
            decoder.remove_plugin(label)
        problem = dicom.decoder_problem(JPEGLSLossless)
    finally:
        decoder._available.update(saved[0])
        decoder._unavailable.clear()
        decoder._unavailable.update(saved[1])
    assert problem and "install" in problem and "JPEG-LS" in problem
    assert dicom.decoder_problem(JPEGLSLossless) is None


def test_modality_list_is_configurable(built):
    path = built.broken_root / built.broken["modality"]
    assert rules.scan_header(path, modalities=("CR", "DX")).reason == "modality"
    assert rules.scan_header(path, modalities=("MR",)).status == "ok"


def test_cr_sop_class_without_modality_counts_as_cr(tmp_path):
    ds = _small("NOMOD")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    del ds.Modality
    scan = rules.scan_header(write_dataset(ds, tmp_path / "x.dcm"))
    assert scan.status == "ok" and scan.meta["modality"] == "CR"


# ------------------------------------------------------------------ metadata helpers

@pytest.mark.parametrize("value,years", [("064Y", 64.0), ("018M", 1.5), ("003W", 0.06), ("010D", 0.03),
                                         ("95Y", 95.0), ("abc", None), ("", None)])
def test_age_strings(value, years):
    assert demographics.parse_age_string(value) == years


def test_age_from_dates_is_capped_and_birth_date_never_returned():
    ds = pydicom.Dataset()
    ds.PatientBirthDate, ds.StudyDate = "19000101", "20200101"
    assert demographics.patient_age(ds) == 90.0
    ds.PatientBirthDate, ds.StudyDate = "19800615", "20200614"
    assert demographics.patient_age(ds) == 39.0  # the day before the 40th birthday
    ds.PatientAge = "097Y"
    assert demographics.patient_age(ds) == 90.0
    ds = pydicom.Dataset()
    with dicom.quiet_pydicom():  # pydicom warns about the dotted dates; ingest reads them anyway
        ds.PatientBirthDate, ds.AcquisitionDate = "1950.02.01", "1993.02.24"  # ACR-NEMA dates, no StudyDate
        assert demographics.patient_age(ds) == 43.0
    assert demographics.patient_age(pydicom.Dataset()) is None


def test_spacing_prefers_imager_and_ignores_zero():
    ds = pydicom.Dataset()
    ds.PixelSpacing = [0.0, 0.0]
    assert dicom.pixel_spacing(ds) == (None, None, None)
    ds.PixelSpacing = [0.2, 0.25]
    assert dicom.pixel_spacing(ds) == (0.2, 0.25, "PixelSpacing")
    ds.ImagerPixelSpacing = [0.143, 0.143]
    assert dicom.pixel_spacing(ds) == (0.143, 0.143, "ImagerPixelSpacing")
    ds.ImagerPixelSpacing = [0.0, 0.0]
    assert dicom.pixel_spacing(ds)[2] == "PixelSpacing"


def test_bits_stored_masking_and_sign_extension():
    raw = np.array([[0xF123, 0x0FFF]], dtype=np.uint16)  # overlay bits above bit 11
    np.testing.assert_array_equal(dicom.mask_bits_stored(raw.copy(), 12, False), [[0x0123, 0x0FFF]])
    signed = np.array([[0x0800, 0x07FF, 0x0FFF]], dtype=np.uint16).view(np.int16)  # 12-bit two's complement
    np.testing.assert_array_equal(dicom.mask_bits_stored(signed.copy(), 12, True), [[-2048, 2047, -1]])


def test_luts_are_read(built):
    f = built.site.by_name("voi_lut_sequence_10bit")
    ds = pydicom.dcmread(built.site.root / f.rel)
    first, bits, data = dicom.read_lut(ds, "VOILUTSequence")
    assert (first, bits, len(data)) == (0, 16, 1024) and data[-1] == 65535
    f = built.site.by_name("modality_lut_sequence")
    ds = pydicom.dcmread(built.site.root / f.rel)
    first, bits, data = dicom.read_lut(ds, "ModalityLUTSequence")
    assert (first, len(data)) == (0, 4096) and data[100] == 200


# ------------------------------------------------------------------ deflate bombs and bounded decoding

def _deflated_copy(tmp_path):
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = _small("DEFL01")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, ds


class InflateCounter:
    """Counts the bytes dicom inflates (wraps, does not replace, the inflater)."""

    def __init__(self, monkeypatch):
        self.total = 0
        original = dicom.Inflater.read

        def read(inflater, n, _original=original):
            out = _original(inflater, n)
            self.total += len(out)
            return out

        monkeypatch.setattr(dicom.Inflater, "read", read)


def test_deflated_dataset_is_read_with_bounded_inflation(tmp_path):
    path, ds = _deflated_copy(tmp_path)
    scan = rules.scan_header(path)
    assert scan.status == "ok", scan.detail
    assert scan.meta["transfer_syntax"] == "Deflated Explicit VR Little Endian"
    assert scan.pixel["deflate_start"] > 0 and scan.pixel["offset"] > 0
    np.testing.assert_array_equal(dicom.read_stored_pixels(path, scan.pixel), ds.pixel_array & 0x0FFF)
    legacy = {**scan.pixel, "offset": -2, "deflate_start": -1}  # journal record of an earlier version
    np.testing.assert_array_equal(dicom.read_stored_pixels(path, legacy), ds.pixel_array & 0x0FFF)


def test_deflate_bomb_pixel_element_is_refused_before_inflating_it(tmp_path, monkeypatch):
    path = write_deflate_bomb(tmp_path / "bomb.dcm", 128 << 20)  # 128 MiB of pixels for a 256x256 image
    assert path.stat().st_size < 200_000
    counter = InflateCounter(monkeypatch)
    scan = rules.scan_header(path)
    assert (scan.status, scan.reason) == ("failed", "decompression_bomb")
    assert "decompression_bomb" in dicom.FAIL_REASONS
    assert counter.total < 2 << 20  # the header only, not the 128 MiB


def test_deflate_bomb_trailing_data_stops_at_the_bound(tmp_path, monkeypatch):
    path = write_deflate_bomb(tmp_path / "bomb.dcm", 256 * 256 * 2, trailing=96 << 20)
    counter = InflateCounter(monkeypatch)
    scan = rules.scan_header(path)
    assert (scan.status, scan.reason) == ("failed", "decompression_bomb"), scan.detail
    assert counter.total <= 256 * 256 * 2 + dicom.INFLATE_SLACK + 2 * dicom.INFLATE_CHUNK  # not 96 MiB
    ok = write_deflate_bomb(tmp_path / "fine.dcm", 256 * 256 * 2, trailing=1 << 20)  # some padding is fine
    assert rules.scan_header(ok).status == "ok"


def test_deflate_bomb_peak_memory_stays_flat(tmp_path):
    """In a fresh process: the high-water mark of scanning a 256 MiB bomb stays near the baseline."""
    import subprocess
    import sys

    path = write_deflate_bomb(tmp_path / "bomb.dcm", 512 * 512 * 2, rows=512, columns=512, trailing=256 << 20)
    code = (
        "import resource, sys\n"
        "from xraymunit.ingestion import rules\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "scan = rules.scan_header(sys.argv[1])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(scan.reason, (after - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    reason, grown_mb = out.stdout.split()
    assert reason == "decompression_bomb"
    assert int(grown_mb) < 64, f"peak RSS grew {grown_mb} MB while scanning a 256 MiB bomb"


def test_codestream_larger_than_the_header_is_not_decoded(built, tmp_path):
    f = built.site.by_name("mono2_12bit_j2k_lossless")
    ds = pydicom.dcmread(built.site.root / f.rel)
    rows, cols = ds.Rows, ds.Columns
    ds.Rows, ds.Columns = rows // 2, cols // 2  # the codestream still says rows x cols
    path = write_dataset(ds, tmp_path / "lying.dcm")
    scan = rules.scan_header(path)
    assert scan.status == "ok"
    with open(path, "rb") as fp:
        assert dicom.codestream_problem(fp, scan.pixel["offset"], rows, cols) is None
    with dicom.quiet_pydicom(), pytest.raises(dicom.PixelError) as err:
        dicom.read_stored_pixels(path, scan.pixel)
    assert err.value.reason == "decode_error" and f"declares {rows}x{cols}" in err.value.detail


# ------------------------------------------------------------------ files that change between the passes

def test_deleted_or_replaced_file_between_passes(tmp_path):
    import os

    path = shutil.copy(RG1_UNCR, tmp_path / "rg1.dcm")
    scan = rules.scan_header(path)
    st = os.stat(path)
    other = shutil.copy(RG1_UNCR, tmp_path / "other.dcm")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, path)  # same size, same mtime, another file (inode)
    with pytest.raises(dicom.PixelError) as err:
        dicom.read_stored_pixels(path, scan.pixel)
    assert err.value.reason == "changed_during_ingest"
    path.unlink()
    with pytest.raises(dicom.PixelError) as err:
        dicom.read_stored_pixels(path, scan.pixel)
    assert err.value.reason == "missing_file"


def test_details_never_quote_exception_messages():
    exc = OSError("cannot identify image file '/data/Smith Jr 19430517/IM1.png' PatientName=Doe^Jane")
    detail = dicom.safe_detail(exc, "decode_error")
    assert detail == f"OSError: {dicom.FAIL_REASONS['decode_error']}"
    assert all(word not in detail for word in ("Smith", "19430517", "IM1", "Doe"))
