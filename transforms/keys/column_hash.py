"""Hex BLAKE2b-128 of a whole column: the kernel once loaded (else hashlib), split over threads."""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from transforms.keys.arrow_text import is_binary_like, whole
from transforms.keys.kernel_column import kernel_hex
from transforms.keys.kernel_loader import loaded_kernel
from transforms.keys.reference import hashlib_hex

# Below this many rows the hashlib loop is used; the first larger call imports numba and loads
# the kernel from its disk cache (about 2 s of CPU; about 6 s to compile when the cache is cold).
KERNEL_MIN_ROWS = 20_000
# From this many rows the work is split over two threads (Arrow and the kernel release the GIL).
THREADED_MIN_ROWS = 200_000


def blake2b_128_hex(
    data: pa.Array | pa.ChunkedArray,
    *,
    kernel_min_rows: int = KERNEL_MIN_ROWS,
    threads: int | None = None,
) -> pa.Array:
    """Lowercase hex BLAKE2b-128 of every value of a binary/string column (null stays null).

    ``kernel_min_rows`` and ``threads`` (default 2 from ``THREADED_MIN_ROWS``) tune speed only.
    """
    values = whole(data)
    if not is_binary_like(values.type):
        raise TypeError(f"expected a string or binary array, got {values.type}")
    hash_hex = hasher_for(len(values), kernel_min_rows)
    return in_row_ranges(hash_hex, [values], threads if hash_hex is not hashlib_hex else 1)


def hasher_for(rows: int, kernel_min_rows: int | None = None) -> Callable[[pa.Array], pa.Array]:
    """The kernel for a column of ``rows`` rows when it is loaded already, else hashlib.

    Loading numba costs 2-6 s, more than it saves below a few million rows, so nothing here
    waits for it: a large run calls ``warm_kernel`` in the background and switches when ready.
    ``kernel_min_rows`` defaults to ``KERNEL_MIN_ROWS`` as it is when called.
    """
    threshold = KERNEL_MIN_ROWS if kernel_min_rows is None else kernel_min_rows
    kernel = loaded_kernel() if rows >= threshold else None
    if kernel is None:
        return hashlib_hex
    return functools.partial(kernel_hex, kernel)


def in_row_ranges(
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
