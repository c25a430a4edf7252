"""The ``completed_at`` converter (DESIGN §5): a whole column → UTC ``YYYY-MM-DDTHH:MM:SS.sssZ``.

Vectorised: Arrow parses (ISO ``cast``, ``strptime``) and numpy parses zero-padded fixed-width
text; zones come from a per-day offset table probed from zoneinfo (exactly ``fold=0``, about 3x
faster than ``assume_timezone`` + ``local_timestamp``); numpy rounds and writes the output bytes
(Arrow's strftime costs ~10 µs a value). Python runs per value only for rows no vectorised shape
took (rare or invalid). Fractions beyond milliseconds round half-up (towards the later instant),
so ``.0005`` → ``.001``; epochs and Excel serials round the same way.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from transforms.converted import Converted

SPECIAL_FORMATS: tuple[str, ...] = ("epoch_s", "epoch_ms", "excel_serial")

Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WALL_EPOCH = datetime(1970, 1, 1)
_ONE_MS = timedelta(milliseconds=1)
_MS_PER_DAY = 86_400_000
_MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_YEAR_1000_MS = -30_610_224_000_000  # 1000-01-01T00:00:00.000Z
_EXCEL_BASE_MS = -2_209_161_600_000  # 1899-12-30T00:00 (wall time)
_FUTURE_SLACK_US = 24 * 3_600_000_000
_UNIT_PER_MS = {"ms": 1, "us": 1_000, "ns": 1_000_000}
_FACTOR_MS = {"epoch_s": 1_000, "epoch_ms": 1, "excel_serial": _MS_PER_DAY}
_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Zulu", "Etc/Zulu", "Universal"})
_NAIVE_NS, _AWARE_NS = pa.timestamp("ns"), pa.timestamp("ns", "UTC")
_DECIMAL = pa.decimal128(28, 9)

# strptime directives Python knows; glibc/Arrow ``pc.strptime`` parses the second set like Python
# (others, e.g. %f %j %c, run per value). %Z (zone names) is refused: abbreviations are ambiguous.
_PY_DIRECTIVES = frozenset("aAbBcdfGHIjmMpSuUVwWxXyYzZ%")
_ARROW_DIRECTIVES = frozenset("aAbBdHIMmpSYyz%")
_DIRECTIVE = re.compile(r"%(.?)", re.DOTALL)

# Arrow's ISO 8601 grammar, also used by the per-value fallback and for messages.
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)
_ISO_ZONE = r"[T ]\d{2}[0-9:.]*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_ISO_SHAPE = r"^\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-][0-9:]+)?)?$"
_SLASHED = re.compile(r"\d{1,4}/\d{1,2}/\d{1,4}", re.ASCII)
_ABBREVIATION = re.compile(r"[\d\s][A-Za-z]{2,5}$", re.ASCII)


def check_format(fmt: str | None) -> None:
    """Raise ValueError unless ``fmt`` is absent, a special format, or a strptime date pattern."""
    allowed = f"a strptime pattern with a full date, or one of {', '.join(SPECIAL_FORMATS)}"
    if fmt is None or fmt in SPECIAL_FORMATS:
        return
    if not isinstance(fmt, str) or not fmt.strip():
        raise ValueError(f"format {fmt!r} is empty; use {allowed}")
    found = _directives(fmt)
    if "Z" in found:
        raise ValueError(f"format {fmt!r}: %Z zone names are ambiguous; use %z (+02:00 or Z)")
    day = ("d" in found and bool(found & set("mbB"))) or "j" in found
    if not (found & {"c", "x"} or (found & {"Y", "y"} and day)):
        raise ValueError(
            f"format {fmt!r} has no full date: it needs the year (%Y or %y), month (%m, %b or "
            f"%B) and day (%d), or the year and day of year (%j)"
        )


def check_timezone(name: str) -> None:
    """Raise ValueError unless ``name`` is an IANA time zone zoneinfo knows (e.g. Europe/Berlin)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name such as UTC, Europe/Berlin "
            f"or America/New_York"
        ) from None


