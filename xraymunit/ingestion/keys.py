"""Pseudonymous keys: the cohort's secret salt and salted HMAC-SHA256 keys of identifiers.

Privacy model: raw identifiers (PatientID, UIDs, file paths) never enter the manifest.
Each becomes a salted HMAC-SHA256 (16 hex chars) under its own namespace; the salt lives
in `cohort/private/salt.key` (mode 0600) or a file the user supplies, so keys are stable
across reruns and cannot be reversed or recomputed from public UIDs without the salt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from xraymunit.errors import XraymunitError

KEY_HEX = 16


class SaltError(XraymunitError):
    """The salt file is missing, unreadable or too short."""


def read_salt(path: Path) -> bytes:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SaltError(f"cannot read salt file {path}: {exc.strerror or exc}") from None
    stripped = text.strip()
    try:
        salt = bytes.fromhex(stripped.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        salt = stripped
    if len(salt) < 16:
        raise SaltError(f"salt file {path} holds {len(salt)} bytes; use at least 16 random bytes "
                        f"(e.g. `python -c 'import secrets; print(secrets.token_hex(32))' > {path.name}`)")
    return salt


def create_salt(path: Path) -> bytes:
    """Write 32 random bytes (hex) to a new file readable by its owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (salt.hex() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return salt


def load_or_create_salt(private_dir: Path, salt_file: str | os.PathLike | None = None) -> tuple[bytes, str]:
    """The cohort's salt and where it came from ('created', 'private/salt.key', 'salt-file').

    With `salt_file`, that file is used (and created, mode 0600, if it does not exist):
    share one salt file between cohorts that must produce the same patient keys.
    """
    if salt_file is not None:
        path = Path(salt_file)
        if not path.exists():
            return create_salt(path), "salt-file (created)"
        return read_salt(path), "salt-file"
    path = Path(private_dir) / "salt.key"
    if path.exists():
        return read_salt(path), "private/salt.key"
    return create_salt(path), "private/salt.key (created)"


@dataclass(frozen=True)
class Pseudonymiser:
    """Salted HMAC-SHA256 keys; the namespace keeps e.g. a study UID and a SOP UID apart."""

    salt: bytes

    def key(self, namespace: str, value: str | None) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        msg = _utf8(f"{namespace}\x00{str(value).strip()}")
        return hmac.new(self.salt, msg, hashlib.sha256).hexdigest()[:KEY_HEX]

    def order(self, namespace: str, value: str) -> str:
        """A full-length keyed hash, for deterministic salt-dependent orderings."""
        return hmac.new(self.salt, _utf8(f"{namespace}\x00{value}"), hashlib.sha256).hexdigest()


def _utf8(text: str) -> bytes:
    """UTF-8, with file-name bytes that are not UTF-8 (surrogate-escaped by Python) restored as
    they are on disk: a key of such a name is the key of its bytes."""
    return text.encode("utf-8", "surrogateescape")


def display_path(rel: str) -> str:
    """A relative path as it may be shown or stored as text: file names are bytes on Linux, and
    bytes that are not UTF-8 are written as backslash escapes (b"bad\\xff.dcm" → "bad\\xff.dcm")."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")
