"""Tests for the completed_at converter (DESIGN §5): every rule as a table, plus properties."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.converted import Converted
from transforms.timestamps import SPECIAL_FORMATS, check_format, check_timezone, to_utc_millis

NOW = datetime(2030, 1, 1, tzinfo=UTC)
NY, BERLIN = "America/New_York", "Europe/Berlin"
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def convert(
    values: Sequence[object],
    fmt: str | None = None,
    zone: str = "UTC",
    now: datetime = NOW,
    kind: pa.DataType | None = None,
) -> Converted:
    """Run the converter on a Python list (as a string column unless ``kind`` says otherwise)."""
    return to_utc_millis(pa.array(values, kind or pa.string()), fmt, zone, now)


def one(value: object, fmt: str | None = None, zone: str = "UTC", **kwargs: object) -> str | None:
    """Convert one value and return its output text, asserting it raised no row error."""
    result = convert([value], fmt, zone, **kwargs)  # type: ignore[arg-type]
    assert result.codes.to_pylist() == [None], result.messages.to_pylist()
    return result.values[0].as_py()  # type: ignore[no-any-return]


def error(value: object, fmt: str | None = None, zone: str = "UTC", **kwargs: object) -> str:
    """Convert one value, assert it is ``invalid_timestamp`` with no value, return the message."""
    result = convert([value], fmt, zone, **kwargs)  # type: ignore[arg-type]
    assert result.values.to_pylist() == [None]
    assert result.codes.to_pylist() == ["invalid_timestamp"], result.values.to_pylist()
    return result.messages[0].as_py()  # type: ignore[no-any-return]


def expected_text(moment: datetime) -> str:
    """What Python computes for an aware datetime: UTC, rounded half-up to the millisecond."""
    micros = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    millis = (micros + 500) // 1000
    u = datetime(1970, 1, 1) + timedelta(milliseconds=millis)
    day = f"{u.year:04d}-{u.month:02d}-{u.day:02d}"
    return f"{day}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond // 1000:03d}Z"


# --- mapping validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    [None, *SPECIAL_FORMATS, "%m/%d/%Y %I:%M %p", "%d.%m.%Y", "%Y-%j", "%d %b %Y", "%y%m%d", "%c"],
)
def test_check_format_accepts_dates(fmt: str | None) -> None:
    """Absent, special and strptime patterns naming a full date are accepted."""
    check_format(fmt)


@pytest.mark.parametrize(
    ("fmt", "says"),
    [
        ("", "empty"),
        ("%q-%m-%d", "%q is not a strptime directive"),
        ("%Y-%m-%d %", "is not a strptime directive"),
        ("%H:%M", "no full date"),
        ("%m/%d", "no full date"),
        ("%Y-%m", "no full date"),
        ("%Y-%m-%d %H:%M %Z", "%Z zone names are ambiguous"),
        ("epoch", "no full date"),
    ],
)
def test_check_format_rejects_with_what_is_allowed(fmt: str, says: str) -> None:
    """Bad patterns raise ValueError naming the problem and what is allowed."""
    with pytest.raises(ValueError, match="format") as caught:
        check_format(fmt)
    assert says in str(caught.value)


@pytest.mark.parametrize("name", ["UTC", BERLIN, NY, "Asia/Kolkata", "Etc/GMT+5"])
def test_check_timezone_accepts_iana_names(name: str) -> None:
    """IANA zone names zoneinfo knows are accepted."""
    check_timezone(name)


@pytest.mark.parametrize("name", ["Mars/Olympus", "PST", "", "../etc/passwd", "+02:00"])
def test_check_timezone_rejects_unknown_names(name: str) -> None:
    """Unknown zones raise ValueError suggesting IANA names."""
    with pytest.raises(ValueError, match=r"unknown timezone .* IANA name"):
        check_timezone(name)


def test_to_utc_millis_requires_an_aware_now() -> None:
    """A naive ``now`` is a programming error (the run start is an instant)."""
    with pytest.raises(ValueError, match="timezone-aware"):
        convert(["2024-03-05"], now=datetime(2030, 1, 1))


# --- ISO 8601 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "out"),
    [
        ("2024-03-05 14:22:10", NY, "2024-03-05T19:22:10.000Z"),
        ("2024-03-05T14:22:10", NY, "2024-03-05T19:22:10.000Z"),
        ("2024-03-05T14:22", NY, "2024-03-05T19:22:00.000Z"),
        ("2024-03-05 14:22", BERLIN, "2024-03-05T13:22:00.000Z"),
        ("2024-03-05 14:22:10.5", "UTC", "2024-03-05T14:22:10.500Z"),
        ("2024-03-05T14:22:10.123456789", "UTC", "2024-03-05T14:22:10.123Z"),
        ("2024-03-05", NY, "2024-03-05T05:00:00.000Z"),
        ("2024-03-05", BERLIN, "2024-03-04T23:00:00.000Z"),
        ("2024-07-05", BERLIN, "2024-07-04T22:00:00.000Z"),
        ("0001-01-01T00:00:00Z", "UTC", "0001-01-01T00:00:00.000Z"),
        ("1500-06-01 12:00", "UTC", "1500-06-01T12:00:00.000Z"),
    ],
)
def test_iso_naive_and_date_only_are_read_in_the_zone(text: str, zone: str, out: str) -> None:
    """Naive ISO values (T or space, with/without seconds or fraction) are wall time in the zone."""
    assert one(text, zone=zone) == out


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("2024-03-05T14:22:10Z", "2024-03-05T14:22:10.000Z"),
        ("2024-03-05 14:22:10Z", "2024-03-05T14:22:10.000Z"),
        ("2024-03-05T14:22:10+02:00", "2024-03-05T12:22:10.000Z"),
        ("2024-03-05T14:22:10+0200", "2024-03-05T12:22:10.000Z"),
        ("2024-03-05T14:22:10-05:30", "2024-03-05T19:52:10.000Z"),
        ("2024-03-05T14:22+01:00", "2024-03-05T13:22:00.000Z"),
        ("2024-03-05T14:22:10.25-00:00", "2024-03-05T14:22:10.250Z"),
    ],
)
@pytest.mark.parametrize("zone", ["UTC", NY, BERLIN])
def test_iso_explicit_offset_wins_over_the_zone(text: str, out: str, zone: str) -> None:
    """An explicit Z or offset decides the instant whatever source.timezone says."""
    assert one(text, zone=zone) == out


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("2024-03-05T14:22:10.0005Z", "2024-03-05T14:22:10.001Z"),
        ("2024-03-05T14:22:10.00049999Z", "2024-03-05T14:22:10.000Z"),
        ("2024-03-05T14:22:10.1234999Z", "2024-03-05T14:22:10.123Z"),
        ("2024-03-05T14:22:10.9995Z", "2024-03-05T14:22:11.000Z"),
        ("2024-12-31T23:59:59.9995Z", "2025-01-01T00:00:00.000Z"),
        ("1969-12-31T23:59:59.9995Z", "1970-01-01T00:00:00.000Z"),
        ("1600-01-01T00:00:00.0005Z", "1600-01-01T00:00:00.001Z"),
    ],
)
def test_fractions_round_half_up_to_the_millisecond(text: str, out: str) -> None:
    """Sub-millisecond digits round half-up (towards the later instant), before and after 1970."""
    assert one(text) == out


@pytest.mark.parametrize(
    ("text", "zone", "out"),
    [
        # America/New_York: 2024-03-10 02:00 EST → 03:00 EDT; 2024-11-03 02:00 EDT → 01:00 EST
        ("2024-03-10 01:59:59", NY, "2024-03-10T06:59:59.000Z"),
        ("2024-03-10 02:00", NY, "2024-03-10T07:00:00.000Z"),
        ("2024-03-10 02:30", NY, "2024-03-10T07:30:00.000Z"),
        ("2024-03-10 02:59:59.999", NY, "2024-03-10T07:59:59.999Z"),
        ("2024-03-10 03:00", NY, "2024-03-10T07:00:00.000Z"),
        ("2024-11-03 00:59", NY, "2024-11-03T04:59:00.000Z"),
        ("2024-11-03 01:00", NY, "2024-11-03T05:00:00.000Z"),
        ("2024-11-03 01:30", NY, "2024-11-03T05:30:00.000Z"),
        ("2024-11-03 01:59:59.999", NY, "2024-11-03T05:59:59.999Z"),
        ("2024-11-03 02:00", NY, "2024-11-03T07:00:00.000Z"),
        # Europe/Berlin: 2024-03-31 02:00 CET → 03:00 CEST; 2024-10-27 03:00 CEST → 02:00 CET
        ("2024-03-31 01:59", BERLIN, "2024-03-31T00:59:00.000Z"),
        ("2024-03-31 02:30", BERLIN, "2024-03-31T01:30:00.000Z"),
        ("2024-03-31 03:00", BERLIN, "2024-03-31T01:00:00.000Z"),
        ("2024-10-27 01:59", BERLIN, "2024-10-26T23:59:00.000Z"),
        ("2024-10-27 02:30", BERLIN, "2024-10-27T00:30:00.000Z"),
        ("2024-10-27 03:00", BERLIN, "2024-10-27T02:00:00.000Z"),
    ],
)
def test_dst_gap_uses_the_offset_before_and_overlap_its_first_occurrence(
    text: str, zone: str, out: str
) -> None:
    """Gap wall times take the pre-change offset; repeated ones the first (zoneinfo fold=0)."""
    assert one(text, zone=zone) == out


def test_dst_rules_hold_inside_a_large_column() -> None:
    """The vectorised zone table gives the same gap/overlap results amid many other days."""
    days = [f"2024-{m:02d}-{d:02d} 12:00" for m in range(1, 13) for d in range(1, 29)]
    result = convert([*days, "2024-03-10 02:30", "2024-11-03 01:30"], zone=NY)
    assert result.values.to_pylist()[-2:] == [
        "2024-03-10T07:30:00.000Z",
        "2024-11-03T05:30:00.000Z",
    ]
    assert result.values[0].as_py() == "2024-01-01T17:00:00.000Z"
    assert result.values[len(days) - 1].as_py() == "2024-12-28T17:00:00.000Z"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2024/03/05", "slashed date: day/month order is unknown"),
        ("03/05/2024", "slashed date: day/month order is unknown"),
        ("3/5/2024 14:22", "slashed date: day/month order is unknown"),
        ("2024-03-05 10:00 EST", "zone abbreviation"),
        ("2024-03-05T10:00:00 PST", "zone abbreviation"),
        ("2024-03-05 10:00:00 CET", "zone abbreviation"),
        ("0000-00-00", "zero date"),
        ("0000-00-00 00:00:00", "zero date"),
        ("2024-02-30", "not a real date or time"),
        ("2023-02-29 10:00", "not a real date or time"),
        ("2024-04-31", "not a real date or time"),
        ("2024-13-01", "not a real date or time"),
        ("2024-03-05T24:00:00", "not a real date or time"),
        ("2024-03-05T14:60", "not a real date or time"),
        ("2024-03-05T14:22:60", "not a real date or time"),
        ("2024-03-05T14:22:10+24:00", "not a real date or time"),
        ("0000-01-01", "outside the years 0001..9999"),
        ("0001-01-01T00:00:00+01:00", "outside the years 0001..9999"),
        ("garbage", "not ISO 8601"),
        ("20240305", "not ISO 8601"),
        ("2024-3-5", "not ISO 8601"),
        ("2024-03-05t14:22:10", "not ISO 8601"),
        ("2024-03-05T14:22:10 +02:00", "not ISO 8601"),
        ("1709648530", "not ISO 8601"),
        ("\u0662\u0660\u0662\u0664-\u0660\u0663-\u0660\u0665", "not ISO 8601"),
    ],
)
def test_iso_rejects_ambiguous_impossible_and_unparseable_values(text: str, says: str) -> None:
    """Each rejected text is invalid_timestamp with a message naming the value and the reason."""
    message = error(text, zone=NY)
    assert repr(text) in message
    assert says in message


def test_one_bad_row_does_not_spoil_a_uniform_column() -> None:
    """A bad value amid good ones is the only error; the others convert as if alone."""
    good = [f"2024-03-{d:02d} 10:00:00" for d in range(1, 29)]
    result = convert([*good, "2024-02-30 10:00:00", None, "N/A?"], zone=BERLIN)
    assert result.values.to_pylist()[:28] == [
        f"2024-03-{d:02d}T09:00:00.000Z" for d in range(1, 29)
    ]
    assert result.codes.to_pylist()[28:] == ["invalid_timestamp", None, "invalid_timestamp"]
    assert result.values.to_pylist()[28:] == [None, None, None]


def test_many_spread_bad_rows_fall_back_to_splitting_by_shape() -> None:
    """When halving finds too many bad chunks the column is split by shape; results are alike."""
    texts = [
        "2024-02-30 10:00" if i % 20 == 0 else f"2024-05-{i % 28 + 1:02d} 10:00"
        for i in range(2000)
    ]
    result = convert(texts, zone=BERLIN)
    expected = [None if t.startswith("2024-02") else f"{t[:10]}T08:00:00.000Z" for t in texts]
    assert result.values.to_pylist() == expected
    assert result.codes.to_pylist().count("invalid_timestamp") == 100


def test_mixed_column_of_naive_aware_date_only_and_garbage() -> None:
    """Naive, offset, date-only and junk rows in one column each follow their own rule."""
    texts = ["2024-03-05 14:22", "2024-03-05T14:22Z", "2024-03-05", "x", "2024-03-05T14:22+01:00"]
    result = convert(texts, zone=NY)
    assert result.values.to_pylist() == [
        "2024-03-05T19:22:00.000Z",
        "2024-03-05T14:22:00.000Z",
        "2024-03-05T05:00:00.000Z",
        None,
        "2024-03-05T13:22:00.000Z",
    ]
    assert result.codes.to_pylist() == [None, None, None, "invalid_timestamp", None]


def test_blank_values_are_omitted_without_an_error() -> None:
    """Null (already-cleaned blank) input gives a null value and no error code."""
    result = convert([None, "2024-03-05", None], zone="UTC")
    assert result.values.to_pylist() == [None, "2024-03-05T00:00:00.000Z", None]
    assert result.codes.to_pylist() == [None, None, None]
    assert result.messages.to_pylist() == [None, None, None]


def test_output_types_and_lengths() -> None:
    """Values, codes and messages are string arrays of the input's length."""
    result = convert(["2024-03-05", "bad", None])
    assert [a.type for a in (result.values, result.codes, result.messages)] == [pa.string()] * 3
    assert [len(a) for a in (result.values, result.codes, result.messages)] == [3, 3, 3]
    assert result.invalid.to_pylist() == [False, True, False]


