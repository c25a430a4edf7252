"""Fixed-width strptime text (``03/05/2024 02:22 PM``): numpy reads zero-padded fields by byte."""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from transforms.timestamps.millis import MS_PER_DAY, Ints, Mask, np_mask

_WIDTHS = {"Y": 4, "y": 2, "m": 2, "d": 2, "H": 2, "I": 2, "M": 2, "S": 2, "p": 2}
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int32)


def parse_fixed_width(text: pa.Array, fmt: str) -> tuple[Ints, Mask]:
    """Wall ms of rows laid out exactly as ``fmt`` with zero-padded numbers (``03/05/2024 02:22
    PM``), parsed and range-checked with numpy; other rows are left to the general path."""
    n = len(text)
    ms, ok = np.zeros(n, np.int64), np.zeros(n, np.bool_)
    layout = _fixed_layout(fmt)
    if layout is None or n == 0 or text.null_count == n:
        return ms, ok
    width = sum(len(piece) if kind == "" else _WIDTHS[kind] for kind, piece in layout)
    valid = np_mask(text.is_valid())
    offsets = np.frombuffer(text.buffers()[1], np.int32, n + 1, text.offset * 4)
    if not np.all(np.diff(offsets)[valid] == width):
        return ms, ok
    data = np.frombuffer(text.buffers()[2], np.uint8)
    # a null row reads the first byte's width instead: its offset may sit at the buffer's end
    starts = np.where(valid, offsets[:-1], 0)
    chars = (
        data[starts[:, None] + np.arange(width)]
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
    return np.where(ok, days * MS_PER_DAY + clock * 1_000, 0), ok


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
