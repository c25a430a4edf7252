"""Key and body-hash columns as (n, 16) byte arrays and their big-endian 64-bit halves.

The ledger stores keys as 16-byte BLOBs; these helpers turn whole Arrow columns of hex-32
strings or 16-byte binaries into numpy arrays without a per-row Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["as_16_bytes", "as_arrow", "halves", "hex_decoded", "sort_order"]


def as_arrow(values: pa.Array | pa.ChunkedArray | Sequence[str]) -> pa.Array | pa.ChunkedArray:
    """The values as an Arrow column (a sequence of strings becomes a string array)."""
    return (
        values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, pa.string())
    )


def as_16_bytes(
    values: pa.Array | pa.ChunkedArray, what: str, *, nulls: bool
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """(n, 16) bytes of hex-32 strings or 16-byte binaries, and the validity (nulls → zeros)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    valid = np.ones(len(values), dtype=bool)
    if len(values) == 0:
        return np.empty((0, 16), dtype=np.uint8), valid
    if values.null_count:
        if not nulls:
            raise ValueError(f"{what} must not contain nulls")
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        binary = pa.types.is_fixed_size_binary(values.type)
        values = pc.coalesce(values, pa.scalar(b"\0" * 16 if binary else "0" * 32, values.type))
    data = _fixed_width(values, what)
    if data.shape[1] == 16 and not pa.types.is_string(values.type):
        return np.ascontiguousarray(data), valid
    if data.shape[1] != 32:
        raise ValueError(f"{what} must be 32 hex characters or 16 bytes, not {data.shape[1]}")
    decoded = hex_decoded(data)
    if decoded is None:
        raise ValueError(f"{what} must be hexadecimal")
    return decoded, valid


def hex_decoded(chars: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8] | None:
    """The (n, 16) bytes of (n, 32) hex characters (either case), or None if one is not hex.

    One ``bytearray.fromhex`` of the whole block (C speed); it skips white space, which the
    length of its result gives away.
    """
    try:
        raw = bytearray.fromhex(np.ascontiguousarray(chars).tobytes().decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if len(raw) != 16 * len(chars):
        return None
    return np.frombuffer(raw, np.uint8).reshape(-1, 16)


def _fixed_width(values: pa.Array, what: str) -> npt.NDArray[np.uint8]:
    """The values' bytes as an (n, width) view, when every value has the same width."""
    n, kind = len(values), values.type
    if pa.types.is_fixed_size_binary(kind):
        width = kind.byte_width
        raw = np.frombuffer(values.buffers()[1], np.uint8, n * width, values.offset * width)
        return raw.reshape(n, width)
    if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        offset_type: type[np.signedinteger[Any]] = np.int64
    elif pa.types.is_string(kind) or pa.types.is_binary(kind):
        offset_type = np.int32
    else:
        raise TypeError(f"{what}: expected strings or binaries, got {kind}")
    size = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(values.buffers()[1], offset_type, n + 1, values.offset * size)
    start, end = int(offsets[0]), int(offsets[-1])
    width = (end - start) // n
    if width == 0 or not bool(np.all(np.diff(offsets) == width)):
        raise ValueError(f"{what} must all be 32 hex characters or 16 bytes")
    return np.frombuffer(values.buffers()[2], np.uint8, end - start, start).reshape(n, width)


def halves(
    key_bytes: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Big-endian 64-bit halves: sorting by (hi, lo) is sorting the bytes."""
    pairs = np.ascontiguousarray(key_bytes).view(">u8").reshape(-1, 2)
    return pairs[:, 0].astype(np.uint64), pairs[:, 1].astype(np.uint64)


def sort_order(key_bytes: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
    """The permutation that sorts 16-byte keys bytewise."""
    hi, lo = halves(key_bytes)
    return np.lexsort((lo, hi))