def to_utc_millis(values: pa.Array, fmt: str | None, timezone: str, now: datetime) -> Converted:
    """Convert a cleaned text or typed Parquet column to UTC millisecond text (DESIGN §5).

    ``now`` is the run's start (tz-aware); values more than 24 h after it are ``future_timestamp``.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    check_format(fmt)
    check_timezone(timezone)
    values = _plain(values)
    present = _np_mask(values.is_valid())
    ms, ok, why = _parse(values, fmt, timezone)
    ok &= present
    ok &= (ms >= _MIN_MS) & (ms <= _MAX_MS)
    limit = ((now - _EPOCH) // timedelta(microseconds=1) + _FUTURE_SLACK_US) // 1_000
    future = ok & (ms > limit)
    ok &= ~future
    invalid = present & ~ok & ~future
    codes: list[str] = []
    messages: list[str] = []
    for i in np.flatnonzero(invalid | future):
        shown = _shown(values, int(i))
        if future[i]:
            codes.append("future_timestamp")
            run = now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            messages.append(
                f"{shown} is {_format_one(int(ms[i]))}, more than 24 h after the run started "
                f"({run})"
            )
        else:
            codes.append("invalid_timestamp")
            messages.append(why(int(i), shown))
    errors = pa.array(invalid | future)
    return Converted(
        _format_utc(ms, ok),
        pc.replace_with_mask(
            pa.nulls(len(values), pa.string()), errors, pa.array(codes, pa.string())
        ),
        pc.replace_with_mask(
            pa.nulls(len(values), pa.string()), errors, pa.array(messages, pa.string())
        ),
    )


# --- parsing: every path returns (UTC ms, converted mask, why(i, shown) -> message) -------------


class _Why:
    """Builds the message of an invalid row lazily (only failed rows pay for it)."""

    def __init__(self, values: pa.Array, fmt: str | None) -> None:
        self.values, self.fmt = values, fmt

    def __call__(self, i: int, shown: str) -> str:
        """Say why row ``i`` (shown as ``shown``) is not a timestamp."""
        kind = self.values.type
        if pa.types.is_string(kind):
            return _why_text(self.values[i].as_py(), self.fmt)
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            if self.fmt not in SPECIAL_FORMATS:
                return f"{shown} is a number; set the format to epoch_s, epoch_ms or excel_serial"
            return f"{shown} as {self.fmt} is not a date in the years 0001..9999"
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            return f"{shown} is outside the years 0001..9999 in UTC"
        return f"{shown}: a {kind} column cannot hold a completion timestamp"


def _parse(values: pa.Array, fmt: str | None, zone: str) -> tuple[Ints, Mask, _Why]:
    """Dispatch on the column type and format; see the module docstring."""
    why = _Why(values, fmt)
    kind = values.type
    n = len(values)
    if pa.types.is_string(kind):
        if fmt is None:
            return (*_parse_iso(values, zone), why)
        if fmt in SPECIAL_FORMATS:
            return (*_parse_number_text(values, fmt, zone), why)
        return (*_parse_strptime(values, fmt, zone), why)
    if pa.types.is_timestamp(kind):
        ms, ok = _round_ms(values)
        return (ms if kind.tz is not None else _localize(ms, ok, zone)), ok, why
    if pa.types.is_date(kind):
        ms, ok = _ints(values.cast(pa.date64()).cast(pa.int64()))
        return _localize(ms, ok, zone), ok, why
    if fmt in SPECIAL_FORMATS and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return (*_parse_numbers(values, fmt, zone), why)
    if fmt in SPECIAL_FORMATS and pa.types.is_decimal(kind):
        return (*_parse_decimals(values.cast(_DECIMAL, safe=False), fmt, zone), why)
    return np.zeros(n, np.int64), np.zeros(n, np.bool_), why


def _parse_iso(text: pa.Array, zone: str) -> tuple[Ints, Mask]:
    """ISO 8601: one cast when a sample says the column is uniform (the common case; a few bad
    rows are found by halving), else split by shape first: a failing Arrow cast costs ~2 µs per
    bad row, so a cast is only tried where nearly every row should pass."""
    kind = _iso_kind(text)
    try:
        if kind is not None:
            parsed = _cast_lenient(text, _NAIVE_NS if kind == "naive" else _AWARE_NS, [64])
            ms, ok = _round_ms(parsed)
            if kind == "naive":
                ms = _localize(ms, ok, zone)
            retry = np.flatnonzero(_np_mask(text.is_valid()) & ~ok)
            _fill_per_value(ms, ok, retry, [_py_iso(text[int(i)].as_py()) for i in retry], zone)
            return ms, ok
    except _TooManyFailures:
        pass
    shaped = pc.match_substring_regex(text, _ISO_SHAPE)
    zoned = pc.match_substring_regex(text, _ISO_ZONE)
    aware, naive = pc.and_(shaped, zoned), pc.and_(shaped, pc.invert(zoned))
    naive_ms, naive_ok = _round_ms(_cast_lenient(pc.if_else(naive, text, None), _NAIVE_NS))
    aware_ms, aware_ok = _round_ms(_cast_lenient(pc.if_else(aware, text, None), _AWARE_NS))
    ms = np.where(aware_ok, aware_ms, _localize(naive_ms, naive_ok, zone))
    ok = aware_ok | naive_ok
    # Shaped rows Arrow refused: dates outside 1677..2262 (the ns range) or impossible ones.
    retry = np.flatnonzero(_np_mask(pc.fill_null(shaped, False)) & ~ok)
    _fill_per_value(ms, ok, retry, [_py_iso(text[int(i)].as_py()) for i in retry], zone)
    return ms, ok


def _iso_kind(text: pa.Array) -> str | None:
    """``naive`` or ``aware`` when up to 256 evenly spread values are (nearly all) that ISO kind."""
    rows = np.unique(np.linspace(0, len(text) - 1, min(len(text), 256)).astype(np.int64))
    parsed = [_py_iso(value) for value in text.take(rows).to_pylist() if value]
    kinds = [result[1] for result in parsed if result is not None]
    if not kinds or len(kinds) < 0.9 * len(parsed) or len(set(kinds)) > 1:
        return None
    return "naive" if kinds[0] else "aware"


def _parse_strptime(text: pa.Array, fmt: str, zone: str) -> tuple[Ints, Mask]:
    """A strptime pattern: numpy for uniform fixed-width text, else Arrow's (glibc) strptime,
    else Python's for what those refuse or may bend."""
    found = _directives(fmt)
    ms, ok = _parse_fixed_width(text, fmt)
    rows = np.flatnonzero(_np_mask(text.is_valid()) & ~ok)
    if len(rows) and found <= _ARROW_DIRECTIVES:
        part = text if len(rows) == len(text) else text.take(rows)
        parsed = pc.strptime(part, format=fmt, unit="ms", error_is_null=True)
        part_ms, part_ok = _ints(parsed.cast(pa.int64()))
        part_ok &= part_ms >= _YEAR_1000_MS  # glibc's %Y also takes 1-3 digits: Python decides
        part_ok &= ~_strptime_suspects(part, parsed, fmt, found)
        ms[rows], ok[rows] = part_ms, part_ok
    if "z" not in found:
        ms = _localize(ms, ok, zone)
    retry = np.flatnonzero(_np_mask(text.is_valid()) & ~ok)
    _fill_per_value(ms, ok, retry, [_py_strptime(text[int(i)].as_py(), fmt) for i in retry], zone)
    return ms, ok


