"""Tests for transforms.durations: every DESIGN §5 `time_spent` rule, whole columns, properties."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.converted import Converted
from transforms.durations import UNITS, format_duration, parse_duration, to_iso_durations
from transforms.errors import MappingError
from transforms.text import clean_text

PROPERTY = settings(max_examples=200, deadline=None)
COLUMN_PROPERTY = settings(max_examples=100, deadline=None)  # each example converts a column
# Canonical output shape: hours without limit, minutes and seconds below 60, no zero parts.
SECONDS = r"(?:(?:[1-9]|[1-5]\d)(?:\.\d{0,2}[1-9])?|0\.\d{0,2}[1-9])S"
CANONICAL = re.compile(rf"PT0S|PT(?=\d)(?:[1-9]\d*H)?(?:[1-9]M|[1-5]\dM)?(?:{SECONDS})?")

ACCEPTED = [
    # bare numbers in the mapping's unit, exact decimal arithmetic
    ("90", "minutes", "PT1H30M"),
    ("90", "seconds", "PT1M30S"),
    ("1.1", "hours", "PT1H6M"),
    ("1,5", "hours", "PT1H30M"),
    ("0090", "minutes", "PT1H30M"),
    (".5", "minutes", "PT30S"),
    ("26", "hours", "PT26H"),
    ("0", "seconds", "PT0S"),
    ("0.0625", "excel_days", "PT1H30M"),
    ("1", "excel_days", "PT24H"),
    ("-0", "seconds", "PT0S"),
    # canonical seconds: at most 3 decimals, half-up, no trailing zeros
    ("1.5", "seconds", "PT1.5S"),
    ("1.2345", "seconds", "PT1.235S"),
    ("1.0005", "seconds", "PT1.001S"),
    ("1.0004", "seconds", "PT1S"),
    ("0.0004", "seconds", "PT0S"),
    ("59.9995", "seconds", "PT1M"),
    ("3600.10", "seconds", "PT1H0.1S"),
    # clock H:MM is hours:minutes, whatever the unit
    ("1:30", None, "PT1H30M"),
    ("1:30", "seconds", "PT1H30M"),
    ("0:05", "minutes", "PT5M"),
    ("26:00", None, "PT26H"),
    ("00:00", None, "PT0S"),
    ("0:45:30", None, "PT45M30S"),
    ("1:02:03.5", None, "PT1H2M3.5S"),
    ("1:02:03,25", None, "PT1H2M3.25S"),
    ("100:00:00", None, "PT100H"),
    # SCORM 1.2 HHHH:MM:SS.SS
    ("0000:30:00.00", None, "PT30M"),
    ("0102:03:04.56", "hours", "PT102H3M4.56S"),
    # ISO 8601
    ("PT90M", None, "PT1H30M"),
    ("P1D", None, "PT24H"),
    ("P1W", None, "PT168H"),
    ("PT1.5H", None, "PT1H30M"),
    ("PT1,5H", None, "PT1H30M"),
    ("P0Y0M1D", None, "PT24H"),
    ("P0Y0M0DT1H", None, "PT1H"),
    ("P1DT2H", None, "PT26H"),
    ("P1.5D", None, "PT36H"),
    ("PT1H30M15.5S", "minutes", "PT1H30M15.5S"),
    ("PT3600S", None, "PT1H"),
    ("PT0.0005S", None, "PT0.001S"),
    ("P0D", None, "PT0S"),
    ("PT0S", None, "PT0S"),
    ("pt1h30m", None, "PT1H30M"),
    # unit text, case-insensitive, m = minutes
    ("1h 30m", None, "PT1H30M"),
    ("1h30m", None, "PT1H30M"),
    ("1 hr 30 mins", None, "PT1H30M"),
    ("90 min", None, "PT1H30M"),
    ("90 min", "hours", "PT1H30M"),
    ("2d 3h", None, "PT51H"),
    ("1,5 h", None, "PT1H30M"),
    ("1.5 hours", None, "PT1H30M"),
    ("1H 30M", None, "PT1H30M"),
    ("1 Hour 30 Minutes", None, "PT1H30M"),
    ("1 hour, 30 minutes", None, "PT1H30M"),
    ("1 hour and 30 minutes", None, "PT1H30M"),
    ("45 secs", None, "PT45S"),
    ("1 wk", None, "PT168H"),
    ("250 ms", None, "PT0.25S"),
    ("1 hr. 30 min.", None, "PT1H30M"),
]

REJECTED = [
    ("90", None, "bare number '90' has no unit: set time_spent.unit"),
    ("1,5", None, "bare number '1,5' has no unit"),
    # negative, in any spelling
    ("-5", "minutes", "negative duration '-5'"),
    ("-5", None, "negative duration '-5'"),
    ("-1:30", None, "negative duration '-1:30'"),
    ("-PT5M", None, "negative duration '-PT5M'"),
    ("PT-5M", None, "negative duration 'PT-5M'"),
    ("-1h", None, "negative duration '-1h'"),
    # clock
    ("1:5", None, "'1:5': minutes need two digits"),
    ("1:005", None, "'1:005': minutes need two digits"),
    ("1:", None, "'1:': minutes need two digits"),
    ("1:60", None, "'1:60': minutes and seconds must be below 60"),
    ("1:30:60", None, "'1:30:60': minutes and seconds must be below 60"),
    ("1:30:5", None, "'1:30:5': seconds need two digits"),
    ("1:30:", None, "'1:30:': seconds need two digits"),
    ("1:2:3:4", None, "'1:2:3:4': a clock time has three parts at most"),
    ("1:30.5", None, "'1:30.5': only seconds may have a fraction"),
    (":30", None, "':30': hours must be digits"),
    ("1.5:30", None, "'1.5:30': hours must be digits"),
    # ISO 8601
    ("P1Y", None, "'P1Y': years and months are ambiguous"),
    ("P1M", None, "'P1M': years and months are ambiguous"),
    ("P0Y2M", None, "'P0Y2M': years and months are ambiguous"),
    ("PT30M1H", None, "'PT30M1H': parts out of order or repeated"),
    ("P1D1W", None, "'P1D1W': parts out of order or repeated"),
    ("PT1H1H", None, "'PT1H1H': parts out of order or repeated"),
    ("PT90", None, "'PT90': number without designator"),
    ("P1", None, "'P1': number without designator"),
    ("PT1H30", None, "'PT1H30': number without designator"),
    ("PT", None, "'PT': T must be followed by hours, minutes or seconds"),
    ("P1DT", None, "'P1DT': T must be followed by hours, minutes or seconds"),
    ("P", None, "'P': ISO duration has no parts"),
    ("P1H", None, "'P1H': H belongs after T"),
    ("PT1D", None, "'PT1D': D belongs before T"),
    ("PT1X", None, "'PT1X': unknown designator 'X'"),
    ("PT1.5H30M", None, "'PT1.5H30M': only the last part may have a fraction"),
    ("P T1H", None, "'P T1H': unexpected ' '"),
    # unit text
    ("3 months", None, "'3 months': months and years are ambiguous"),
    ("1 year", None, "'1 year': months and years are ambiguous"),
    ("2 mo", None, "'2 mo': months and years are ambiguous"),
    ("5 parsecs", None, "'5 parsecs': unknown unit 'parsecs'"),
    ("30m 1h", None, "'30m 1h': parts out of order or repeated"),
    ("1h 1h", None, "'1h 1h': parts out of order or repeated"),
    ("1.5h 30m", None, "'1.5h 30m': only the last part may have a fraction"),
    ("1h 30", None, "'1h 30': every number needs a unit"),
    ("1h,", None, "'1h,': unexpected end"),
    ("1h.30m", None, "'1h.30m': unexpected '.'"),
    (".5h", None, "unrecognised duration '.5h'"),
    # anything else
    ("abc", "minutes", "unrecognised duration 'abc'"),
    ("2024-01-01", "minutes", "unrecognised duration '2024-01-01'"),
    ("+5", "minutes", "unrecognised duration '+5'"),
    ("1 : 30", None, "'1 : 30': hours must be digits"),
    ("\u0661\u0662", "minutes", "unrecognised duration '\u0661\u0662'"),
    ("9" * 41, "seconds", "number has more than 40 digits"),
]


def column(values: Sequence[object], kind: pa.DataType | None = None) -> pa.Array:
    """A column as the readers hand it over: text is cleaned, other types pass through."""
    return clean_text(pa.array(values, type=kind))


def rows(converted: Converted) -> list[tuple[object, object, object]]:
    """(value, code, message) per row, for whole-column comparisons."""
    return list(
        zip(
            converted.values.to_pylist(),
            converted.codes.to_pylist(),
            converted.messages.to_pylist(),
            strict=True,
        )
    )


def expected_row(text: str | None, unit: str | None) -> tuple[str | None, str | None, str | None]:
    """What the per-value core says about one cleaned value (blank: omitted, no error)."""
    if text is None:
        return None, None, None
    try:
        return format_duration(parse_duration(text, unit)), None, None
    except ValueError as error:
        return None, "invalid_duration", str(error)


@pytest.mark.parametrize(("text", "unit", "expected"), ACCEPTED)
def test_accepted_spellings_give_the_canonical_duration(
    text: str, unit: str | None, expected: str
) -> None:
    """Every accepted §5 spelling converts to the exact canonical string."""
    assert format_duration(parse_duration(text, unit)) == expected


@pytest.mark.parametrize(("text", "unit", "message"), REJECTED)
def test_rejected_spellings_raise_a_message_naming_the_value(
    text: str, unit: str | None, message: str
) -> None:
    """Every §5 rejection raises ValueError whose message says why and quotes the value."""
    with pytest.raises(ValueError) as caught:
        parse_duration(text, unit)
    assert message in str(caught.value)
    assert f"'{text}'" in str(caught.value) or len(text) > 40


@pytest.mark.parametrize(
    ("text", "unit", "message"),
    [
        ("-5", "minutes", "negative duration '-5'"),
        ("90", None, "bare number '90' has no unit: set time_spent.unit"),
        ("P1Y", None, "'P1Y': years and months are ambiguous"),
        ("1:5", None, "'1:5': minutes need two digits"),
    ],
)
def test_messages_are_exactly_as_documented(text: str, unit: str | None, message: str) -> None:
    """The messages quoted in the brief are produced word for word."""
    with pytest.raises(ValueError) as caught:
        parse_duration(text, unit)
    assert str(caught.value) == message


def test_long_values_are_shortened_in_messages() -> None:
    """A very long bad value is quoted by its start, so messages stay readable."""
    text = "x" * 100
    with pytest.raises(ValueError, match=r"^unrecognised duration 'x{57}\.\.\.'$"):
        parse_duration(text, "minutes")


def test_parse_returns_exact_decimal_seconds() -> None:
    """Arithmetic is exact: 1.1 hours is 3960 s, not 3960.0000000000005."""
    assert parse_duration("1.1", "hours") == Decimal(3960)
    assert parse_duration("  PT1.5S ", None) == Decimal("1.5")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        ("0", "PT0S"),
        ("93600", "PT26H"),
        ("1.5", "PT1.5S"),
        ("1.500", "PT1.5S"),
        ("60.100", "PT1M0.1S"),
        ("3661.25", "PT1H1M1.25S"),
        ("0.0005", "PT0.001S"),
        ("0.00049999", "PT0S"),
        ("1.2355", "PT1.236S"),
        ("3599.9996", "PT1H"),
        ("86400", "PT24H"),
        ("360000000", "PT100000H"),
    ],
)
def test_format_writes_hours_minutes_seconds_only(seconds: str, expected: str) -> None:
    """Canonical output: no days, zero parts omitted, seconds rounded half-up to 3 decimals."""
    assert format_duration(Decimal(seconds)) == expected


@pytest.mark.parametrize("seconds", ["-1", "NaN", "Infinity", "1E+60"])
def test_format_refuses_what_is_no_duration(seconds: str) -> None:
    """Negative, non-finite and absurdly large amounts are refused with ValueError."""
    with pytest.raises(ValueError, match="as a duration"):
        format_duration(Decimal(seconds))


def test_units_are_the_documented_four() -> None:
    """The mapping validator reads the allowed units from UNITS."""
    assert UNITS == ("seconds", "minutes", "hours", "excel_days")


def test_unknown_unit_is_a_mapping_error() -> None:
    """A unit outside UNITS is a run-level mapping error naming the key and the choices."""
    with pytest.raises(MappingError, match=r"time_spent\.unit.*'days'.*excel_days"):
        parse_duration("5", "days")
    with pytest.raises(MappingError, match=r"time_spent\.unit"):
        to_iso_durations(pa.array(["5"]), "weeks")


def test_blank_rows_are_omitted_without_error() -> None:
    """Blank, white space, N/A, NULL and null rows become null values and carry no error."""
    converted = to_iso_durations(
        column(["90", "", "   ", "N/A", None, "null", " 1:30 "]), "minutes"
    )
    assert converted.values.to_pylist() == ["PT1H30M", None, None, None, None, None, "PT1H30M"]
    assert converted.codes.null_count == 7
    assert converted.messages.null_count == 7


def test_mixed_column_has_a_specific_message_per_row() -> None:
    """Valid and invalid rows sit side by side; each invalid row names its own value."""
    converted = to_iso_durations(
        column(["90", "abc", "-5", "1:5", "PT45M", "abc", "P1Y"]), "minutes"
    )
    assert rows(converted) == [
        ("PT1H30M", None, None),
        (None, "invalid_duration", "unrecognised duration 'abc'"),
        (None, "invalid_duration", "negative duration '-5'"),
        (None, "invalid_duration", "'1:5': minutes need two digits"),
        ("PT45M", None, None),
        (None, "invalid_duration", "unrecognised duration 'abc'"),
        (None, "invalid_duration", "'P1Y': years and months are ambiguous"),
    ]
    assert converted.invalid.to_pylist() == [False, True, True, True, False, True, True]


def test_text_column_without_unit_rejects_only_bare_numbers() -> None:
    """With no unit, self-describing values convert and bare numbers are row errors."""
    converted = to_iso_durations(column(["90", "1:30", "PT5M", "2h"]), None)
    assert rows(converted) == [
        (None, "invalid_duration", "bare number '90' has no unit: set time_spent.unit"),
        ("PT1H30M", None, None),
        ("PT5M", None, None),
        ("PT2H", None, None),
    ]


def test_long_whole_numbers_in_text_match_the_per_value_core() -> None:
    """Whole numbers too long for the int64 fast path still convert exactly."""
    values = ["1234567890123456789", "999999999999999999", "000000000000000090", "12"]
    converted = to_iso_durations(column(values), "excel_days")
    assert rows(converted) == [expected_row(v, "excel_days") for v in values]
    assert converted.values[2].as_py() == "PT2160H"


@pytest.mark.parametrize("kind", [pa.int8(), pa.int32(), pa.int64(), pa.uint16()])
def test_integer_column_reads_numbers_in_the_unit(kind: pa.DataType) -> None:
    """Integer Parquet columns are bare numbers in the mapping's unit; nulls stay null."""
    converted = to_iso_durations(pa.array([90, None, 0, 1], type=kind), "minutes")
    assert rows(converted) == [
        ("PT1H30M", None, None),
        (None, None, None),
        ("PT0S", None, None),
        ("PT1M", None, None),
    ]


