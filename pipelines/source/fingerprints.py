"""Content fingerprints of export files: the same export under a new name is the same export."""

from __future__ import annotations

import hashlib
from pathlib import Path


def fingerprint(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """BLAKE2b-128 of the file's bytes: the same export under a new name is the same export."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