def test_empty_and_all_null_columns() -> None:
    """Empty and all-null columns convert to empty/all-null results without errors."""
    assert len(convert([]).values) == 0
    result = convert([None, None], zone=NY)
    assert result.values.to_pylist() == [None, None]
    assert result.codes.to_pylist() == [None, None]


# --- future timestamps --------------------------------------------------------------------------


def test_future_boundary_is_exactly_24_hours() -> None:
    """24 h after the run start is accepted; 24 h + 1 ms is future_timestamp with no value."""
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    result = convert(["2024-06-02T12:00:00.000Z", "2024-06-02T12:00:00.001Z"], now=now)
    assert result.values.to_pylist() == ["2024-06-02T12:00:00.000Z", None]
    assert result.codes.to_pylist() == [None, "future_timestamp"]
    message = result.messages[1].as_py()
    assert "'2024-06-02T12:00:00.001Z'" in message
    assert "more than 24 h after the run started (2024-06-01T12:00:00.000Z)" in message


def test_future_boundary_with_a_zone_and_sub_millisecond_now() -> None:
    """The limit is compared as an instant: naive values in the zone, now's microseconds kept."""
    now = datetime(2024, 6, 1, 8, 0, 0, 500, tzinfo=ZoneInfo(NY))  # 12:00:00.0005Z
    result = convert(["2024-06-02 08:00:00.000", "2024-06-02 08:00:00.001"], zone=NY, now=now)
    assert result.codes.to_pylist() == [None, "future_timestamp"]


