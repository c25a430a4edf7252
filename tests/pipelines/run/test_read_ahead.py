"""read_ahead: the same items in order, a source's error where its item would come, and an
early exit closes the source."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pipelines.run.read_ahead import read_ahead


def test_items_in_order_read_on_another_thread() -> None:
    readers: set[str] = set()

    def source() -> Iterator[int]:
        for number in range(50):
            readers.add(threading.current_thread().name)
            yield number

    assert list(read_ahead(source())) == list(range(50))
    assert readers and threading.current_thread().name not in readers


def test_an_error_comes_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("broken record")

    got: list[int] = []
    with pytest.raises(ValueError, match="broken record"):
        for item in read_ahead(source()):
            got.append(item)
    assert got == [1, 2]


def test_leaving_early_closes_the_source() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            closed.set()

    items = read_ahead(source())
    assert next(items) == 0
    items.close()
    assert closed.is_set()