def test_integer_column_rejects_negative_numbers() -> None:
    """A negative integer is a row error naming it."""
    converted = to_iso_durations(pa.array([-5, 26, None]), "hours")
    assert rows(converted) == [
        (None, "invalid_duration", "negative duration '-5'"),
        ("PT26H", None, None),
        (None, None, None),
    ]


def test_integer_column_beyond_int64_seconds_is_exact() -> None:
    """Integers whose seconds overflow int64 fall back to exact decimal arithmetic."""
    huge = 2**64 - 1
    converted = to_iso_durations(pa.array([huge, 1], type=pa.uint64()), "excel_days")
    assert converted.values.to_pylist() == [
        format_duration(Decimal(huge) * 86400),
        "PT24H",
    ]


def test_float_and_decimal_columns_use_the_written_value() -> None:
    """Float 1.1 means 1.1 (shortest text of the float), so 1.1 hours is exactly PT1H6M."""
    for kind in (pa.float64(), pa.float32()):
        converted = to_iso_durations(pa.array([1.1, 0.5, None, -0.0], type=kind), "hours")
        assert converted.values.to_pylist() == ["PT1H6M", "PT30M", None, "PT0S"]
        assert converted.codes.null_count == 4
    decimals = pa.array([Decimal("1.10"), Decimal("0.25")], type=pa.decimal128(5, 2))
    assert to_iso_durations(decimals, "hours").values.to_pylist() == ["PT1H6M", "PT15M"]