# --- strptime formats ---------------------------------------------------------------------------

US = "%m/%d/%Y %I:%M %p"


@pytest.mark.parametrize(
    ("text", "fmt", "zone", "out"),
    [
        ("03/05/2024 02:22 PM", US, NY, "2024-03-05T19:22:00.000Z"),
        ("3/5/2024 2:22 pm", US, NY, "2024-03-05T19:22:00.000Z"),
        ("12/31/2024 12:00 AM", US, NY, "2024-12-31T05:00:00.000Z"),
        ("12/31/2024 12:00 PM", US, "UTC", "2024-12-31T12:00:00.000Z"),
        ("02/29/2024 01:00 AM", US, "UTC", "2024-02-29T01:00:00.000Z"),
        ("03/10/2024 02:30 AM", US, NY, "2024-03-10T07:30:00.000Z"),
        ("11/03/2024 01:30 AM", US, NY, "2024-11-03T05:30:00.000Z"),
        ("05.03.2024 14:22:10", "%d.%m.%Y %H:%M:%S", BERLIN, "2024-03-05T13:22:10.000Z"),
        ("31.03.2024 02:30:00", "%d.%m.%Y %H:%M:%S", BERLIN, "2024-03-31T01:30:00.000Z"),
        ("05 Mar 2024", "%d %b %Y", BERLIN, "2024-03-04T23:00:00.000Z"),
        ("2024-03-05T14:22:10+0200", "%Y-%m-%dT%H:%M:%S%z", NY, "2024-03-05T12:22:10.000Z"),
        ("2024-03-05T14:22:10Z", "%Y-%m-%dT%H:%M:%S%z", NY, "2024-03-05T14:22:10.000Z"),
        ("2024-03-05 14:22:10.1235", "%Y-%m-%d %H:%M:%S.%f", NY, "2024-03-05T19:22:10.124Z"),
        ("2024-065 10:00", "%Y-%j %H:%M", "UTC", "2024-03-05T10:00:00.000Z"),
        ("240305", "%y%m%d", "UTC", "2024-03-05T00:00:00.000Z"),
    ],
)
def test_strptime_formats(text: str, fmt: str, zone: str, out: str) -> None:
    """A strptime pattern reads naive values in the zone and honours %z offsets."""
    assert one(text, fmt, zone) == out


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("02/30/2024 02:22 PM", US),
        ("02/29/2023 01:00 AM", US),
        ("04/31/2024 01:00 AM", US),
        ("13/05/2024 02:22 PM", US),
        ("03/05/2024 14:22 PM", US),
        ("3/5/24 2:22 PM", US),
        ("2024-03-05 14:22", US),
        ("31.04.2024 10:00:00", "%d.%m.%Y %H:%M:%S"),
        ("05.03.2024 14:22:60", "%d.%m.%Y %H:%M:%S"),
        ("30 Feb 2024", "%d %b %Y"),
        ("2024-02-30T01:00:00+0500", "%Y-%m-%dT%H:%M:%S%z"),
        ("2024-02-30T23:00:00-0500", "%Y-%m-%dT%H:%M:%S%z"),
    ],
)
def test_strptime_rejects_impossible_and_mismatched_values(text: str, fmt: str) -> None:
    """Impossible dates (Arrow would roll Feb 30 to Mar 1) and mismatches are invalid_timestamp."""
    message = error(text, fmt, NY)
    assert repr(text) in message
    assert f"does not match format {fmt!r}" in message


