"""Text clean-up shared by every converter: trimming, blanks, case-insensitive matching keys."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.string_buffers import edge_byte_in, value_lengths

# Blank, whitespace-only, N/A (any case), NULL/null: the field is omitted (DESIGN §5).
_BLANK_WORDS = ("n/a", "null")


def _case_variants(word: str) -> list[str]:
    variants = [""]
    for char in word:
        options = {char.lower(), char.upper()}
        variants = [v + o for v in variants for o in sorted(options)]
    return variants


# Every spelling of the blank words: a hash lookup is several times faster than a regex.
_BLANKS = pa.array(["", *(v for word in _BLANK_WORDS for v in _case_variants(word))], pa.string())
_BLANK_LENGTHS = np.array(sorted({0, *(len(word) for word in _BLANK_WORDS)}))
# A first or last byte that may belong to white space: ASCII controls and space, and any
# non-ASCII byte (Unicode spaces such as U+00A0 or U+3000 are several bytes).
_MAYBE_SPACE = np.zeros(256, np.bool_)
_MAYBE_SPACE[:0x21] = _MAYBE_SPACE[0x7F:] = True


def clean_text(values: pa.Array) -> pa.Array:
    """Trim surrounding white space and turn blank markers into nulls; non-strings pass through.

    Each pass is skipped when a numpy look at the buffers shows it would change nothing (ids,
    codes and timestamps seldom have white space at their edges or a blank word's length).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return values
    trimmed = trim_whitespace(values)
    if not np.isin(value_lengths(trimmed), _BLANK_LENGTHS).any():
        return trimmed
    blank = pc.is_in(trimmed, value_set=_BLANKS)
    return pc.if_else(blank, pa.scalar(None, trimmed.type), trimmed)


def trim_whitespace(values: pa.Array) -> pa.Array:
    """``utf8_trim_whitespace``, skipped when no value starts or ends with a byte of white space."""
    return pc.utf8_trim_whitespace(values) if edge_byte_in(values, _MAYBE_SPACE) else values


def match_key(values: pa.Array) -> pa.Array:
    """Key for case- and space-insensitive matching: trimmed, lower-cased, inner runs collapsed.

    Computed once per distinct value (statuses have a handful) and spread back.
    """
    text = pc.cast(values, pa.string()) if not pa.types.is_string(values.type) else values
    encoded = pc.dictionary_encode(text)
    trimmed = pc.utf8_trim_whitespace(encoded.dictionary)
    keys = pc.utf8_lower(pc.replace_substring_regex(trimmed, r"\s+", " "))
    return pc.take(keys, encoded.indices)


def match_key_of(value: str) -> str:
    """The same key for one Python string (mapping and filter entries)."""
    return " ".join(str(value).split()).lower()
