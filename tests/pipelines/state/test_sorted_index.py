"""The bucket table that finds ledger keys gives exactly what a binary search gives."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.state.key_set import KeySet
from pipelines.state.sorted_index import SortedIndex


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from([0, 1, 100, 4095, 4096, 5000, 60_000]),
    span_bits=st.sampled_from([8, 20, 40, 64]),
    repeats=st.sampled_from([1, 3]),
)
def test_left_is_numpy_searchsorted(seed: int, size: int, span_bits: int, repeats: int) -> None:
    """Values dense or sparse, repeated or not, queries inside, on and outside their span."""
    rng = np.random.default_rng(seed)
    base = int(rng.integers(0, 2**64 - 2**span_bits, dtype=np.uint64, endpoint=True))
    offsets = rng.integers(0, 2**span_bits, size, dtype=np.uint64, endpoint=False)
    values = np.sort(np.repeat(np.uint64(base) + offsets, repeats))
    queries = np.concatenate(
        [
            values[rng.integers(0, len(values), 500)] if len(values) else values,
            rng.integers(0, 2**64, 500, dtype=np.uint64, endpoint=False),
            np.uint64(base) + rng.integers(0, 2**span_bits, 500, dtype=np.uint64),
            np.array([0, 2**64 - 1, base], dtype=np.uint64),
        ]
    )
    got = SortedIndex(values).left(queries)
    assert np.array_equal(got, np.searchsorted(values, queries))


def test_a_big_key_set_finds_keys_sharing_their_first_half() -> None:
    """Over the bucket table too, keys whose first 8 bytes are equal are told apart."""
    rng = np.random.default_rng(5)
    hi = rng.integers(0, 2**64, 20_000, dtype=np.uint64)
    lo = rng.integers(0, 2**64, 20_000, dtype=np.uint64)
    hi[1::2] = hi[::2]  # every key shares its first half with another
    keys, _ = KeySet.build(hi, lo)
    assert keys.shared_hi
    at = keys.find(hi, lo)
    assert np.array_equal(keys.hi[at], hi) and np.array_equal(keys.lo[at], lo)
    missing = keys.find(hi, lo + np.uint64(1))
    assert np.all(missing == -1)


def test_a_table_built_over_several_blocks() -> None:
    """More values than one block of the table's build: the same answers as a binary search."""
    rng = np.random.default_rng(11)
    values = np.sort(rng.integers(0, 2**64, 2_500_000, dtype=np.uint64))
    queries = np.concatenate([values[::97], rng.integers(0, 2**64, 50_000, dtype=np.uint64)])
    assert np.array_equal(SortedIndex(values).left(queries), np.searchsorted(values, queries))
