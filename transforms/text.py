"""Text clean-up shared by every converter: trimming, blanks, case-insensitive matching keys."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# Blank, whitespace-only, N/A (any case), NULL/null: the field is omitted (DESIGN §5).
_BLANK_PATTERN = r"(?i)^(?:|n/a|null)$"


def clean_text(values: pa.Array) -> pa.Array:
    """Trim surrounding white space and turn blank markers into nulls; non-strings pass through."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return values
    trimmed = pc.utf8_trim_whitespace(values)
    blank = pc.match_substring_regex(trimmed, _BLANK_PATTERN)
    return pc.if_else(blank, pa.scalar(None, trimmed.type), trimmed)


def match_key(values: pa.Array) -> pa.Array:
    """Key for case- and space-insensitive matching: trimmed, lower-cased, inner runs collapsed."""
    text = pc.cast(values, pa.string()) if not pa.types.is_string(values.type) else values
    collapsed = pc.replace_substring_regex(pc.utf8_trim_whitespace(text), r"\s+", " ")
    return pc.utf8_lower(collapsed)


def match_key_of(value: str) -> str:
    """The same key for one Python string (mapping and filter entries)."""
    return " ".join(str(value).split()).lower()