def test_float_column_rejects_negative_and_non_finite_values() -> None:
    """NaN, infinity, negative and absurd floats are row errors, never exceptions."""
    converted = to_iso_durations(
        pa.array([float("nan"), float("inf"), -2.5, 1e300, 2.5]), "seconds"
    )
    assert rows(converted) == [
        (None, "invalid_duration", "'nan' is not a finite number"),
        (None, "invalid_duration", "'inf' is not a finite number"),
        (None, "invalid_duration", "negative duration '-2.5'"),
        (None, "invalid_duration", "'1e+300': number has more than 40 digits"),
        ("PT2.5S", None, None),
    ]


@pytest.mark.parametrize("kind", [pa.int64(), pa.float64(), pa.decimal128(6, 1)])
def test_numeric_column_without_unit_rejects_every_row(kind: pa.DataType) -> None:
    """A numeric column with no unit: every non-null row is an error naming its number."""
    values = [Decimal(90), None] if pa.types.is_decimal(kind) else [90, None]
    converted = to_iso_durations(pa.array(values, type=kind), None)
    assert converted.values.null_count == 2
    assert converted.codes.to_pylist() == ["invalid_duration", None]
    message = converted.messages[0].as_py()
    assert message.startswith("bare number '90") and message.endswith("set time_spent.unit")


