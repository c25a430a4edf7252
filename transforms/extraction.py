"""The part of a value a field takes: a ``prefix`` to strip and/or an ``extract`` regex group.

``mailto:ana@example.com`` with ``prefix: "mailto:"`` is ``ana@example.com``. A value that lacks
the prefix or does not match the pattern is blank for that field (DESIGN §4). Patterns run in
Arrow's RE2 engine, once per distinct value.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from transforms.text import clean_text


def check_pattern(pattern: str | None) -> None:
    """ValueError (one line) unless ``pattern`` compiles and has exactly one capturing group."""
    if pattern is None:
        return
    try:
        groups = re.compile(pattern).groups
        pc.match_substring_regex(pa.array([""]), pattern)  # RE2 (Arrow) must accept it too
    except (re.error, pa.ArrowInvalid) as exc:
        reason = " ".join(str(exc).split())
        raise ValueError(f"pattern {pattern!r} does not compile: {reason}") from None
    if groups != 1:
        raise ValueError(
            f"pattern {pattern!r} has {groups} groups; give exactly one, around the part to take"
        )


def take_part(values: pa.Array, prefix: str | None, pattern: str | None) -> pa.Array:
    """Each value's part after ``prefix`` and in ``pattern``'s group, cleaned; null where none."""
    if prefix is None and pattern is None:
        return values
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary
    if prefix is not None:
        has_prefix = pc.starts_with(distinct, prefix)
        rest = pc.utf8_slice_codeunits(distinct, len(prefix))
        distinct = pc.if_else(has_prefix, rest, pa.scalar(None, distinct.type))
    if pattern is not None:
        distinct = _group_of(distinct, pattern)
    return clean_text(pc.take(distinct, encoded.indices))


def _group_of(values: pa.Array, pattern: str) -> pa.Array:
    """The first match's group of every value (a search, as ``re.search``); null where none."""
    matched = pc.fill_null(pc.match_substring_regex(values, pattern), False)
    whole = f"(?s)^.*?(?:{pattern}).*$"
    taken = pc.replace_substring_regex(values, whole, r"\1", max_replacements=1)
    return pc.if_else(matched, taken, pa.scalar(None, values.type))


def blank_message(name: str, prefix: str | None, pattern: str | None) -> str:
    """Why a required value is missing: blank, or (with a prefix or pattern) no part to take."""
    if prefix is None and pattern is None:
        return f"{name} is blank"
    return f"{name} is blank or has no part matching its prefix/extract"
