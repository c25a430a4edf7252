"""Flavour matching: which shipped mapping a header is, compared trimmed and case-insensitively."""

from __future__ import annotations

from transforms.flavours import best_flavour, mapping_columns, match_flavours
from transforms.mapping import MappingSpec, parse_mapping


def spec(user: str, lo: str, *extra: str) -> MappingSpec:
    """A mapping reading ``user``, ``lo`` and ``extra`` passthrough columns."""
    passthrough = f"\n  passthrough: {{columns: [{', '.join(extra)}]}}" if extra else ""
    text = f"version: 1\nuser: {{column: {user}}}\nfields:\n  learning_object_external_reference: {{column: {lo}}}{passthrough}\n"
    return parse_mapping(text, {})


def test_columns_are_distinct_in_mapping_order() -> None:
    """A column named twice (field and filter) counts once."""
    text = (
        "version: 1\nuser: {column: U}\nfields:\n  learning_object_external_reference: {column: C}\n"
        "  result: {column: S}\nfilters:\n  - {column: S, in: [x]}\n"
    )
    assert mapping_columns(parse_mapping(text, {})) == ("U", "C", "S")


def test_header_names_are_trimmed_and_case_insensitive() -> None:
    """`` user id `` matches ``User ID``."""
    matches = match_flavours([" user id ", "COURSE"], {"a": spec("User ID", "Course")})
    assert best_flavour(matches) is not None
    assert matches[0].matched == ("User ID", "Course")


def test_the_complete_flavour_with_most_columns_wins() -> None:
    """Two flavours fit fully: the one naming more columns is the better description."""
    specs = {"small": spec("U", "C"), "large": spec("U", "C", "Title"), "other": spec("X", "C")}
    matches = match_flavours(["U", "C", "Title", "Extra"], specs)
    assert [m.name for m in matches] == ["large", "small", "other"]
    best = best_flavour(matches)
    assert best is not None and best.name == "large"


def test_no_complete_flavour_ranks_partials_by_share() -> None:
    """Without a full match there is no best flavour; partials come by share, missing listed."""
    specs = {"half": spec("U", "Missing"), "most": spec("U", "C", "Gone")}
    matches = match_flavours(["U", "C"], specs)
    assert best_flavour(matches) is None
    assert [(m.name, m.missing) for m in matches] == [("most", ("Gone",)), ("half", ("Missing",))]
    assert round(matches[0].share, 2) == 0.67
