"""BLAKE2b-128 (RFC 7693) as numba functions over Arrow buffers; importing this imports numba.

An unrolled, compiled kernel: the twelve rounds are written out, each round's message schedule
(sigma, §2.7) spelled as a word order, and LLVM inlines the small jitted helpers into the row loop
so state and message words stay in registers (``inline="always"`` is as fast but compiles 6x slower).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from transforms.keys.reference import DIGEST_SIZE

# RFC 7693 §2.6: the initialisation vector.
IV = np.array(
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
PARAM0 = np.uint64(0x01010000 ^ DIGEST_SIZE)


@numba.njit(cache=True, nogil=True)
def blake2b_128(offsets: Any, data: Any, out: Any) -> None:  # pragma: no cover - JIT
    """Write the BLAKE2b-128 digest of data[offsets[i]:offsets[i + 1]] into out[i] (RFC 7693)."""
    words = np.zeros(16, dtype=np.uint64)  # the current block, zero-padded
    for row in range(out.shape[0]):
        start = offsets[row]
        length = offsets[row + 1] - start
        h = (IV[0] ^ PARAM0, IV[1], IV[2], IV[3], IV[4], IV[5], IV[6], IV[7])
        done = 0
        while True:  # an empty message is one final block of zeros
            take = min(length - done, 128)
            last = done + take >= length
            _load_block(data, start + done, take, words)
            done += take
            h = _compress(h, words, np.uint64(done), last)
            if last:
                break
        for k in range(8):  # the first 16 bytes of h, little-endian, are the digest
            shift = np.uint64(8 * k)
            out[row, k] = np.uint8((h[0] >> shift) & np.uint64(0xFF))
            out[row, 8 + k] = np.uint8((h[1] >> shift) & np.uint64(0xFF))


@numba.njit
def _load_block(data: Any, start: Any, take: Any, words: Any) -> None:  # pragma: no cover - JIT
    """Read data[start:start + take] (at most 128 bytes) as 16 little-endian words, zero-padded."""
    for w in range(16):
        here = start + 8 * w
        size = 8 if take - 8 * w >= 8 else max(0, take - 8 * w)
        word = np.uint64(0)
        if size == 8:  # a fixed trip count and unsigned indices (no wraparound
            for k in range(8):  # fix-up) let LLVM merge these into one 8-byte load
                word |= np.uint64(data[np.uintp(here + k)]) << np.uint64(8 * k)
        else:
            for k in range(size):
                word |= np.uint64(data[np.uintp(here + k)]) << np.uint64(8 * k)
        words[w] = word


@numba.njit
def _compress(h: Any, words: Any, t: Any, last: Any) -> Any:  # pragma: no cover - JIT
    """The compression function F of RFC 7693 §3.2: the chain value after one block.

    ``t`` is the byte count so far (its high word stays 0); ``last`` sets the final-block flag.
    """
    m0, m1, m2, m3 = words[0], words[1], words[2], words[3]
    m4, m5, m6, m7 = words[4], words[5], words[6], words[7]
    m8, m9, m10, m11 = words[8], words[9], words[10], words[11]
    m12, m13, m14, m15 = words[12], words[13], words[14], words[15]
    flag = ~IV[6] if last else IV[6]  # the final-block flag
    v = (*h, IV[0], IV[1], IV[2], IV[3], IV[4] ^ t, IV[5], flag, IV[7])
    # Rounds 1 to 12 take the message words in the order sigma[0..9], sigma[0], sigma[1].
    v = _round(v, (m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15))
    v = _round(v, (m14, m10, m4, m8, m9, m15, m13, m6, m1, m12, m0, m2, m11, m7, m5, m3))
    v = _round(v, (m11, m8, m12, m0, m5, m2, m15, m13, m10, m14, m3, m6, m7, m1, m9, m4))
    v = _round(v, (m7, m9, m3, m1, m13, m12, m11, m14, m2, m6, m5, m10, m4, m0, m15, m8))
    v = _round(v, (m9, m0, m5, m7, m2, m4, m10, m15, m14, m1, m11, m12, m6, m8, m3, m13))
    v = _round(v, (m2, m12, m6, m10, m0, m11, m8, m3, m4, m13, m7, m5, m15, m14, m1, m9))
    v = _round(v, (m12, m5, m1, m15, m14, m13, m4, m10, m0, m7, m6, m3, m9, m2, m8, m11))
    v = _round(v, (m13, m11, m7, m14, m12, m1, m3, m9, m5, m0, m15, m4, m8, m6, m2, m10))
    v = _round(v, (m6, m15, m14, m9, m11, m3, m0, m8, m12, m2, m13, m7, m1, m4, m10, m5))
    v = _round(v, (m10, m2, m8, m4, m7, m6, m1, m5, m15, m11, m9, m14, m3, m12, m13, m0))
    v = _round(v, (m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15))
    v = _round(v, (m14, m10, m4, m8, m9, m15, m13, m6, m1, m12, m0, m2, m11, m7, m5, m3))
    return (
        h[0] ^ v[0] ^ v[8],
        h[1] ^ v[1] ^ v[9],
        h[2] ^ v[2] ^ v[10],
        h[3] ^ v[3] ^ v[11],
        h[4] ^ v[4] ^ v[12],
        h[5] ^ v[5] ^ v[13],
        h[6] ^ v[6] ^ v[14],
        h[7] ^ v[7] ^ v[15],
    )


@numba.njit
def _round(v: Any, m: Any) -> Any:  # pragma: no cover - JIT
    """One round of RFC 7693 §3.2 on the 16 state words, message words already in sigma order."""
    v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15 = v
    v0, v4, v8, v12 = _mix(v0, v4, v8, v12, m[0], m[1])
    v1, v5, v9, v13 = _mix(v1, v5, v9, v13, m[2], m[3])
    v2, v6, v10, v14 = _mix(v2, v6, v10, v14, m[4], m[5])
    v3, v7, v11, v15 = _mix(v3, v7, v11, v15, m[6], m[7])
    v0, v5, v10, v15 = _mix(v0, v5, v10, v15, m[8], m[9])
    v1, v6, v11, v12 = _mix(v1, v6, v11, v12, m[10], m[11])
    v2, v7, v8, v13 = _mix(v2, v7, v8, v13, m[12], m[13])
    v3, v4, v9, v14 = _mix(v3, v4, v9, v14, m[14], m[15])
    return (v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15)


@numba.njit
def _mix(a: Any, b: Any, c: Any, d: Any, x: Any, y: Any) -> Any:  # pragma: no cover - JIT
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
