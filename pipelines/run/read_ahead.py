"""Reading the next chunk on a reader thread while the caller settles the one before.

At 10 M rows the dry run's main thread was its slowest: reading the CSV took ~3 s of it, beside
repeats and writing. pyarrow's reader releases the GIL while it parses, so the next chunk is read
meanwhile; items and errors come back in order.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

Item = TypeVar("Item")

_END = object()


def read_ahead(items: Iterable[Item]) -> Generator[Item, None, None]:
    """The items of ``items``, the next one fetched on a reader thread while the caller works on
    this one; an error from the source is raised where its item would have come. Leaving early
    waits for the fetch under way, then closes the source."""
    source = iter(items)
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
    try:
        upcoming = reader.submit(next, source, _END)
        while (item := upcoming.result()) is not _END:
            upcoming = reader.submit(next, source, _END)
            yield cast(Item, item)
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        close = getattr(source, "close", None)
        if close is not None:
            close()
