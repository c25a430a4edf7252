"""Tests for transforms.keys: the numba BLAKE2b-128 kernel equals hashlib, and keys follow §7."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.keys import blake2b_128_hex, idempotency_keys, key_of, warm_kernel
from transforms.keys import column_hash as keys

KERNEL = {"kernel_min_rows": 0}  # force the numba kernel even for a handful of rows
HASHLIB = {"kernel_min_rows": 10**12}  # force the hashlib loop
HEX = re.compile(r"^[0-9a-f]{32}$")
MESSAGES = [
    *(b"\xa5" * n for n in (0, 1, 127, 128, 129, 255, 256, 257, 1000)),
    bytes(range(256)) * 3,
    "Zoë — 完了 ✓ 🎓".encode(),
]
MAYBE_TEXT = st.lists(st.one_of(st.none(), st.text(max_size=300)), max_size=40)


def reference(values: Sequence[bytes | str | None]) -> list[str | None]:
    """hashlib's hex BLAKE2b-128 of every value, None for None."""
    return [
        None
        if value is None
        else hashlib.blake2b(
            value.encode() if isinstance(value, str) else value, digest_size=16
        ).hexdigest()
        for value in values
    ]


@pytest.fixture(autouse=True, scope="module")
def _kernel_loaded() -> None:
    """Columns use the kernel only once it is loaded: load it before the kernel tests."""
    warm_kernel()


def test_numba_kernel_is_available() -> None:
    """The kernel loads here, so the kernel tests below really exercise it (not the fallback)."""
    assert warm_kernel() is True


def test_empty_message_has_the_rfc_digest() -> None:
    """The empty message hashes as one final zero block with t=0 (published BLAKE2b-128 of "")."""
    got = blake2b_128_hex(pa.array([b""], pa.binary()), **KERNEL).to_pylist()
    assert got == ["cae66941d9efbd404e4d88758ea67670"]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: f"{len(m)}B")
def test_kernel_matches_hashlib_at_block_boundaries(message: bytes) -> None:
    """Lengths around the 128-byte block and non-ASCII text hash exactly as hashlib does."""
    assert blake2b_128_hex(pa.array([message]), **KERNEL).to_pylist() == reference([message])


def test_kernel_and_hashlib_paths_agree_on_a_batch() -> None:
    """All boundary messages in one array: the kernel, the hashlib loop and hashlib agree."""
    values = pa.array(MESSAGES, pa.binary())
    expected = reference(list(MESSAGES))
    assert blake2b_128_hex(values, **KERNEL).to_pylist() == expected
    assert blake2b_128_hex(values, **HASHLIB).to_pylist() == expected


@settings(max_examples=200, deadline=None)
@given(MAYBE_TEXT)
def test_kernel_equals_hashlib_on_any_text(values: list[str | None]) -> None:
    """For random text (empty, unicode, multi-block, nulls) the kernel equals hashlib row by row."""
    got = blake2b_128_hex(pa.array(values, pa.string()), **KERNEL)
    assert got.type == pa.string()
    assert got.to_pylist() == reference(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=300)), max_size=40))
def test_kernel_equals_hashlib_on_any_bytes_split_across_threads(
    values: list[bytes | None],
) -> None:
    """Binary input hashed on three threads still equals hashlib row by row."""
    got = blake2b_128_hex(pa.array(values, pa.binary()), threads=3, **KERNEL)
    assert got.to_pylist() == reference(values)


def test_sliced_array_with_nulls_uses_its_offset() -> None:
    """A slice (non-zero offset into the buffers) hashes its own rows and keeps its nulls."""
    whole = pa.array(["skip me", None, "a", "", None, "ünï", "x" * 200, "tail"], pa.string())
    part = whole.slice(2, 5)
    for threads in (1, 2):
        got = blake2b_128_hex(part, threads=threads, **KERNEL)
        assert got.to_pylist() == reference(part.to_pylist())
        assert got.null_count == 1


def test_chunked_input_is_hashed_as_one_column() -> None:
    """A chunked array (several record batches) gives one array with every chunk's rows."""
    chunks = pa.chunked_array([["a", None], [], ["b", "c" * 130]], pa.string())
    got = blake2b_128_hex(chunks, **KERNEL)
    assert isinstance(got, pa.Array)
    assert got.to_pylist() == reference(["a", None, "b", "c" * 130])