def test_strptime_rollover_check_amid_valid_rows() -> None:
    """Rollover detection flags only the impossible rows of a column with many 1st-3rd days."""
    texts = [f"{m:02d}/{d:02d}/2024 10:00 AM" for m in range(1, 13) for d in (1, 2, 3, 28)]
    result = convert([*texts, "02/30/2024 10:00 AM", "02/31/2024 10:00 AM"], US, "UTC")
    assert result.codes.to_pylist() == [None] * len(texts) + ["invalid_timestamp"] * 2
    assert result.values[0].as_py() == "2024-01-01T10:00:00.000Z"


def test_strptime_on_a_sliced_column() -> None:
    """A slice of a larger array (non-zero offset) parses the right rows."""
    column = pa.array(["01/01/2024 01:00 AM", "03/05/2024 02:22 PM", "02/30/2024 02:22 PM"])
    result = to_utc_millis(column.slice(1), US, "UTC", NOW)
    assert result.values.to_pylist() == ["2024-03-05T14:22:00.000Z", None]
    assert result.codes.to_pylist() == [None, "invalid_timestamp"]


FIXED_FORMATS = [US, "%d.%m.%Y %H:%M:%S", "%Y%m%d%H%M", "%d/%m/%y %I%p", "%Y-%m-%dT%H:%M:%S"]