def _parse_fixed_width(text: pa.Array, fmt: str) -> tuple[Ints, Mask]:
    """Wall ms of rows laid out exactly as ``fmt`` with zero-padded numbers (``03/05/2024 02:22
    PM``), parsed and range-checked with numpy; other rows are left to the general path."""
    n = len(text)
    ms, ok = np.zeros(n, np.int64), np.zeros(n, np.bool_)
    layout = _fixed_layout(fmt)
    if layout is None or n == 0 or text.null_count == n:
        return ms, ok
    width = sum(len(piece) if kind == "" else _WIDTHS[kind] for kind, piece in layout)
    valid = _np_mask(text.is_valid())
    offsets = np.frombuffer(text.buffers()[1], np.int32, n + 1, text.offset * 4)
    if not np.all(np.diff(offsets)[valid] == width):
        return ms, ok
    data = np.frombuffer(text.buffers()[2], np.uint8)
    chars = (
        data[offsets[:-1, None] + np.arange(width)]
        if text.null_count
        else (data[offsets[0] : offsets[0] + n * width].reshape(n, width))
    )
    columns = np.ascontiguousarray(chars.T)  # one contiguous row per byte position
    ok = valid.copy()
    fields: dict[str, npt.NDArray[np.int32]] = {}
    position = 0
    for kind, piece in layout:
        if kind == "":
            for char in piece.encode():
                ok &= columns[position] == char
                position += 1
        elif kind == "p":
            first, second = columns[position] | 0x20, columns[position + 1] | 0x20
            ok &= ((first == ord("a")) | (first == ord("p"))) & (second == ord("m"))
            fields["p"] = (first == ord("p")).astype(np.int32)
            position += 2
        else:
            value = np.zeros(n, np.int32)
            for _ in range(_WIDTHS[kind]):
                digit = columns[position] - np.uint8(48)
                ok &= digit <= 9
                value = value * 10 + digit
                position += 1
            fields[kind] = value
    year = fields["Y"] if "Y" in fields else fields["y"] + np.where(fields["y"] < 69, 2000, 1900)
    month, day = fields["m"], fields["d"]
    zero = np.zeros(n, np.int32)
    hour = fields.get("H", zero)
    if "I" in fields:
        twelve = fields["I"]
        ok &= (twelve >= 1) & (twelve <= 12)
        hour = twelve % 12 + 12 * fields.get("p", zero)
    minute, second = fields.get("M", zero), fields.get("S", zero)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.clip(month, 1, 12)] + ((month == 2) & leap)
    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    days = _days_from_civil(year, np.clip(month, 1, 12), day).astype(np.int64)
    clock = ((hour * 60 + minute) * 60 + second).astype(np.int64)
    return np.where(ok, days * _MS_PER_DAY + clock * 1_000, 0), ok