def test_duration_column_is_self_describing() -> None:
    """Arrow duration columns (pandas timedelta in Parquet) convert exactly whatever the unit."""
    seconds = to_iso_durations(pa.array([5400, None, -1], type=pa.duration("s")), "hours")
    assert rows(seconds) == [
        ("PT1H30M", None, None),
        (None, None, None),
        (None, "invalid_duration", "negative duration '-1s'"),
    ]
    nanos = pa.array([1_500_000_000, 1_000_500_000], type=pa.duration("ns"))
    assert to_iso_durations(nanos, None).values.to_pylist() == ["PT1.5S", "PT1.001S"]


def test_dictionary_chunked_and_plain_columns_agree() -> None:
    """Dictionary-encoded and chunked inputs give the same rows as a plain text column."""
    values = ["90", " 1:30", None, "x", "N/A", "90", "PT45M"]
    plain = rows(to_iso_durations(column(values), "minutes"))
    encoded = pa.array(values).dictionary_encode()
    assert rows(to_iso_durations(encoded, "minutes")) == plain
    chunked = pa.chunked_array([column(values[:3]), column(values[3:])])
    assert rows(to_iso_durations(chunked, "minutes")) == plain


def test_all_null_column_has_no_values_and_no_errors() -> None:
    """A column of nulls (Parquet null type) is all omitted."""
    converted = to_iso_durations(pa.nulls(3), "minutes")
    assert rows(converted) == [(None, None, None)] * 3


