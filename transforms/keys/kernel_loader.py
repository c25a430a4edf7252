"""Loading the numba kernel once, in the background: until it is ready, columns use hashlib."""

from __future__ import annotations

import functools
import hashlib
import sys
import threading
from typing import Any

import numpy as np

from transforms.keys.kernel_column import read_only
from transforms.keys.reference import DIGEST_SIZE

_KERNEL_LOCK = threading.Lock()


def warm_kernel() -> bool:
    """Import numba and load (or compile) the kernel now; False where only hashlib is available.

    Until it has run, every column is hashed with hashlib; a large run calls it in a thread.
    """
    return _ready_kernel() is not None


def loaded_kernel() -> Any:
    """The kernel if some thread has finished loading it, else None (never waits)."""
    if not _KERNEL_LOCK.acquire(blocking=False):
        return None
    try:
        return _load_kernel() if _load_kernel.cache_info().currsize else None
    finally:
        _KERNEL_LOCK.release()


def _ready_kernel() -> Any:
    """The numba kernel (see ``_load_kernel``), loaded by one thread while others wait."""
    with _KERNEL_LOCK:
        return _load_kernel()


@functools.cache
def _load_kernel() -> Any:
    """The numba kernel, imported and compiled (or loaded from its disk cache) on first use.

    None where numba is missing, fails to compile, or the host is big-endian: hashlib then.
    Importing numba costs seconds, so it happens only once a large column needs hashing.
    """
    if sys.byteorder != "little":  # the kernel reads message words little-endian
        return None
    try:
        from transforms.keys.blake2b_kernel import blake2b_128

        offsets = read_only(np.array([0, 3], dtype=np.int64))
        digest = np.empty((1, DIGEST_SIZE), dtype=np.uint8)
        blake2b_128(offsets, read_only(np.frombuffer(b"abc", dtype=np.uint8)), digest)
    except Exception:  # any import or compile failure: keep working, only slower
        return None
    expected = hashlib.blake2b(b"abc", digest_size=DIGEST_SIZE).digest()
    return blake2b_128 if digest.tobytes() == expected else None