_WIDTHS = {"Y": 4, "y": 2, "m": 2, "d": 2, "H": 2, "I": 2, "M": 2, "S": 2, "p": 2}
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int32)


def _fixed_layout(fmt: str) -> list[tuple[str, str]] | None:
    """``fmt`` as (directive, "") and ("", literal) pieces when every directive has a fixed
    width and names a full date (year, month, day); None otherwise."""
    layout: list[tuple[str, str]] = []
    for piece in re.split(r"(%.)", fmt):
        if piece.startswith("%") and len(piece) == 2 and piece != "%%":
            if piece[1] not in _WIDTHS:
                return None
            layout.append((piece[1], ""))
        elif piece:
            literal = piece.replace("%%", "%")
            if not literal.isascii() or any(c.isspace() and c != " " for c in literal):
                return None
            layout.append(("", literal))
    kinds = {kind for kind, _ in layout}
    if not ({"m", "d"} <= kinds and kinds & {"Y", "y"}) or ("p" in kinds and "I" not in kinds):
        return None
    return layout


def _days_from_civil(
    year: npt.NDArray[np.int32], month: npt.NDArray[np.int32], day: npt.NDArray[np.int32]
) -> npt.NDArray[np.int32]:
    """(year, month, day) → days since 1970-01-01, proleptic Gregorian (H. Hinnant's algorithm)."""
    shifted = year - (month <= 2)
    era = shifted // 400
    yoe = shifted - era * 400
    doy = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def _strptime_suspects(text: pa.Array, parsed: pa.Array, fmt: str, found: set[str]) -> Mask:
    """Rows glibc may have bent: a day past the month's end or second 60 rolled over.

    A rolled-over row is re-parsed with the raw field moved to a slot that refuses it (day → %I,
    second → %M); a null there means the raw value was out of range.
    """
    suspect = np.zeros(len(text), np.bool_)
    checks: list[tuple[pa.Array, dict[str, str]]] = []
    if "d" in found:
        day = pc.day(parsed)
        near = pc.or_(pc.less_equal(day, 4), pc.greater_equal(day, 28)) if "z" in found else None
        checks.append((near if near is not None else pc.less_equal(day, 3), {"d": "I", "I": "H"}))
    if "S" in found:
        checks.append((pc.less_equal(pc.second(parsed), 1), {"S": "M", "M": "S"}))
    for candidates, moves in checks:
        rows = np.flatnonzero(_np_mask(pc.fill_null(candidates, False)))
        if len(rows):
            moved = _move_directives(fmt, moves)
            again = pc.strptime(text.take(rows), format=moved, unit="ms", error_is_null=True)
            suspect[rows[_np_mask(again.is_null())]] = True
    return suspect


