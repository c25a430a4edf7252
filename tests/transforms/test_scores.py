"""Score conversion of DESIGN §5: percentages, fractions, ratios, decimal commas, bounds."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.scores import parse_score, to_scores


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("87", "percent", 87.0),
        ("87%", "percent", 87.0),
        ("87 %", "percent", 87.0),
        ("87.5", "percent", 87.5),
        ("87,5", "percent", 87.5),
        ("0.87", "fraction", 87.0),
        ("0,875", "fraction", 87.5),
        ("87%", "fraction", 87.0),
        ("87/100", "percent", 87.0),
        ("87 / 100", "percent", 87.0),
        ("8.7/10", "percent", 87.0),
        ("2/3", "percent", 66.67),
        ("1/3", "percent", 33.33),
        ("99.995", "percent", 100.0),
        ("0", "percent", 0.0),
        ("100", "percent", 100.0),
        ("087", "percent", 87.0),
        ("-0", "percent", 0.0),
    ],
)
def test_accepted_scores(text: str, scale: str, expected: float) -> None:
    """Every accepted score shape becomes the percentage rounded half-up to two decimals."""
    assert parse_score(text, scale) == expected


@pytest.mark.parametrize(
    ("text", "scale", "fragment"),
    [
        ("101", "percent", "outside 0..100"),
        ("1.5", "fraction", "outside 0..100"),
        ("11/10", "percent", "outside 0..100"),
        ("-5", "percent", "is -5.00%, outside 0..100"),
        ("-0,5", "fraction", "is -50.00%, outside 0..100"),
        ("-87/100", "percent", "outside 0..100"),
        ("--5", "percent", "not a number"),
        ("abc", "percent", "not a number"),
        ("87/0", "percent", "divides by zero"),
        ("8 7", "percent", "not a number"),
        ("87%%", "percent", "not a number"),
    ],
)
def test_rejected_scores(text: str, scale: str, fragment: str) -> None:
    """Out-of-range and unparseable scores raise a ValueError naming the value."""
    with pytest.raises(ValueError, match=fragment) as info:
        parse_score(text, scale)
    assert repr(text) in str(info.value)


def test_column_keeps_blanks_and_reports_codes() -> None:
    """A column converts row by row: nulls stay null without error, bad rows get invalid_score."""
    converted = to_scores(pa.array(["87", None, "150", "87"]), "percent")
    assert converted.values.to_pylist() == [87.0, None, None, 87.0]
    assert converted.codes.to_pylist() == [None, None, "invalid_score", None]


def test_numeric_parquet_column() -> None:
    """Numbers from Parquet are scores too (scale fraction multiplies by 100)."""
    converted = to_scores(pa.array([0.5, 0.875, None]), "fraction")
    assert converted.values.to_pylist() == [50.0, 87.5, None]


def test_negative_parquet_number_is_out_of_range_not_unparseable() -> None:
    """A negative number from a typed column is named as outside 0..100, not as 'not a number'."""
    converted = to_scores(pa.array([-0.5, 0.5]), "fraction")
    assert converted.codes.to_pylist() == ["invalid_score", None]
    assert converted.messages.to_pylist()[0] == "score '-0.5' is -50.00%, outside 0..100"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(max_size=12) | st.none(), max_size=20),
    st.sampled_from(["percent", "fraction"]),
)
def test_any_text_is_a_value_or_a_row_error(values: list[str | None], scale: str) -> None:
    """Any text in gives a value or an invalid_score row error, never an exception."""
    converted = to_scores(pa.array(values, pa.string()), scale)
    for value, code, original in zip(
        converted.values.to_pylist(), converted.codes.to_pylist(), values, strict=True
    ):
        if original is None:
            assert value is None and code is None
        else:
            assert (value is None) != (code is None)
            assert value is None or 0 <= value <= 100
