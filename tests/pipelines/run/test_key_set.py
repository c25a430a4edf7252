"""The compact key set behind in-run repeats: the same answers as a Python set, 16 bytes a key."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.run.key_set import key_words
from pipelines.run.repeats import RepeatTracker

# Few first words and few second words: keys often share their first 8 bytes, or all 16.
HEX_KEYS = st.builds(
    lambda high, low, part: f"{part:x}{high:015x}{low:016x}",
    st.integers(0, 3),
    st.integers(0, 2),
    st.integers(0, 15),
)
CHUNKS = st.lists(st.lists(st.one_of(st.none(), HEX_KEYS), max_size=30), max_size=6)


def first_reference(chunks: list[list[str | None]]) -> list[bool]:
    """Repeats as a Python set sees them (``repeats: first``)."""
    seen: set[str] = set()
    out = []
    for key in (key for chunk in chunks for key in chunk):
        out.append(key is not None and key in seen)
        if key is not None:
            seen.add(key)
    return out


def last_reference(chunks: list[list[str | None]]) -> list[bool]:
    """Repeats when each key's last row is kept (``repeats: last``)."""
    keys = [key for chunk in chunks for key in chunk]
    last = {key: ordinal for ordinal, key in enumerate(keys) if key is not None}
    return [key is not None and last[key] != ordinal for ordinal, key in enumerate(keys)]


def tracked(keep: str, chunks: list[list[str | None]]) -> list[bool]:
    """What a RepeatTracker answers for the chunks in order (primed first for ``last``)."""
    tracker = RepeatTracker(keep)
    batches, start = [], 0
    for chunk in chunks:
        batches.append((pa.array(chunk, pa.string()), pa.array(range(start, start + len(chunk)))))
        start += len(chunk)
    if keep == "last":
        for keys, ordinals in batches:
            tracker.prime(keys, ordinals)
    return [
        flag for keys, ordinals in batches for flag in tracker.repeats(keys, ordinals).to_pylist()
    ]


@settings(max_examples=200, deadline=None)
@given(CHUNKS)
def test_first_matches_a_python_set(chunks: list[list[str | None]]) -> None:
    """Across chunks, with keys sharing their first 8 bytes, ``first`` equals a Python set."""
    assert tracked("first", chunks) == first_reference(chunks)


@settings(max_examples=200, deadline=None)
@given(CHUNKS)
def test_last_matches_the_last_ordinal(chunks: list[list[str | None]]) -> None:
    """``last`` keeps exactly each key's last row, whatever the chunking."""
    assert tracked("last", chunks) == last_reference(chunks)


def test_hex_keys_are_decoded_and_other_text_is_hashed() -> None:
    """Hex keys keep their 16 bytes; any other text gets 16 bytes of its own, equal for equals."""
    words = key_words(pa.array(["00" * 15 + "ff", "0" * 32]))
    assert words.view("u1").reshape(2, 16)[0].tolist() == [0] * 15 + [255]
    text = key_words(pa.array(["a", "b", "a"]))
    assert (text[0] == text[2]).all() and not (text[0] == text[1]).all()
    assert RepeatTracker().nbytes == 0


def test_a_key_gets_the_same_bytes_whatever_its_chunk_holds() -> None:
    """A hex key next to text that is not hex keeps its decoded bytes, so repeats are found."""
    key = "ab" * 16
    alone, mixed = key_words(pa.array([key])), key_words(pa.array(["not hex", key, "x" * 32]))
    assert (alone[0] == mixed[1]).all()
    tracker = RepeatTracker("first")
    tracker.repeats(pa.array([key]), pa.array([0]))
    assert tracker.repeats(pa.array(["not hex", key]), pa.array([1, 2])).to_pylist() == [
        False,
        True,
    ]


@settings(max_examples=200, deadline=None)
@given(CHUNKS, st.sets(HEX_KEYS))
def test_first_with_placed_keys_matches_a_python_set(
    chunks: list[list[str | None]], known: set[str]
) -> None:
    """Keys placed among keys known up front (one byte each) and the others (the key set)
    together answer ``first`` as a Python set does, repeats inside a chunk included."""
    slot_of = {key: slot for slot, key in enumerate(sorted(known))}
    tracker, flags, start = RepeatTracker("first"), [], 0
    for chunk in chunks:
        slots = np.array([slot_of.get(key, -1) if key else -1 for key in chunk], np.intp)
        tracker.place(slots, len(known))
        ordinals = pa.array(range(start, start + len(chunk)))
        flags += tracker.repeats(pa.array(chunk, pa.string()), ordinals).to_pylist()
        start += len(chunk)
    assert flags == first_reference(chunks)