def _move_directives(fmt: str, moves: dict[str, str]) -> str:
    """``fmt`` with some directives replaced (``{"d": "I"}`` turns %d into %I; %% stays)."""
    return _DIRECTIVE.sub(lambda m: "%" + moves.get(m.group(1), m.group(1)), fmt)


def _parse_number_text(text: pa.Array, fmt: str, zone: str) -> tuple[Ints, Mask]:
    """epoch_s / epoch_ms / excel_serial written as text; exact decimal arithmetic."""
    try:
        dec = pc.cast(text, _DECIMAL)
    except pa.ArrowException:  # keep only number-shaped rows for Arrow, the rest go per value
        shaped = pc.match_substring_regex(text, r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
        dec = _cast_lenient(pc.if_else(shaped, text, None), _DECIMAL)
    ms, ok = _parse_decimals(dec, fmt, zone)
    retry = np.flatnonzero(_np_mask(text.is_valid()) & ~_np_mask(dec.is_valid()))
    results = [_py_number(text[int(i)].as_py(), fmt) for i in retry]
    _fill_per_value(ms, ok, retry, results, zone if fmt == "excel_serial" else "UTC")
    return ms, ok


def _parse_decimals(dec: pa.Array, fmt: str, zone: str) -> tuple[Ints, Mask]:
    """Decimal numbers → ms, rounded half-up; Excel serials are wall time in ``zone``."""
    factor = _FACTOR_MS[fmt]
    low, high = _bounds(fmt)
    inside = pc.and_(
        pc.greater_equal(dec, pa.scalar(Decimal(low), _DECIMAL)),
        pc.less_equal(dec, pa.scalar(Decimal(high), _DECIMAL)),
    )
    scaled = pc.multiply(
        pc.if_else(inside, dec, None), pa.scalar(Decimal(factor), pa.decimal128(9))
    )
    ms, ok = _ints(pc.round(scaled, ndigits=0, round_mode="half_up").cast(pa.int64()))
    if fmt == "excel_serial":
        return _localize(ms + _EXCEL_BASE_MS, ok, zone), ok
    return ms, ok


def _parse_numbers(values: pa.Array, fmt: str, zone: str) -> tuple[Ints, Mask]:
    """Integer or float Parquet columns → ms (floats round half-up in binary floating point)."""
    factor = _FACTOR_MS[fmt]
    low, high = _bounds(fmt)
    if pa.types.is_floating(values.type):
        number = np.asarray(pc.fill_null(values.cast(pa.float64()), np.nan).to_numpy())
        with np.errstate(invalid="ignore"):
            ok = (number >= low) & (number <= high)
        ms = np.floor(np.where(ok, number, 0) * factor + 0.5).astype(np.int64)
    else:
        if pa.types.is_unsigned_integer(values.type):
            low = 0
        inside = pc.and_(
            pc.greater_equal(values, pa.scalar(low, values.type)),
            pc.less_equal(values, pa.scalar(min(high, _type_max(values.type)), values.type)),
        )
        ints, ok = _ints(pc.if_else(inside, values, None).cast(pa.int64()))
        ms = ints * factor
    if fmt == "excel_serial":
        return _localize(ms + _EXCEL_BASE_MS, ok, zone), ok
    return ms, ok


def _bounds(fmt: str) -> tuple[int, int]:
    """Smallest and largest raw number of a numeric format worth converting (a day of slack)."""
    high = (_MAX_MS + 2 * _MS_PER_DAY) // _FACTOR_MS[fmt]
    return (0 if fmt == "excel_serial" else -high), high


def _type_max(kind: pa.DataType) -> int:
    """The largest value of an integer type."""
    return int(np.iinfo(kind.to_pandas_dtype()).max)


# --- zones ---------------------------------------------------------------------------------------


def _localize(wall: Ints, ok: Mask, zone: str) -> Ints:
    """Wall-clock ms in ``zone`` → UTC ms, exactly zoneinfo ``fold=0``: a time in a spring-forward
    gap takes the offset before the change, a repeated (fall-back) time its first occurrence."""
    if zone in _UTC_ZONES or not ok.any():
        return wall
    clamped = np.clip(wall, _MIN_MS + _MS_PER_DAY, _MAX_MS - _MS_PER_DAY)
    days = clamped // _MS_PER_DAY
    first, last = int(days[ok].min()), int(days[ok].max())
    dense = last - first < max(len(wall), 1_000)  # a per-day table no bigger than the column
    if dense:
        probe_days = np.arange(first, last + 1, dtype=np.int64)
    else:  # sparse days: probe only the days present
        probe_days = np.sort(pc.unique(pa.array(days[ok])).to_numpy())
    starts, offsets = _offset_steps(ZoneInfo(zone), probe_days)
    if not dense:
        return wall - offsets[np.searchsorted(starts, clamped, side="right") - 1]
    at_start = offsets[np.searchsorted(starts, probe_days * _MS_PER_DAY, side="right") - 1]
    at_end = offsets[np.searchsorted(starts, (probe_days + 1) * _MS_PER_DAY - 1, side="right") - 1]
    index = np.clip(days - first, 0, last - first)
    offset = at_start[index]
    moving = np.flatnonzero((at_start != at_end)[index])  # rows on a day with a transition
    offset[moving] = offsets[np.searchsorted(starts, clamped[moving], side="right") - 1]
    return wall - offset


def _offset_steps(info: ZoneInfo, days: Ints) -> tuple[Ints, Ints]:
    """The fold=0 UTC offset (ms) as a step function of wall time, exact on the given wall days.

    Probed from zoneinfo at the start of each day and the end of each day not followed by the
    next, bisected to the millisecond between probes that differ. tzdb never has two transitions
    within three days, so probes at most a day apart enclose at most one step.
    """
    follows = np.append(days[1:] == days[:-1] + 1, False)
    points = np.sort(np.concatenate([days * _MS_PER_DAY, (days[~follows] + 1) * _MS_PER_DAY - 1]))
    previous = int(points[0])
    starts, offsets = [previous], [_offset_at(info, previous)]
    for point in points[1:].tolist():
        offset = _offset_at(info, point)
        if offset != offsets[-1]:
            low, high = previous, point
            while high - low > 1:
                middle = (low + high) // 2
                same = _offset_at(info, middle) == offsets[-1]
                low, high = (middle, high) if same else (low, middle)
            starts.append(high)
            offsets.append(offset)
        previous = point
    return np.array(starts, np.int64), np.array(offsets, np.int64)


def _offset_at(info: ZoneInfo, wall_ms: int) -> int:
    """The fold=0 UTC offset in ms of one wall time (ms since 1970-01-01 on the wall clock)."""
    offset = info.utcoffset(_WALL_EPOCH + timedelta(milliseconds=wall_ms))
    return 0 if offset is None else offset // _ONE_MS


# --- per-value fallbacks (rare rows) -------------------------------------------------------------

_Parsed = tuple[datetime, bool] | None  # (datetime rounded later, is_wall_time) or not parseable


def _fill_per_value(ms: Ints, ok: Mask, rows: Ints, results: list[_Parsed], zone: str) -> None:
    """Write per-value parse results into ``ms``/``ok`` (naive results are read in ``zone``)."""
    info = ZoneInfo(zone)
    for i, parsed in zip(rows, results, strict=True):
        if parsed is None:
            continue
        moment, wall = parsed
        if wall:
            moment = moment.replace(tzinfo=info)
        ms[i] = ((moment - _EPOCH) // timedelta(microseconds=1) + 500) // 1_000
        ok[i] = True


def _py_iso(value: str) -> _Parsed:
    """Parse one ISO 8601 text with the grammar Arrow's cast accepts."""
    m = _ISO.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError:
        return None
    if offset is None:
        return moment, True
    if offset == "Z":
        return moment.replace(tzinfo=UTC), False
    hours, minutes = int(offset[1:3]), int(offset[-2:]) if len(offset) > 3 else 0
    if hours > 23 or minutes > 59:
        return None
    sign = -1 if offset[0] == "-" else 1
    return moment.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes))), False