@PROPERTY
@given(
    walls=st.lists(st.datetimes(datetime(1000, 1, 1), datetime(9998, 12, 31)), max_size=15),
    junk=st.lists(st.text(alphabet="0123456789/:. APMapm", max_size=20), max_size=3),
    fmt=st.sampled_from(FIXED_FORMATS),
    zone=st.sampled_from([NY, BERLIN]),
)
def test_strptime_matches_python_strptime_and_zoneinfo(
    walls: list[datetime], junk: list[str], fmt: str, zone: str
) -> None:
    """Zero-padded values (numpy path), others (Arrow/Python paths) agree with Python strptime."""
    texts = [w.strftime(fmt).replace(f"{w.year}", f"{w.year:04d}", 1) for w in walls] + junk
    result = convert(texts, fmt, zone, now=datetime(9999, 1, 1, tzinfo=UTC))
    expected: list[str | None] = []
    for text in texts:
        try:
            wall = datetime.strptime(text, fmt)
        except ValueError:
            expected.append(None)
        else:
            expected.append(expected_text(wall.replace(tzinfo=ZoneInfo(zone))))
    assert result.values.to_pylist() == expected


# --- epochs and Excel serials -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fmt", "out"),
    [
        ("1709648530", "epoch_s", "2024-03-05T14:22:10.000Z"),
        ("1709648530.1235", "epoch_s", "2024-03-05T14:22:10.124Z"),
        ("1709648530.1234999", "epoch_s", "2024-03-05T14:22:10.123Z"),
        ("1709648530.123456789012", "epoch_s", "2024-03-05T14:22:10.123Z"),
        ("0", "epoch_s", "1970-01-01T00:00:00.000Z"),
        ("-1", "epoch_s", "1969-12-31T23:59:59.000Z"),
        ("-0.0005", "epoch_s", "1970-01-01T00:00:00.000Z"),
        ("1.7e9", "epoch_s", "2023-11-14T22:13:20.000Z"),
        ("1709648530123", "epoch_ms", "2024-03-05T14:22:10.123Z"),
        ("1709648530123.5", "epoch_ms", "2024-03-05T14:22:10.124Z"),
        ("45356", "excel_serial", "2024-03-05T05:00:00.000Z"),
        ("45356.5", "excel_serial", "2024-03-05T17:00:00.000Z"),
        ("45356,5", "excel_serial", "2024-03-05T17:00:00.000Z"),
        ("45356.000000011574", "excel_serial", "2024-03-05T05:00:00.001Z"),
        ("45361.1041666667", "excel_serial", "2024-03-10T07:30:00.000Z"),
        ("45599.0625", "excel_serial", "2024-11-03T05:30:00.000Z"),
        ("1", "excel_serial", "1899-12-31T05:00:00.000Z"),
    ],
)
def test_epochs_are_absolute_and_excel_serials_are_wall_time(text: str, fmt: str, out: str) -> None:
    """Epoch text ignores the zone (New York here); Excel serials are New York wall time."""
    assert one(text, fmt, NY) == out


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("abc", "epoch_s"),
        ("1,709,648,530", "epoch_s"),
        ("nan", "epoch_s"),
        ("inf", "epoch_ms"),
        ("1e400", "epoch_s"),
        ("253402300800", "epoch_s"),
        ("-62135596801", "epoch_s"),
        ("-1", "excel_serial"),
        ("2958466", "excel_serial"),
        ("2024-03-05", "excel_serial"),
    ],
)
def test_numeric_formats_reject_non_numbers_and_out_of_range(text: str, fmt: str) -> None:
    """Non-numbers and numbers outside the years 0001..9999 are invalid_timestamp."""
    message = error(text, fmt, NY)
    assert f"{text!r} is not a valid {fmt} value" in message


