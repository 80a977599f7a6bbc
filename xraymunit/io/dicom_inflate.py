"""Bounded inflation of Deflated Explicit VR Little Endian datasets.

pydicom inflates a deflated file whole, in memory: a 1 MB file can inflate to gigabytes.
Here the stream is inflated piecewise: the header up to MAX_INFLATED_HEADER bytes, the
pixel data up to what the image the header describes needs.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, UID

# Deflated datasets are inflated in bounded steps, never whole: the header (everything before the
# Pixel Data) may inflate to at most MAX_INFLATED_HEADER bytes, and the whole dataset to at most the
# header + the image's Rows x Columns x BitsAllocated + INFLATE_SLACK (trailing elements, padding).
MAX_INFLATED_HEADER = 16 << 20
INFLATE_SLACK = 8 << 20
INFLATE_CHUNK = 1 << 20

PIXEL_DATA = 0x7FE00010
FLOAT_PIXEL_DATA = (0x7FE00008, 0x7FE00009)


class InflateLimit(Exception):
    """A deflated dataset inflates past its bound (FAIL_REASONS "decompression_bomb")."""


class Inflater:
    """Raw-deflate stream of a Deflated Explicit VR dataset, inflated piecewise on demand:
    memory stays at one chunk (or what the caller asks for), never the whole inflated data."""

    def __init__(self, fp: BinaryIO, start: int) -> None:
        self.fp = fp
        fp.seek(start)
        self.z = zlib.decompressobj(-zlib.MAX_WBITS)
        self.total = 0  # inflated bytes produced so far
        self.done = False

    def read(self, n: int) -> bytearray:
        """Up to `n` inflated bytes (fewer only at the end of the stream)."""
        out = bytearray()
        while len(out) < n and not self.done:
            if self.z.eof:
                self.done = True
                break
            data = self.z.unconsumed_tail or self.fp.read(INFLATE_CHUNK)
            if not data:
                self.done = True  # the file ends (a truncated stream ends here too)
                break
            try:
                chunk = self.z.decompress(data, n - len(out))
            except zlib.error:
                self.done = True
                raise
            out += chunk
            self.total += len(chunk)
        return out

    def skip(self, n: int) -> int:
        """Inflate and drop up to `n` bytes; returns how many there were."""
        skipped = 0
        while skipped < n and not self.done:
            skipped += len(self.read(min(INFLATE_CHUNK, n - skipped)))
        return skipped


@dataclass
class Deflated:
    """A deflated file's header, inflated no further than its Pixel Data element."""

    ds: Dataset
    inflater: Inflater  # `inflater.total` bytes inflated so far
    start: int  # file offset of the deflate stream
    element_offset: int  # offset, in the inflated dataset, of the element after the header
    element: bytes  # its first (up to) 12 bytes: the Pixel Data element header, if any


def maybe_deflated(head: bytes) -> bool:
    """Cheap pre-check on the first bytes: file meta naming the Deflated transfer syntax."""
    return head[128:132] == b"DICM" and str(DeflatedExplicitVRLittleEndian).encode() in head


def read_deflated(fp: BinaryIO, start: int) -> Deflated | None:
    """Header of a Deflated Explicit VR Little Endian file, inflating at most MAX_INFLATED_HEADER
    bytes (pydicom inflates the whole file in memory: a 1 MB file can inflate to gigabytes).
    None when the file meta does not name that transfer syntax."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    fp.seek(start)
    read_preamble(fp, False)
    meta = _read_file_meta_info(fp)
    if UID(str(meta.get("TransferSyntaxUID", ""))) != DeflatedExplicitVRLittleEndian:
        return None
    stream_start = fp.tell()
    inflater = Inflater(fp, stream_start)
    buf = bytearray()
    want = min(1 << 20, MAX_INFLATED_HEADER)
    while True:
        buf += inflater.read(want - len(buf))
        bio = DicomBytesIO(bytes(buf))
        bio.is_little_endian, bio.is_implicit_VR = True, False
        error: Exception | None = None
        try:
            ds = read_dataset(bio, False, True, stop_when=lambda tag, vr, length: tag in (PIXEL_DATA, *FLOAT_PIXEL_DATA))
        except Exception as exc:  # noqa: BLE001 - cut inside an element: inflate more, else report
            error = exc
        pos = bio.tell()
        tag = None
        if error is None and len(buf) - pos >= 4:
            group, elem = struct.unpack_from("<HH", buf, pos)
            tag = (group << 16) | elem
        if tag in (PIXEL_DATA, *FLOAT_PIXEL_DATA) or inflater.done:
            if error is not None:
                raise error
            ds.file_meta = meta
            ds.set_original_encoding(False, True, ds._character_set)
            if len(buf) - pos < 12:  # the 12-byte element header may straddle what was inflated
                buf += inflater.read(12 - (len(buf) - pos))
            return Deflated(ds, inflater, stream_start, pos, bytes(buf[pos:pos + 12]))
        if len(buf) >= MAX_INFLATED_HEADER:
            raise InflateLimit(f"header inflates to more than {MAX_INFLATED_HEADER >> 20} MiB")
        want = min(want * 4, MAX_INFLATED_HEADER)
