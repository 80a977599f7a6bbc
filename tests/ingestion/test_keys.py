"""Pseudonymous keys: the cohort salt (created private, reused, from a file) and salted keys."""

import os
import stat

import pytest

from xraymunit.ingestion import keys
from xraymunit.ingestion.keys import Pseudonymiser, SaltError


def test_salt_is_created_private_and_reused(tmp_path):
    salt, source = keys.load_or_create_salt(tmp_path / "private")
    path = tmp_path / "private" / "salt.key"
    assert source.endswith("(created)") and len(salt) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, source2 = keys.load_or_create_salt(tmp_path / "private")
    assert again == salt and source2 == "private/salt.key"


def test_salt_file_option(tmp_path):
    f = tmp_path / "team.salt"
    salt, source = keys.load_or_create_salt(tmp_path / "private", f)
    assert source == "salt-file (created)" and stat.S_IMODE(f.stat().st_mode) == 0o600
    assert not (tmp_path / "private" / "salt.key").exists()
    assert keys.load_or_create_salt(tmp_path / "other", f)[0] == salt
    f.write_text("short")
    with pytest.raises(SaltError, match="at least 16"):
        keys.load_or_create_salt(tmp_path / "private", f)
    f.write_text("a passphrase that is long enough")
    assert keys.load_or_create_salt(tmp_path / "private", f)[0] == b"a passphrase that is long enough"


def test_keys_are_salted_namespaced_and_short():
    a, b = Pseudonymiser(b"a" * 32), Pseudonymiser(b"b" * 32)
    k = a.key("patient", "12345")
    assert len(k) == 16 and int(k, 16) >= 0
    assert k == a.key("patient", " 12345 ") and k != b.key("patient", "12345")
    assert k != a.key("study", "12345")
    assert "12345" not in k and a.key("patient", "") is None and a.key("patient", None) is None


def test_keys_and_display_of_non_utf8_names():
    rel = os.fsdecode(b"scans/bad\xff\xfe.dcm")  # how Python names a file whose name is not UTF-8
    pseudo = Pseudonymiser(b"s" * 32)
    assert len(pseudo.key("image", rel)) == 16 and pseudo.key("image", rel) != pseudo.key("image", "scans/bad.dcm")
    assert pseudo.order("split", rel)
    assert keys.display_path(rel) == "scans/bad\\xff\\xfe.dcm"
    assert keys.display_path("scans/ok é.dcm") == "scans/ok é.dcm"
