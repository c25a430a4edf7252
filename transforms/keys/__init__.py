"""Idempotency keys (DESIGN §7): hex BLAKE2b-128 of four parts joined by U+001F, vectorised.

A numba kernel hashes a whole Arrow binary/string column in one pass (RFC 7693); small inputs,
or a machine where numba cannot import or compile, use the hashlib loop, which gives equal keys.
"""

from transforms.keys.column_hash import KERNEL_MIN_ROWS, THREADED_MIN_ROWS, blake2b_128_hex
from transforms.keys.idempotency import SEPARATOR, idempotency_keys, key_of
from transforms.keys.kernel_loader import warm_kernel

__all__ = [
    "KERNEL_MIN_ROWS",
    "SEPARATOR",
    "THREADED_MIN_ROWS",
    "blake2b_128_hex",
    "idempotency_keys",
    "key_of",
    "warm_kernel",
]
