"""Idempotency keys (DESIGN §7): hex BLAKE2b-128 of four parts joined by U+001F, vectorised.

A numba kernel hashes a whole Arrow binary/string column in one pass (RFC 7693); small inputs,
or a machine where numba cannot import or compile, use the hashlib loop, which gives equal keys.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "KERNEL_MIN_ROWS",
    "SEPARATOR",
    "THREADED_MIN_ROWS",
    "blake2b_128_hex",
    "idempotency_keys",
    "key_of",
    "warm_kernel",
]

SEPARATOR = "\x1f"
# Below this many rows the hashlib loop is used; the first larger call imports numba and loads
# the kernel from its disk cache (about 2 s of CPU; about 6 s to compile when the cache is cold).
KERNEL_MIN_ROWS = 20_000
# From this many rows the work is split over two threads (Arrow and the kernel release the GIL).
THREADED_MIN_ROWS = 200_000
_DIGEST_SIZE = 16
_HEX_WIDTH = 2 * _DIGEST_SIZE

# RFC 7693 §2.6: the initialisation vector.
_IV = np.array(
    [
        0x6A09E667F3BCC908,
        0xBB67AE8584CAA73B,
        0x3C6EF372FE94F82B,
        0xA54FF53A5F1D36F1,
        0x510E527FADE682D1,
        0x9B05688C2B3E6C1F,
        0x1F83D9ABFB41BD6B,
        0x5BE0CD19137E2179,
    ],
    dtype=np.uint64,
)
# Parameter block word 0 for an unkeyed 16-byte digest: fanout 1, depth 1, key length 0.
_PARAM0 = np.uint64(0x01010000 ^ _DIGEST_SIZE)
_MAX_KERNEL_ROWS = (2**31 - 1) // _HEX_WIDTH  # 32-bit offsets of the hex string array
_KERNEL_LOCK = threading.Lock()
# "00".."ff" as little-endian uint16 pairs, so a digest byte indexes its two hex characters.
_HEX_PAIRS = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype=np.uint16)


def key_of(account: str, user: str, learning_object: str, completed_at: str | None) -> str:
    """The idempotency key of one row (hashlib); the reference the column version must equal."""
    parts = (account, user, learning_object.strip(), completed_at or "")
    return _hex_digest(SEPARATOR.join(parts).encode("utf-8"))


def idempotency_keys(
    account: pa.Array, user: pa.Array, learning_object: pa.Array, completed_at: pa.Array
) -> pa.Array:
    """The idempotency key of every row; null where account, user or learning object is null."""
    columns = _as_text([account, user, learning_object, completed_at])
    lengths = {len(column) for column in columns}
    if len(lengths) != 1:
        raise ValueError(f"key columns differ in length: {sorted(lengths)}")
    hash_hex = _hasher(lengths.pop(), KERNEL_MIN_ROWS)
    separator = pa.scalar(SEPARATOR, type=columns[0].type)

    def keys_of(account: pa.Array, user: pa.Array, objects: pa.Array, done: pa.Array) -> pa.Array:
        objects = pc.utf8_trim_whitespace(objects)
        joined = pc.binary_join_element_wise(
            account, user, objects, pc.fill_null(done, ""), separator
        )
        return hash_hex(joined)

    return _in_parts(keys_of, columns, None if hash_hex is not _hashlib_hex else 1)


def blake2b_128_hex(
    data: pa.Array | pa.ChunkedArray,
    *,
    kernel_min_rows: int = KERNEL_MIN_ROWS,
    threads: int | None = None,
) -> pa.Array:
    """Lowercase hex BLAKE2b-128 of every value of a binary/string column (null stays null).

    ``kernel_min_rows`` and ``threads`` (default 2 from ``THREADED_MIN_ROWS``) tune speed only.
    """
    values = _whole(data)
    if not _is_binary_like(values.type):
        raise TypeError(f"expected a string or binary array, got {values.type}")
    hash_hex = _hasher(len(values), kernel_min_rows)
    return _in_parts(hash_hex, [values], threads if hash_hex is not _hashlib_hex else 1)


def warm_kernel() -> bool:
    """Import numba and load (or compile) the kernel now; False where only hashlib is available.

    Until it has run, every column is hashed with hashlib; a large run calls it in a thread.
    """
    return _ready_kernel() is not None


def _hasher(rows: int, kernel_min_rows: int) -> Callable[[pa.Array], pa.Array]:
    """The kernel for a column of ``rows`` rows when it is loaded already, else hashlib.

    Loading numba costs 2-6 s, more than it saves below a few million rows, so nothing here
    waits for it: a large run calls ``warm_kernel`` in the background and switches when ready.
    """
    kernel = _loaded_kernel() if rows >= kernel_min_rows else None
    if kernel is None:
        return _hashlib_hex
    return functools.partial(_kernel_hex, kernel)


def _in_parts(
    function: Callable[..., pa.Array], columns: list[pa.Array], threads: int | None
) -> pa.Array:
    """``function`` over row ranges of ``columns`` on threads, concatenated.

    Arrow compute and the kernel release the GIL, so two threads use two cores.
    """
    rows = len(columns[0])
    workers = threads if threads is not None else (2 if rows >= THREADED_MIN_ROWS else 1)
    if workers <= 1 or rows < workers:
        return function(*columns)
    bounds = np.linspace(0, rows, workers + 1).astype(np.int64)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(
            lambda lo, hi: function(*(column.slice(lo, hi - lo) for column in columns)),
            bounds[:-1].tolist(),
            bounds[1:].tolist(),
        )
        return pa.concat_arrays(list(parts))


def _as_text(columns: list[pa.Array | pa.ChunkedArray]) -> list[pa.Array]:
    """Whole arrays of one text type: large_string if any column is large, else string."""
    arrays = [_whole(column) for column in columns]
    large = any(_is_large(array.type) for array in arrays)
    text = pa.large_string() if large else pa.string()
    return [array if array.type == text else array.cast(text) for array in arrays]


def _whole(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array from an array or a chunked array."""
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    return column


