"""The resumable state of a run: an append-only JSONL journal in the private folder."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from xraymunit.io import atomic, outdir
from xraymunit.ingestion.settings import JOURNAL_PREFIX


class Journal:
    """Append-only JSONL log in the private folder: the resume state of a run.

    One writer (the main process). Lines are flushed at least every 0.25 s and fsynced every
    few seconds; a torn last line after a crash is ignored on read. A record lost that way
    only means its file is processed again on resume (entries are written before records).
    """

    def __init__(self, path: Path) -> None:
        outdir.check_write_path(path)  # appending through a planted link would leak PatientIDs outside --out
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fp = open(path, "a", encoding="utf-8")
        if self._fp.tell() > 0 and not _ends_with_newline(path):
            self._fp.write("\n")  # end a torn last line: the next record must not be glued to it
        self._last_flush = self._last_sync = time.monotonic()

    def write(self, record: dict) -> None:
        self._fp.write(json.dumps(record, separators=(",", ":"), default=atomic._json_default) + "\n")
        now = time.monotonic()
        if now - self._last_flush > 0.25:
            self._fp.flush()
            self._last_flush = now
            if now - self._last_sync > 5.0:
                os.fsync(self._fp.fileno())
                self._last_sync = now

    def close(self) -> None:
        if not self._fp.closed:
            self._fp.flush()
            os.fsync(self._fp.fileno())
            self._fp.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fp:
        fp.seek(-1, os.SEEK_END)
        return fp.read(1) == b"\n"


def journal_name(shard: tuple[int, int] | None) -> str:
    return f"{JOURNAL_PREFIX}.jsonl" if shard is None else f"{JOURNAL_PREFIX}.shard-{shard[0]}-of-{shard[1]}.jsonl"


def files_list_name(shard: tuple[int, int] | None) -> str:
    return "files.txt" if shard is None else f"files.shard-{shard[0]}-of-{shard[1]}.txt"


def files_list_bytes(rels: list[str]) -> bytes:
    """The content of files*.txt: one relative path a line, as the bytes of the names on disk
    (names that are not UTF-8 included; `read_files_list` gives them back unchanged). A name
    with a line break, a backslash or a leading double quote is written as a JSON string."""
    lines = (json.dumps(r) if ("\n" in r or "\r" in r or "\\" in r or r.startswith('"')) else r for r in rels)
    return "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")


def read_files_list(path: Path) -> list[str]:
    """The relative paths of a files*.txt (see `files_list_bytes`)."""
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    return [json.loads(line) if line.startswith('"') else line for line in text.split("\n") if line]


def read_journals(private: Path) -> Iterator[dict]:
    for path in sorted(private.glob(f"{JOURNAL_PREFIX}*.jsonl")):
        with open(path, encoding="utf-8") as fp:
            for line in fp:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # torn line from a killed run


# decode results that say nothing about the file as it is now: tried again on the next run
RETRIED = ("changed_during_ingest", "missing_file")


@dataclass
class FileState:
    """What the journal knows about one file (latest records for the current settings)."""

    header: dict | None = None
    image: dict | None = None


def load_state(private: Path, fingerprint: str) -> dict[str, FileState]:
    state: dict[str, FileState] = {}
    for rec in read_journals(private):
        if rec.get("fp") != fingerprint or rec.get("type") not in ("header", "image"):
            continue
        st = state.setdefault(rec["rel"], FileState())
        if rec["type"] == "header":
            if st.header is None or (st.header["size"], st.header["mtime_ns"]) != (rec["size"], rec["mtime_ns"]) \
                    or _ino(st.header) != _ino(rec):
                st.image = None  # a new version of the file: its old decode does not count
            st.header = rec
        else:
            st.image = rec
    return state


def _ino(header: dict) -> int | None:
    return ((header.get("scan") or {}).get("file") or {}).get("ino")


def status_of(st: FileState) -> tuple[str, str | None, str | None]:
    scan = st.header["scan"] if st.header else {"status": "failed", "reason": "decode_error", "detail": "no header"}
    if scan["status"] != "ok":
        return scan["status"], scan.get("reason"), scan.get("detail")
    if st.image is None:
        return "failed", "decode_error", "not decoded (interrupted run or incomplete shard)"
    return st.image["status"], st.image.get("reason"), st.image.get("detail")
