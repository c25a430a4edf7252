"""Searching a big sorted uint64 column for a whole column of values at once.

A binary search (``np.searchsorted``) costs about log2(n) cache misses a value, 23 for ten
million keys. Keys are BLAKE2b digests, spread evenly, so a table of where each bucket of their
top bits starts leaves a few values to step over: about two cache misses a value.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["SortedIndex"]

_SMALL = 4096  # below this many values a plain binary search is as quick
_PER_BUCKET = 4  # values a bucket holds at most on average (the table costs 4 bytes a bucket)
_BLOCK = 1 << 20  # values bucketed at a time while the table is built


class SortedIndex:
    """Bucket starts of a sorted uint64 array: ``left`` is ``np.searchsorted(values, q)``.

    Buckets split the span from the first value to the last (the values of one part of a set
    may share their top bits).
    """

    def __init__(self, values: npt.NDArray[np.uint64]) -> None:
        self.values = values
        n = len(values)
        self._starts: npt.NDArray[np.uint32] | None = None
        if n < _SMALL or n >= 2**32:
            return
        self._first, self._last = values[0], values[-1]
        bits = max(1, int(np.ceil(np.log2(n / _PER_BUCKET))))
        self._shift = np.uint64(max(0, int(self._last - self._first).bit_length() - bits))
        size = int((self._last - self._first) >> self._shift) + 1
        starts = np.zeros(size + 1, dtype=np.uint32)
        for begin in range(0, n, _BLOCK):  # a block at a time: no n-sized temporaries
            block = (values[begin : begin + _BLOCK] - self._first) >> self._shift
            starts[1:] += np.bincount(block.astype(np.intp), minlength=size).astype(np.uint32)
        np.cumsum(starts, out=starts)
        self._starts = starts

    def left(self, queries: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
        """Where each query would go to keep the values sorted (before equal ones)."""
        if self._starts is None:
            return np.searchsorted(self.values, queries).astype(np.intp, copy=False)
        inside = (queries >= self._first) & (queries <= self._last)
        at = np.where(queries > self._last, len(self.values), 0).astype(np.intp)
        rows = np.flatnonzero(inside)
        wanted = queries[rows]
        bucket = ((wanted - self._first) >> self._shift).astype(np.intp)
        at[rows] = self._starts[bucket]
        end = self._starts[bucket + 1].astype(np.intp)
        moving = np.arange(len(rows))
        while len(moving):  # step over the bucket's values below the query
            moving = moving[self.values[at[rows[moving]]] < wanted[moving]]
            at[rows[moving]] += 1
            moving = moving[at[rows[moving]] < end[moving]]
        return at