# --- typed (Parquet) columns --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "fmt", "out"),
    [
        (1709648530, pa.int64(), "epoch_s", "2024-03-05T14:22:10.000Z"),
        (1709648530, pa.uint32(), "epoch_s", "2024-03-05T14:22:10.000Z"),
        (1709648530123, pa.int64(), "epoch_ms", "2024-03-05T14:22:10.123Z"),
        (1709648530.1236, pa.float64(), "epoch_s", "2024-03-05T14:22:10.124Z"),
        (45356.5, pa.float64(), "excel_serial", "2024-03-05T17:00:00.000Z"),
        (45356, pa.int32(), "excel_serial", "2024-03-05T05:00:00.000Z"),
        (Decimal("1709648530.1235"), pa.decimal128(20, 4), "epoch_s", "2024-03-05T14:22:10.124Z"),
        (datetime(2024, 3, 10, 2, 30), pa.timestamp("s"), None, "2024-03-10T07:30:00.000Z"),
        (datetime(2024, 11, 3, 1, 30), pa.timestamp("us"), None, "2024-11-03T05:30:00.000Z"),
        (
            datetime(2024, 3, 5, 14, 22, 10, 123500),
            pa.timestamp("us"),
            "%d.%m.%Y",
            "2024-03-05T19:22:10.124Z",
        ),
        (
            datetime(2024, 3, 5, 14, 22, 10, 999600, tzinfo=UTC),
            pa.timestamp("us", "UTC"),
            None,
            "2024-03-05T14:22:11.000Z",
        ),
        (
            datetime(2024, 3, 5, 14, 22, 10, tzinfo=UTC),
            pa.timestamp("ns", BERLIN),
            None,
            "2024-03-05T14:22:10.000Z",
        ),
        (date(2024, 3, 10), pa.date32(), None, "2024-03-10T05:00:00.000Z"),
        (date(2024, 7, 1), pa.date64(), None, "2024-07-01T04:00:00.000Z"),
    ],
)
def test_typed_parquet_columns(value: object, kind: pa.DataType, fmt: str | None, out: str) -> None:
    """Aware timestamps are instants; naive ones and dates are wall time; numbers need a format."""
    assert one(value, fmt, NY, kind=kind) == out


@pytest.mark.parametrize(
    ("value", "kind", "fmt", "says"),
    [
        (5, pa.int64(), None, "is a number; set the format to epoch_s, epoch_ms or excel_serial"),
        (5.5, pa.float64(), US, "is a number"),
        (float("nan"), pa.float64(), "epoch_s", "as epoch_s is not a date"),
        (10**18, pa.int64(), "epoch_s", "as epoch_s is not a date"),
        (True, pa.bool_(), None, "a bool column cannot hold a completion timestamp"),
        (date(1, 1, 1), pa.date32(), None, "outside the years 0001..9999"),
    ],
)
def test_typed_columns_that_cannot_convert(
    value: object, kind: pa.DataType, fmt: str | None, says: str
) -> None:
    """Typed values without a usable format, or out of range, are row errors naming the value."""
    message = error(value, fmt, "Asia/Tokyo", kind=kind)
    assert says in message