def test_column_types_that_cannot_hold_durations_are_row_errors() -> None:
    """List or boolean cells are row errors; nulls among them stay omitted."""
    lists = to_iso_durations(pa.array([[1], None]), "minutes")
    assert rows(lists) == [
        (None, "invalid_duration", "a list<item: int64> column cannot hold durations"),
        (None, None, None),
    ]
    flags = to_iso_durations(pa.array([True]), "minutes")
    assert rows(flags) == [(None, "invalid_duration", "unrecognised duration 'true'")]


SPELLINGS = [text for text, _, _ in ACCEPTED + REJECTED] + ["", "  ", "N/A", "7", "0007", "-3"]


@COLUMN_PROPERTY
@given(
    st.lists(st.sampled_from(SPELLINGS) | st.integers(0, 10**13).map(str), max_size=30),
    st.sampled_from([*UNITS, None]),
)
def test_column_matches_the_per_value_core(values: list[str], unit: str | None) -> None:
    """Converting by distinct values (and the whole-number fast path) equals converting each."""
    cleaned = column(values, pa.string())
    converted = to_iso_durations(cleaned, unit)
    assert rows(converted) == [expected_row(v, unit) for v in cleaned.to_pylist()]


@COLUMN_PROPERTY
@given(st.lists(st.none() | st.integers(-(2**40), 2**40), max_size=30), st.sampled_from(UNITS))
def test_integer_column_matches_the_per_value_core(values: list[int | None], unit: str) -> None:
    """The Arrow-compute path for integer columns agrees with parse_duration on their text."""
    converted = to_iso_durations(pa.array(values, type=pa.int64()), unit)
    texts = [None if v is None else str(v) for v in values]
    assert rows(converted) == [expected_row(t, unit) for t in texts]