def _is_binary_like(value_type: pa.DataType) -> bool:
    """True for string, large_string, binary and large_binary."""
    return bool(
        pa.types.is_string(value_type)
        or pa.types.is_large_string(value_type)
        or pa.types.is_binary(value_type)
        or pa.types.is_large_binary(value_type)
    )


def _hex_digest(value: bytes) -> str:
    """Hex BLAKE2b-128 of one byte string."""
    return hashlib.blake2b(value, digest_size=_DIGEST_SIZE).hexdigest()


def _hashlib_hex(values: pa.Array) -> pa.Array:
    """The hashlib loop: correct everywhere, about 1 µs a row."""
    as_bytes = values.cast(pa.large_binary() if _is_large(values.type) else pa.binary()).to_pylist()
    return pa.array(
        [None if value is None else _hex_digest(value) for value in as_bytes], type=pa.string()
    )


def _is_large(value_type: pa.DataType) -> bool:
    """True for the 64-bit-offset variants."""
    return bool(pa.types.is_large_string(value_type) or pa.types.is_large_binary(value_type))


def _kernel_hex(kernel: Any, values: pa.Array) -> pa.Array:
    """Hex digests of a column through the numba kernel."""
    return _hex_array(_kernel_digests(kernel, values), values)


def _kernel_digests(kernel: Any, values: pa.Array) -> np.ndarray:
    """(n, 16) uint8 digests of every slot, hashed straight from the Arrow buffers (zero-copy)."""
    n = len(values)
    digests = np.empty((n, _DIGEST_SIZE), dtype=np.uint8)
    if n == 0:
        return digests
    _, offsets_buffer, data_buffer = values.buffers()
    offset_type = np.int64 if _is_large(values.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[values.offset :][: n + 1]
    offsets = _read_only(offsets.astype(np.int64, copy=False))  # always the one compiled type
    data = _read_only(np.frombuffer(data_buffer or b"", dtype=np.uint8))  # Arrow output is mutable
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


def _read_only(array: np.ndarray) -> np.ndarray:
    """The array marked read-only, like every view of an Arrow buffer (numba types them apart)."""
    array.flags.writeable = False
    return array


def _loaded_kernel() -> Any:
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
    global _G
    if sys.byteorder != "little":  # the kernel reads message words little-endian
        return None
    try:
        import numba

        _G = numba.njit(_mix)  # resolved by the kernel when it compiles
        kernel = numba.njit(cache=True, nogil=True)(_blake2b_128)
        offsets = _read_only(np.array([0, 3], dtype=np.int64))
        digest = np.empty((1, _DIGEST_SIZE), dtype=np.uint8)
        kernel(offsets, _read_only(np.frombuffer(b"abc", dtype=np.uint8)), digest)
    except Exception:  # any import or compile failure: keep working, only slower
        return None
    expected = hashlib.blake2b(b"abc", digest_size=_DIGEST_SIZE).digest()
    return kernel if digest.tobytes() == expected else None


def _mix(a: Any, b: Any, c: Any, d: Any, x: Any, y: Any) -> tuple[Any, Any, Any, Any]:
    """The G function of RFC 7693 §3.1 on four uint64 state words and two message words."""
    a = a + b + x
    d ^= a
    d = (d >> np.uint64(32)) | (d << np.uint64(32))
    c = c + d
    b ^= c
    b = (b >> np.uint64(24)) | (b << np.uint64(40))
    a = a + b + y
    d ^= a
    d = (d >> np.uint64(16)) | (d << np.uint64(48))
    c = c + d
    b ^= c
    b = (b >> np.uint64(63)) | (b << np.uint64(1))
    return a, b, c, d


_G: Any = _mix  # the jitted G once _ready_kernel has run; the kernel calls it by this name


def _blake2b_128(offsets: Any, data: Any, out: Any) -> None:  # pragma: no cover - JIT
    """Write the BLAKE2b-128 digest of data[offsets[i]:offsets[i + 1]] into out[i] (RFC 7693).

    Rounds are unrolled (message schedule sigma of §2.7 written out) so words stay in registers.
    """
    words = np.zeros(16, dtype=np.uint64)  # the current block, zero-padded
    for row in range(out.shape[0]):
        start = offsets[row]
        length = offsets[row + 1] - start
        h0 = _IV[0] ^ _PARAM0
        h1, h2, h3, h4, h5, h6, h7 = _IV[1], _IV[2], _IV[3], _IV[4], _IV[5], _IV[6], _IV[7]
        done = 0
        while True:  # an empty message is one final block of zeros
            take = min(length - done, 128)
            last = done + take >= length
            for w in range(16):  # little-endian words, zero past the message
                here = start + done + 8 * w
                size = 8 if take - 8 * w >= 8 else max(0, take - 8 * w)
                word = np.uint64(0)
                if size == 8:  # a fixed trip count and unsigned indices (no wraparound
                    for k in range(8):  # fix-up) let LLVM merge these into one 8-byte load
                        word |= np.uint64(data[np.uintp(here + k)]) << np.uint64(8 * k)
                else:
                    for k in range(size):
                        word |= np.uint64(data[np.uintp(here + k)]) << np.uint64(8 * k)
                words[w] = word
            done += take
            m0, m1, m2, m3 = words[0], words[1], words[2], words[3]
            m4, m5, m6, m7 = words[4], words[5], words[6], words[7]
            m8, m9, m10, m11 = words[8], words[9], words[10], words[11]
            m12, m13, m14, m15 = words[12], words[13], words[14], words[15]
            v0, v1, v2, v3, v4, v5, v6, v7 = h0, h1, h2, h3, h4, h5, h6, h7
            v8, v9, v10, v11 = _IV[0], _IV[1], _IV[2], _IV[3]
            v12 = _IV[4] ^ np.uint64(done)  # the byte counter t (its high word stays 0)
            v13 = _IV[5]
            v14 = ~_IV[6] if last else _IV[6]  # the final-block flag
            v15 = _IV[7]
            # Round 1: sigma[0].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m0, m1)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m2, m3)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m4, m5)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m6, m7)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m8, m9)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m10, m11)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m12, m13)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m14, m15)
            # Round 2: sigma[1].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m14, m10)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m4, m8)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m9, m15)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m13, m6)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m1, m12)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m0, m2)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m11, m7)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m5, m3)
            # Round 3: sigma[2].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m11, m8)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m12, m0)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m5, m2)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m15, m13)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m10, m14)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m3, m6)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m7, m1)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m9, m4)
            # Round 4: sigma[3].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m7, m9)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m3, m1)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m13, m12)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m11, m14)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m2, m6)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m5, m10)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m4, m0)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m15, m8)
            # Round 5: sigma[4].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m9, m0)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m5, m7)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m2, m4)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m10, m15)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m14, m1)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m11, m12)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m6, m8)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m3, m13)
            # Round 6: sigma[5].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m2, m12)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m6, m10)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m0, m11)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m8, m3)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m4, m13)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m7, m5)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m15, m14)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m1, m9)
            # Round 7: sigma[6].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m12, m5)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m1, m15)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m14, m13)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m4, m10)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m0, m7)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m6, m3)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m9, m2)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m8, m11)
            # Round 8: sigma[7].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m13, m11)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m7, m14)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m12, m1)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m3, m9)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m5, m0)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m15, m4)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m8, m6)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m2, m10)
            # Round 9: sigma[8].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m6, m15)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m14, m9)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m11, m3)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m0, m8)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m12, m2)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m13, m7)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m1, m4)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m10, m5)
            # Round 10: sigma[9].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m10, m2)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m8, m4)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m7, m6)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m1, m5)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m15, m11)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m9, m14)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m3, m12)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m13, m0)
            # Round 11: sigma[0].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m0, m1)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m2, m3)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m4, m5)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m6, m7)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m8, m9)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m10, m11)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m12, m13)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m14, m15)
            # Round 12: sigma[1].
            v0, v4, v8, v12 = _G(v0, v4, v8, v12, m14, m10)
            v1, v5, v9, v13 = _G(v1, v5, v9, v13, m4, m8)
            v2, v6, v10, v14 = _G(v2, v6, v10, v14, m9, m15)
            v3, v7, v11, v15 = _G(v3, v7, v11, v15, m13, m6)
            v0, v5, v10, v15 = _G(v0, v5, v10, v15, m1, m12)
            v1, v6, v11, v12 = _G(v1, v6, v11, v12, m0, m2)
            v2, v7, v8, v13 = _G(v2, v7, v8, v13, m11, m7)
            v3, v4, v9, v14 = _G(v3, v4, v9, v14, m5, m3)
            h0 ^= v0 ^ v8
            h1 ^= v1 ^ v9
            h2 ^= v2 ^ v10
            h3 ^= v3 ^ v11
            h4 ^= v4 ^ v12
            h5 ^= v5 ^ v13
            h6 ^= v6 ^ v14
            h7 ^= v7 ^ v15
            if last:
                break
        for k in range(8):  # the first 16 bytes of h, little-endian, are the digest
            shift = np.uint64(8 * k)
            out[row, k] = np.uint8((h0 >> shift) & np.uint64(0xFF))
            out[row, 8 + k] = np.uint8((h1 >> shift) & np.uint64(0xFF))