def test_chunked_dictionary_and_large_string_columns() -> None:
    """Chunked, dictionary-encoded and large_string text columns convert like plain strings."""
    plain = ["2024-03-05 10:00", None, "2024-03-05T10:00Z"]
    expected = ["2024-03-05T15:00:00.000Z", None, "2024-03-05T10:00:00.000Z"]
    chunked = pa.chunked_array([pa.array(plain[:1]), pa.array(plain[1:])])
    for column in [
        chunked,
        pa.array(plain).dictionary_encode(),
        pa.array(plain, pa.large_string()),
    ]:
        assert to_utc_millis(column, None, NY, NOW).values.to_pylist() == expected


def test_null_typed_column_is_all_blank() -> None:
    """A column of Arrow type null (all blank) has no values and no errors."""
    result = to_utc_millis(pa.nulls(3), None, NY, NOW)
    assert result.values.to_pylist() == [None] * 3
    assert result.codes.to_pylist() == [None] * 3


# --- properties ---------------------------------------------------------------------------------


def assert_consistent(result: Converted, column: pa.Array) -> None:
    """Each row is exactly one of: blank (nothing), a value, or an error with a message."""
    for value, code, message, source in zip(
        result.values.to_pylist(),
        result.codes.to_pylist(),
        result.messages.to_pylist(),
        column.to_pylist(),
        strict=True,
    ):
        if source is None:
            assert (value, code, message) == (None, None, None)
        elif value is None:
            assert code in {"invalid_timestamp", "future_timestamp"} and message
        else:
            assert code is None and message is None and len(value) == 24 and value[-1] == "Z"


TEXTS = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.text(alphabet="0123456789-:T Z+.,/", max_size=30),
        st.datetimes().map(lambda d: d.isoformat(sep=" ")),
    ),
    max_size=12,
)


@PROPERTY
@given(texts=TEXTS, fmt=st.sampled_from([None, *SPECIAL_FORMATS, US, "%Y-%m-%dT%H:%M:%S%z"]))
def test_any_text_gives_a_value_or_a_row_error(texts: list[str], fmt: str | None) -> None:
    """Whatever the text, the converter returns a value or a row error, never raises."""
    column = pa.array(texts, pa.string())
    assert_consistent(to_utc_millis(column, fmt, NY, NOW), column)


OFFSETS = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
AWARE = st.datetimes(datetime(2, 1, 1), datetime(9998, 12, 31), timezones=OFFSETS)


@PROPERTY
@given(moments=st.lists(AWARE, min_size=1, max_size=10), zone=st.sampled_from(["UTC", NY, BERLIN]))
def test_iso_with_offset_is_the_instant_python_computes(moments: list[datetime], zone: str) -> None:
    """Formatting aware datetimes as ISO with an offset and converting gives Python's instant."""
    texts = [m.isoformat(timespec="microseconds") for m in moments]
    result = convert(texts, zone=zone, now=datetime(9999, 1, 1, tzinfo=UTC))
    assert result.values.to_pylist() == [expected_text(m) for m in moments]


ZONES = [NY, BERLIN, "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia", "America/St_Johns"]
TRANSITIONS = [
    datetime(2024, 3, 10, 2, 30),
    datetime(2024, 11, 3, 1, 30),
    datetime(2024, 3, 31, 2, 30),
    datetime(2024, 10, 27, 2, 30),
    datetime(2024, 4, 7, 1, 45),
    datetime(2024, 10, 6, 2, 15),
    datetime(2011, 12, 30, 12),
    datetime(1942, 9, 1),
]
NAIVE = st.one_of(
    st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1)),
    st.builds(
        lambda base, minutes: base + timedelta(minutes=minutes),
        st.sampled_from(TRANSITIONS),
        st.integers(-180, 180),
    ),
)


@PROPERTY
@given(walls=st.lists(NAIVE, min_size=1, max_size=20), zone=st.sampled_from(ZONES))
def test_naive_values_match_zoneinfo_fold_0(walls: list[datetime], zone: str) -> None:
    """Vectorised zone handling equals Python zoneinfo with fold=0, DST edges included."""
    info = ZoneInfo(zone)
    texts = [w.isoformat(sep=" ", timespec="microseconds") for w in walls]
    result = convert(texts, zone=zone, now=datetime(9999, 1, 1, tzinfo=UTC))
    assert result.values.to_pylist() == [expected_text(w.replace(tzinfo=info)) for w in walls]


NEAR_2024 = st.one_of(
    st.datetimes(datetime(2023, 6, 1), datetime(2025, 6, 1)),
    st.builds(
        lambda base, minutes: base + timedelta(minutes=minutes),
        st.sampled_from(TRANSITIONS[:6]),
        st.integers(-90, 90),
    ),
)