DURATION_ISH = st.text(alphabet="0123456789PTYMWDHSpt:.,- hmsdayinoruN/Al", max_size=16)


@PROPERTY
@given(st.text(max_size=30) | DURATION_ISH, st.sampled_from([*UNITS, None]))
def test_any_text_gives_a_value_or_a_row_error(text: str, unit: str | None) -> None:
    """Whatever the text, a row is a canonical value, an invalid_duration error, or omitted."""
    converted = to_iso_durations(column([text]), unit)
    ((value, code, message),) = rows(converted)
    if value is not None:
        assert isinstance(value, str) and CANONICAL.fullmatch(value)
        assert code is None and message is None
    elif code is not None:
        assert code == "invalid_duration" and message
    else:
        assert message is None and column([text])[0].as_py() is None


@PROPERTY
@given(DURATION_ISH.filter(str.strip) | st.text(min_size=1), st.sampled_from([*UNITS, None]))
def test_parse_returns_non_negative_seconds_or_raises_value_error(
    text: str, unit: str | None
) -> None:
    """The per-value core only ever returns non-negative seconds or raises ValueError."""
    try:
        seconds = parse_duration(text, unit)
    except ValueError as error:
        assert str(error)
    else:
        assert seconds >= 0


@PROPERTY
@given(st.decimals(min_value=0, max_value=10**12, allow_nan=False, allow_infinity=False))
def test_formatted_duration_reparses_to_the_millisecond(seconds: Decimal) -> None:
    """format_duration's output parses back to the amount rounded half-up to milliseconds."""
    text = format_duration(seconds)
    assert CANONICAL.fullmatch(text)
    expected = seconds.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    assert parse_duration(text, None) == expected


@PROPERTY
@given(st.integers(0, 10**13))
def test_canonical_strings_are_fixed_points(millis: int) -> None:
    """A canonical string converts to itself."""
    text = format_duration(Decimal(millis) / 1000)
    assert format_duration(parse_duration(text, None)) == text


@PROPERTY
@given(st.integers(0, 9999), st.integers(0, 59), st.integers(0, 59), st.integers(0, 99))
def test_clock_iso_and_unit_text_agree(hours: int, minutes: int, seconds: int, cents: int) -> None:
    """One amount written as clock, SCORM, ISO 8601 and unit text reads as the same seconds."""
    total = hours * 3600 + minutes * 60 + seconds + Decimal(cents) / 100
    fraction = f"{seconds:02d}.{cents:02d}"
    spellings = [
        f"{hours}:{minutes:02d}:{fraction}",
        f"{hours:04d}:{minutes:02d}:{fraction}",
        f"PT{hours}H{minutes}M{seconds}.{cents:02d}S",
        f"{hours}h {minutes}m {seconds},{cents:02d}s",
    ]
    assert [parse_duration(s, "minutes") for s in spellings] == [total] * 4