@pytest.mark.parametrize("value_type", [pa.large_string(), pa.large_binary(), pa.binary()])
def test_large_and_binary_types_are_hashed(value_type: pa.DataType) -> None:
    """64-bit offsets and binary columns hash like string ones, on both paths."""
    values = ["", "k", "é" * 100, None]
    column = pa.array(
        [v if v is None or "string" in str(value_type) else v.encode() for v in values]
    )
    column = column.cast(value_type)
    assert blake2b_128_hex(column, **KERNEL).to_pylist() == reference(values)
    assert blake2b_128_hex(column, **HASHLIB).to_pylist() == reference(values)


def test_empty_column_gives_empty_keys() -> None:
    """No rows in, no rows out (the kernel is never handed empty buffers)."""
    assert blake2b_128_hex(pa.array([], pa.string()), **KERNEL).to_pylist() == []


def test_non_text_column_is_rejected() -> None:
    """Only string/binary columns can be hashed; numbers are a programming error."""
    with pytest.raises(TypeError, match="string or binary"):
        blake2b_128_hex(pa.array([1, 2]))


def test_key_of_is_the_design_definition() -> None:
    """key_of is BLAKE2b-128 of account, user, trimmed object and completed_at joined by U+001F."""
    joined = "acc_1\x1femail:zoë@example.com\x1fcourse-9\x1f2024-05-01T12:00:00Z"
    expected = hashlib.blake2b(joined.encode("utf-8"), digest_size=16).hexdigest()
    got = key_of("acc_1", "email:zoë@example.com", "  course-9\t", "2024-05-01T12:00:00Z")
    assert got == expected
    assert key_of("a", "u", "lo", None) == key_of("a", "u", "lo", "")


def test_idempotency_keys_follow_the_four_part_join() -> None:
    """Keys equal key_of; a missing completed_at is an empty part; missing ids give null keys."""
    account = pa.array(["acc", "acc", None, "acc", "acc"])
    user = pa.array(["u1", "external_reference:E7", "u3", None, "u5"])
    objects = pa.array([" lo-1 ", "lo-2", "lo-3", "lo-4", None])
    completed = pa.array(["2024-01-02T03:04:05Z", None, None, None, None])
    got = idempotency_keys(account, user, objects, completed)
    assert got.type == pa.string()
    assert got.to_pylist() == [
        key_of("acc", "u1", "lo-1", "2024-01-02T03:04:05Z"),
        key_of("acc", "external_reference:E7", "lo-2", None),
        None,
        None,
        None,
    ]


def test_idempotency_keys_accept_large_and_all_null_columns() -> None:
    """large_string columns and an all-null completed_at column (type null) still key correctly."""
    text = pa.array(["a", "b"], pa.large_string())
    got = idempotency_keys(pa.array(["x", "y"]), text, text, pa.array([None, None]))
    assert got.to_pylist() == [key_of("x", "a", "a", None), key_of("y", "b", "b", None)]


def test_idempotency_keys_reject_columns_of_different_lengths() -> None:
    """Columns of one table always have one length; a mismatch is a programming error."""
    with pytest.raises(ValueError, match="differ in length"):
        idempotency_keys(pa.array(["a"]), pa.array(["b"]), pa.array(["c"]), pa.array([]))


ROW = st.tuples(
    st.one_of(st.none(), st.text(max_size=20)),
    st.one_of(st.none(), st.text(max_size=60)),
    st.one_of(st.none(), st.text(max_size=60)),
    st.one_of(st.none(), st.text(max_size=30)),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(ROW, max_size=30), st.sampled_from([1, 2]))
def test_idempotency_keys_equal_key_of_row_by_row(
    rows: list[tuple[str | None, str | None, str | None, str | None]], threads: int
) -> None:
    """Through the kernel, on one or two threads, every key equals key_of of its row."""
    columns = [pa.array([row[i] for row in rows], pa.string()) for i in range(4)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys, "KERNEL_MIN_ROWS", 0)
        patch.setattr(keys, "THREADED_MIN_ROWS", 2 if threads == 2 else 10**12)
        got = idempotency_keys(*columns)
    expected = [
        None if a is None or u is None or lo is None else key_of(a, u, lo, done)
        for a, u, lo, done in rows
    ]
    assert got.to_pylist() == expected
    assert all(HEX.match(key) for key in got.to_pylist() if key is not None)
