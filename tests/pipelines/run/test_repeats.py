"""Repeats inside a run: one row per idempotency key is kept, across chunks (DESIGN §5)."""

from __future__ import annotations

import pyarrow as pa

from pipelines.run.repeats import RepeatTracker


def test_first_keeps_the_first_row_across_chunks() -> None:
    """With repeats: first, a key's first row is kept and every later one, in any chunk, repeats."""
    tracker = RepeatTracker("first")
    first = tracker.repeats(pa.array(["a", "b", "a", None]), pa.array([0, 1, 2, 3]))
    second = tracker.repeats(pa.array(["b", "c", "c"]), pa.array([4, 5, 6]))
    assert first.to_pylist() == [False, False, True, False]
    assert second.to_pylist() == [True, False, True]


def test_last_keeps_the_last_row_after_priming() -> None:
    """With repeats: last, the pre-pass learns each key's last row, which alone is kept."""
    tracker = RepeatTracker("last")
    keys, ordinals = pa.array(["a", "b", "a", None, "a"]), pa.array([0, 1, 2, 3, 4])
    tracker.prime(keys, ordinals)
    assert tracker.repeats(keys, ordinals).to_pylist() == [True, False, True, False, False]