def _py_strptime(value: str, fmt: str) -> _Parsed:
    """Parse one text with Python's strptime (the reference semantics of a format)."""
    try:
        moment = datetime.strptime(value, fmt)
    except (ValueError, OverflowError):
        return None
    return moment, moment.tzinfo is None


def _py_number(value: str, fmt: str) -> _Parsed:
    """Parse one epoch / Excel serial text Arrow's decimal cast refused (e.g. > 9 decimals)."""
    try:
        number = Decimal(value.replace(",", ".") if fmt == "excel_serial" else value)
        if not number.is_finite() or (fmt == "excel_serial" and number < 0):
            return None
        ms = int(
            (number * _FACTOR_MS[fmt] + Decimal("0.5")).to_integral_value(rounding=ROUND_FLOOR)
        )
        if fmt == "excel_serial":
            return datetime(1970, 1, 1) + timedelta(milliseconds=ms + _EXCEL_BASE_MS), True
        return _EPOCH + timedelta(milliseconds=ms), False
    except (ArithmeticError, ValueError):  # decimal errors are ArithmeticErrors
        return None


def _why_text(value: str, fmt: str | None) -> str:
    """The reason one text is not a valid timestamp, for the row's error message."""
    shown = repr(value)
    if fmt in SPECIAL_FORMATS:
        return f"{shown} is not a valid {fmt} value (a number giving a date in 0001..9999)"
    if fmt is not None:
        try:
            datetime.strptime(value, fmt)
        except (ValueError, OverflowError) as exc:
            if str(exc).startswith("time data"):
                return f"{shown} does not match format {fmt!r}"
            return f"{shown} does not match format {fmt!r}: {exc}"
        return f"{shown} is outside the years 0001..9999 in UTC"
    if value.startswith("0000-00-00"):
        return f"{shown} is a zero date (0000-00-00), not a real date"
    if _SLASHED.match(value):
        return f"{shown} is a slashed date: day/month order is unknown; set the column's format"
    if _ABBREVIATION.search(value) and not value.endswith("Z"):
        return f"{shown} names a zone abbreviation, which is ambiguous; use Z or an offset (+02:00)"
    if _ISO.fullmatch(value):
        if _py_iso(value) is None and not value.startswith("0000-"):
            return f"{shown} is not a real date or time (e.g. February 30, 25:00, offset +24:00)"
        return f"{shown} is outside the years 0001..9999 in UTC"
    return f"{shown} is not ISO 8601 (e.g. 2024-03-05T14:22:10Z, 2024-03-05 14:22 or 2024-03-05)"


