"""Seeds derived from values (a run's seed, a purpose, a step): the same in every process and run.

A module of its own, without torch or MONAI, so synthesis, training and the quality monitor share the
rule without importing the data pipeline (importing MONAI costs ~1 s of CPU in every process start that does not need it).
"""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of values, identical across processes and runs."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)
