"""The ingest journal: append, reread, a torn last line, records of other settings ignored (reprocessed)."""

import json

from xraymunit.ingestion.journal import (FileState, Journal, files_list_bytes, journal_name, load_state,
                                         read_files_list, read_journals, status_of)


def header(rel, fp, size=10, mtime=1, status="ok", ino=7):
    return {"type": "header", "rel": rel, "fp": fp, "size": size, "mtime_ns": mtime,
            "scan": {"status": status, "reason": None if status == "ok" else "modality", "file": {"ino": ino}}}


def image(rel, fp, status="ok"):
    return {"type": "image", "rel": rel, "fp": fp, "status": status, "entry": "seg", "offset": 0}


def write(private, *records, name="journal.jsonl"):
    with Journal(private / name) as journal:
        for rec in records:
            journal.write(rec)


def test_append_and_reread(tmp_path):
    write(tmp_path, header("a.dcm", "fp1"), image("a.dcm", "fp1"))
    write(tmp_path, header("b.dcm", "fp1", status="skipped"))  # a second run appends
    assert [r["rel"] for r in read_journals(tmp_path)] == ["a.dcm", "a.dcm", "b.dcm"]
    state = load_state(tmp_path, "fp1")
    assert status_of(state["a.dcm"]) == ("ok", None, None)
    assert status_of(state["b.dcm"])[:2] == ("skipped", "modality")
    assert status_of(FileState(header=header("c", "fp1")))[:2] == ("failed", "decode_error")  # never decoded


def test_torn_last_line_is_ignored(tmp_path):
    write(tmp_path, header("a.dcm", "fp1"), image("a.dcm", "fp1"))
    line = json.dumps(image("b.dcm", "fp1"))
    with open(tmp_path / "journal.jsonl", "a") as fp:
        fp.write(json.dumps(header("b.dcm", "fp1")) + "\n" + line[: len(line) // 2])  # killed mid-write
    state = load_state(tmp_path, "fp1")
    assert state["a.dcm"].image is not None
    assert state["b.dcm"].header is not None and state["b.dcm"].image is None  # decoded again on resume
    write(tmp_path, header("c.dcm", "fp1"))  # the next run's first record is not glued to the torn line
    assert load_state(tmp_path, "fp1")["c.dcm"].header is not None


def test_other_settings_and_changed_files_are_processed_again(tmp_path):
    write(tmp_path, header("a.dcm", "old"), image("a.dcm", "old"), header("b.dcm", "new"), image("b.dcm", "new"))
    state = load_state(tmp_path, "new")
    assert set(state) == {"b.dcm"}  # a.dcm's records are of other settings: it is scanned and decoded again
    write(tmp_path, header("b.dcm", "new", size=11))  # the file changed: its old decode no longer counts
    assert load_state(tmp_path, "new")["b.dcm"].image is None
    write(tmp_path, image("b.dcm", "new"), header("b.dcm", "new", size=11, ino=8))  # replaced (same size, mtime)
    assert load_state(tmp_path, "new")["b.dcm"].image is None


def test_shard_journals_and_file_lists(tmp_path):
    assert journal_name(None) == "journal.jsonl" and journal_name((2, 4)) == "journal.shard-2-of-4.jsonl"
    write(tmp_path, header("a", "fp"), name=journal_name((1, 2)))
    write(tmp_path, header("b", "fp"), name=journal_name((2, 2)))
    assert set(load_state(tmp_path, "fp")) == {"a", "b"}
    rels = ["plain.dcm", "new\nline.dcm", 'quote".dcm', '"lead.dcm', "back\\slash.dcm", "bad\udcff.dcm"]
    (tmp_path / "files.txt").write_bytes(files_list_bytes(rels))
    assert read_files_list(tmp_path / "files.txt") == rels
