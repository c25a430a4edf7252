"""A column through the numba kernel: Arrow buffers in (zero-copy), a hex string array out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.keys.arrow_text import is_large
from transforms.keys.reference import DIGEST_SIZE

_HEX_WIDTH = 2 * DIGEST_SIZE
_MAX_KERNEL_ROWS = (2**31 - 1) // _HEX_WIDTH  # 32-bit offsets of the hex string array
# "00".."ff" as little-endian uint16 pairs, so a digest byte indexes its two hex characters.
_HEX_PAIRS = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype=np.uint16)


def kernel_hex(kernel: Any, values: pa.Array) -> pa.Array:
    """Hex digests of a column through the numba kernel."""
    return _hex_array(_kernel_digests(kernel, values), values)


def read_only(array: np.ndarray) -> np.ndarray:
    """The array marked read-only, like every view of an Arrow buffer (numba types them apart)."""
    array.flags.writeable = False
    return array


def _kernel_digests(kernel: Any, values: pa.Array) -> np.ndarray:
    """(n, 16) uint8 digests of every slot, hashed straight from the Arrow buffers (zero-copy)."""
    n = len(values)
    digests = np.empty((n, DIGEST_SIZE), dtype=np.uint8)
    if n == 0:
        return digests
    _, offsets_buffer, data_buffer = values.buffers()
    offset_type = np.int64 if is_large(values.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[values.offset :][: n + 1]
    offsets = read_only(offsets.astype(np.int64, copy=False))  # always the one compiled type
    data = read_only(np.frombuffer(data_buffer or b"", dtype=np.uint8))  # Arrow output is mutable
    kernel(offsets, data, digests)
    return digests


def _hex_array(digests: np.ndarray, values: pa.Array) -> pa.Array:
    """A string array of 32-character hex from (n, 16) digests, nulls where ``values`` has them."""
    n = len(digests)
    if n > _MAX_KERNEL_ROWS:
        raise ValueError(f"{n} rows exceed one string array's {_MAX_KERNEL_ROWS}: hash in chunks")
    text = _HEX_PAIRS.take(digests)  # (n, 16) uint16: two ASCII characters per digest byte
    offsets = np.arange(0, _HEX_WIDTH * (n + 1), _HEX_WIDTH, dtype=np.int32)
    validity = None
    if values.null_count:
        validity = pc.is_valid(values).buffers()[1]
    return pa.Array.from_buffers(
        pa.string(),
        n,
        [validity, pa.py_buffer(offsets), pa.py_buffer(text)],
        null_count=values.null_count,
    )