# --- helpers -------------------------------------------------------------------------------------


def _directives(fmt: str) -> set[str]:
    """The directive letters of a strptime pattern; ValueError for unknown or stray ``%``."""
    found: set[str] = set()
    for m in _DIRECTIVE.finditer(fmt):
        letter = m.group(1)
        if letter not in _PY_DIRECTIVES or not letter:
            raise ValueError(
                f"format {fmt!r}: %{letter} is not a strptime directive; allowed: "
                f"{' '.join('%' + d for d in sorted(_PY_DIRECTIVES))}"
            )
        found.add(letter)
    return found


def _plain(values: pa.Array) -> pa.Array:
    """One contiguous array; dictionaries decoded and large strings narrowed to ``string``."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    return values


class _TooManyFailures(Exception):
    """A lenient cast hit more failing chunks than its budget allowed (the column is mixed)."""


def _cast_lenient(values: pa.Array, to: pa.DataType, budget: list[int] | None = None) -> pa.Array:
    """Cast, with null where Arrow cannot parse a row; halves on failure so bad rows cost little.

    ``budget`` (one mutable count) caps the failing 8-row chunks; past it, _TooManyFailures.
    """
    try:
        return pc.cast(values, to)
    except pa.ArrowException:
        if len(values) <= 8:
            if budget is not None:
                budget[0] -= 1
                if budget[0] < 0:
                    raise _TooManyFailures from None
            return pa.array([_cast_one(v, to) for v in values], to)
        half = len(values) // 2
        return pa.concat_arrays(
            [_cast_lenient(values[:half], to, budget), _cast_lenient(values[half:], to, budget)]
        )


def _cast_one(value: pa.Scalar, to: pa.DataType) -> object:
    """Cast one scalar, None when Arrow refuses it."""
    try:
        return value.cast(to).as_py()
    except pa.ArrowException:
        return None


def _np_mask(values: pa.Array) -> Mask:
    """A boolean Arrow array (no nulls) as a writable numpy mask."""
    return np.array(values.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _ints(values: pa.Array) -> tuple[Ints, Mask]:
    """An int64 Arrow array as (numpy values with nulls as 0, validity mask)."""
    ok = _np_mask(values.is_valid())
    return np.array(pc.fill_null(values, 0).to_numpy(zero_copy_only=False), np.int64), ok


def _round_ms(values: pa.Array) -> tuple[Ints, Mask]:
    """Timestamps of any unit → int64 ms since 1970, rounded half-up (floor of t + 0.5 ms)."""
    raw, ok = _ints(values.cast(pa.int64()))
    unit = values.type.unit
    if unit == "s":
        bound = (_MAX_MS + 2 * _MS_PER_DAY) // 1_000
        return np.clip(raw, -bound, bound) * 1_000, ok
    per_ms = _UNIT_PER_MS[unit]
    half = per_ms // 2
    return (np.minimum(raw, np.iinfo(np.int64).max - half) + half) // per_ms, ok


def _shown(values: pa.Array, i: int) -> str:
    """Row ``i`` as it appears in a message: text quoted, typed values as Arrow prints them."""
    if pa.types.is_string(values.type):
        return repr(values[i].as_py())
    try:
        return str(values[i : i + 1].cast(pa.string())[0].as_py())
    except pa.ArrowException:
        return f"a {values.type} value"


def _format_one(ms: int) -> str:
    """One UTC ms value as ``YYYY-MM-DDTHH:MM:SS.sssZ``."""
    return str(_format_utc(np.array([ms], np.int64), np.array([True]))[0])


def _format_utc(ms: Ints, ok: Mask) -> pa.Array:
    """UTC ms → ``YYYY-MM-DDTHH:MM:SS.sssZ`` (null where not ``ok``), assembled with numpy from
    per-day, per-minute and per-millisecond tables (Arrow's strftime takes ~10 µs a value)."""
    n = len(ms)
    days, clock = np.divmod(np.where(ok, ms, 0), _MS_PER_DAY)
    minute_of_day, ms_of_minute = np.divmod(clock, 60_000)
    hours_minutes, seconds_millis = _clock_tables()
    rows = np.empty(n, _ROW)
    rows["hm"] = hours_minutes[minute_of_day]
    rows["sms"] = seconds_millis[ms_of_minute]
    first, last = (int(days[ok].min()), int(days[ok].max())) if ok.any() else (0, 0)
    if last - first < n:  # a table of the days in range, then one gather
        table = _date_text(np.arange(first, last + 1, dtype=np.int64))
        rows["date"] = table[np.clip(days - first, 0, last - first)]
    else:
        rows["date"] = _date_text(days)
    offsets = np.arange(0, 24 * (n + 1), 24, dtype=np.int32)
    validity = np.packbits(ok, bitorder="little")
    nulls = int(n - np.count_nonzero(ok))
    buffers = [pa.py_buffer(validity), pa.py_buffer(offsets), pa.py_buffer(rows.view(np.uint8))]
    return pa.Array.from_buffers(pa.string(), n, buffers, null_count=nulls)


_ROW = np.dtype(
    {
        "names": ["date", "hm", "sms"],
        "formats": ["S10", "S7", "S7"],
        "offsets": [0, 10, 17],
        "itemsize": 24,
    }
)


@functools.cache
def _clock_tables() -> tuple[npt.NDArray[np.bytes_], npt.NDArray[np.bytes_]]:
    """``THH:MM:`` for each minute of a day and ``SS.sssZ`` for each millisecond of a minute."""
    hours_minutes = np.array([b"T%02d:%02d:" % divmod(m, 60) for m in range(1_440)], "S7")
    seconds_millis = np.array([b"%02d.%03dZ" % divmod(m, 1_000) for m in range(60_000)], "S7")
    return hours_minutes, seconds_millis


def _date_text(days: Ints) -> npt.NDArray[np.bytes_]:
    """Days since 1970-01-01 → ``YYYY-MM-DD`` (``S10``), written digit by digit."""
    year, month, day = _civil_from_days(days.astype(np.int32))
    text = np.empty((len(days), 10), np.uint8)
    text[:, 4] = text[:, 7] = ord("-")
    for start, width, number in [(0, 4, year), (5, 2, month), (8, 2, day)]:
        for position in range(start + width - 1, start - 1, -1):
            number, digit = np.divmod(number, 10)
            text[:, position] = digit + 48
    return text.view("S10").ravel()


def _civil_from_days(days: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.int32], ...]:
    """Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    return yoe + era * 400 + (month <= 2), month, day