@PROPERTY
@given(walls=st.lists(NEAR_2024, min_size=1, max_size=20), zone=st.sampled_from(ZONES))
def test_dense_day_table_matches_zoneinfo_fold_0(walls: list[datetime], zone: str) -> None:
    """Values within a few years use the per-day offset table; it also equals zoneinfo fold=0."""
    info = ZoneInfo(zone)
    texts = [w.isoformat(sep=" ", timespec="microseconds") for w in walls]
    result = convert(texts, zone=zone, now=datetime(9999, 1, 1, tzinfo=UTC))
    assert result.values.to_pylist() == [expected_text(w.replace(tzinfo=info)) for w in walls]


@PROPERTY
@given(walls=st.lists(NAIVE, min_size=1, max_size=20), zone=st.sampled_from(ZONES))
def test_typed_naive_timestamps_match_zoneinfo_fold_0(walls: list[datetime], zone: str) -> None:
    """Naive Parquet timestamps follow the same fold=0 rule as naive text."""
    info = ZoneInfo(zone)
    column = pa.array(walls, pa.timestamp("us"))
    result = to_utc_millis(column, None, zone, datetime(9999, 1, 1, tzinfo=UTC))
    assert result.values.to_pylist() == [expected_text(w.replace(tzinfo=info)) for w in walls]


@PROPERTY
@given(moments=st.lists(AWARE, min_size=1, max_size=10), junk=st.text(max_size=5))
def test_one_junk_row_does_not_change_the_other_rows(moments: list[datetime], junk: str) -> None:
    """The split-by-shape path (taken when a column is not uniform) agrees with the fast path."""
    texts = [m.isoformat(sep=" ", timespec="milliseconds") for m in moments]
    future = datetime(9999, 1, 1, tzinfo=UTC)
    alone = convert(texts, zone=BERLIN, now=future)
    mixed = convert([*texts, "2024-02-30", junk], zone=BERLIN, now=future)
    assert mixed.values.to_pylist()[: len(texts)] == alone.values.to_pylist()
    assert mixed.codes.to_pylist()[len(texts)] == "invalid_timestamp"


# --- blanks in fixed-width columns (issue 8) ----------------------------------------------------


@pytest.mark.parametrize("fmt", FIXED_FORMATS)
def test_fixed_width_column_with_a_blank_last_row(fmt: str) -> None:
    """A blank (null) last row of an otherwise fixed-width column is omitted, not a crash."""
    walls = [datetime(2024, 3, 5, 14, 22, 10), datetime(2024, 11, 30, 9, 5, 0)]
    texts = [w.strftime(fmt) for w in walls]
    result = convert([*texts, None], fmt, "UTC")
    expected = [expected_text(datetime.strptime(t, fmt).replace(tzinfo=UTC)) for t in texts]
    assert result.values.to_pylist() == [*expected, None]
    assert result.codes.to_pylist() == [None, None, None]


def test_fixed_width_blank_last_row_of_a_slice_and_several_blanks() -> None:
    """Blanks at the end of a sliced column, and runs of blanks at both ends, parse the rest."""
    column = pa.array(["01/01/2024 01:00 AM", "03/05/2024 02:22 PM", None, None])
    result = to_utc_millis(column.slice(1), US, NY, NOW)
    assert result.values.to_pylist() == ["2024-03-05T19:22:00.000Z", None, None]
    both = convert([None, "03/05/2024 02:22 PM", None, None], US, "UTC")
    assert both.values.to_pylist() == [None, "2024-03-05T14:22:00.000Z", None, None]
    assert both.codes.to_pylist() == [None] * 4


@PROPERTY
@given(
    walls=st.lists(st.datetimes(datetime(1000, 1, 1), datetime(9998, 12, 31)), max_size=12),
    blanks=st.lists(st.integers(0, 12), max_size=4),
    fmt=st.sampled_from(FIXED_FORMATS),
)
def test_blanks_anywhere_in_a_fixed_width_column(
    walls: list[datetime], blanks: list[int], fmt: str
) -> None:
    """Nulls at any position (the last row too) leave the other rows as Python strptime reads them."""
    texts: list[str | None] = [
        w.strftime(fmt).replace(f"{w.year}", f"{w.year:04d}", 1) for w in walls
    ]
    for position in blanks:
        texts.insert(min(position, len(texts)), None)
    result = convert(texts, fmt, "UTC", now=datetime(9999, 1, 1, tzinfo=UTC))
    expected = [
        None if t is None else expected_text(datetime.strptime(t, fmt).replace(tzinfo=UTC))
        for t in texts
    ]
    assert result.values.to_pylist() == expected
    assert result.codes.to_pylist() == [None] * len(texts)
