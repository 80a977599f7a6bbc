"""SimpleITK (GDCM) decodes the compressed pixel data no pydicom plugin can; the manifest says so."""

import collections
import json
import os
import shutil
import signal

import numpy as np
import pydicom.pixels
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLosslessSV1, RLELossless

from fixtures.dicom_builder import _small, encode_jpeg_lossless, write_dataset
from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from xraymunit.ingestion import ingest, journal
from xraymunit.ingestion.rules import scan_header
from xraymunit.io import dicom, sitk_image
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


def without_rle_decoder(monkeypatch, syntaxes=(RLELossless,)):
    """pydicom as if no plugin could decode `syntaxes` (a missing decoder): get_decoder raises for them."""
    real = pydicom.pixels.get_decoder

    def get_decoder(uid):
        if uid in syntaxes:
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


# --------------------------------------------------------------------------- a crashing decoder (issue 23: 1)


def _states(out):
    private = out / "private"
    fp = json.loads((private / "journal.jsonl").open().readline())["fp"]
    return {rel: journal.status_of(st) for rel, st in journal.load_state(private, fp).items()}


def test_a_decoder_crash_costs_its_file_and_the_rerun_does_not_die_on_it(tmp_path, monkeypatch):
    """Fault injection: GDCM's read segfaults for one named file. It must run in a child process (the
    hook fails the test if it runs in this one), so the crash is recorded against that file."""
    src = tmp_path / "in"
    src.mkdir()
    for name in ("IM0001", "IM0002", "IM0003"):
        ds = _small(f"CRASH{name}")
        ds.compress(RLELossless, ds.pixel_array, generate_instance_uid=False)
        write_dataset(ds, src / f"{name}.dcm")
    without_rle_decoder(monkeypatch)
    real, test_pid = sitk_image.read_with_simpleitk, os.getpid()

    def gdcm_crashing_on_im0002(path):
        assert os.getpid() != test_pid, "GDCM ran in the ingest process: its crash would end the run"
        if os.path.basename(path) == "IM0002.dcm":
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(path)

    monkeypatch.setattr(sitk_image, "read_with_simpleitk", gdcm_crashing_on_im0002)
    first = ingest(src, tmp_path / "out", size=64, progress=False)
    states = _states(tmp_path / "out")
    assert states["IM0002.dcm"] == ("failed", "decoder_crashed",
                                    "SimpleITK (GDCM) crashed decoding it (signal 11, SIGSEGV)")
    assert states["IM0001.dcm"][0] == states["IM0003.dcm"][0] == "ok"
    assert first.by_reason == {"decoder_crashed": 1}
    again = ingest(src, tmp_path / "out", size=64, progress=False)  # the decoder would crash again: not retried
    assert again.decoded == 0 and _states(tmp_path / "out") == states


def _jpeg_lossless(path):
    ds = _small("FUZZ")
    ds.PixelData = encapsulate([encode_jpeg_lossless(ds.pixel_array.astype(np.int64), int(ds.BitsStored))])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    return write_dataset(ds, path)


def test_fuzzed_jpeg_lossless_headers_through_the_fallback_never_take_the_process_down(tmp_path, monkeypatch):
    """300 mutants of a JPEG-lossless file (1-4 random bytes in its first 60 codestream bytes: the markers,
    frame header and Huffman table) through the SimpleITK fallback: each decodes to the right shape or fails
    with a reason; a real GDCM segfault (a few per hundred with SimpleITK 2.x) is "decoder_crashed", and a
    crashing mutant ingested on its own is recorded so and not retried."""
    base = _jpeg_lossless(tmp_path / "base.dcm")
    spec = scan_header(base, modalities=None, min_side=1, max_side=1 << 16).pixel
    data = base.read_bytes()
    start = data.index(b"\xff\xd8\xff\xc3")  # SOI + SOF3: the codestream
    rng = np.random.default_rng(0)
    outcomes, crashers = collections.Counter(), []
    mutant = tmp_path / "mutant.dcm"
    for i in range(300):
        m = bytearray(data)
        for _ in range(rng.integers(1, 5)):
            m[start + int(rng.integers(2, 60))] = int(rng.integers(0, 256))
        mutant.write_bytes(bytes(m))
        st = os.stat(mutant)
        pixel = {**spec, "decoder": "simpleitk", "file_size": st.st_size, "mtime_ns": st.st_mtime_ns,
                 "ino": st.st_ino}
        try:
            arr = dicom.read_stored_pixels(mutant, pixel)
        except dicom.PixelError as exc:
            assert exc.reason in dicom.FAIL_REASONS, exc.reason
            outcomes[exc.reason] += 1
            if exc.reason == "decoder_crashed":
                crashers.append(bytes(m))
        else:
            assert arr.shape == (spec["rows"], spec["columns"])
            outcomes["ok"] += 1
    assert sum(outcomes.values()) == 300 and outcomes["decode_error"] + outcomes["unsupported_transfer_syntax"] > 0
    if not crashers:  # this GDCM survives every mutant: the fault-injection test above covers the path
        return
    src = tmp_path / "in"
    src.mkdir()
    (src / "crasher.dcm").write_bytes(crashers[0])
    without_rle_decoder(monkeypatch, (JPEGLosslessSV1,))
    for _ in range(2):  # the run, then the rerun: neither dies
        result = ingest(src, tmp_path / "out", size=64, progress=False)
        assert result.by_reason == {"decoder_crashed": 1}
