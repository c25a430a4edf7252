"""Hypothesis strategies for whole exports (CSV and Parquet) and a mapping file that fits each one.

The rows mix good values with everything DESIGN §5 calls blank or bad, in any position (the last
row too); the mapping picks a random date format, unit, scale, filters and repeats rule.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
import yaml
from hypothesis import strategies as st

ROLES = ("user", "course", "date", "minutes", "status", "score")
NAMES: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "User ID", "Benutzer-Nr."),
    "course": ("course", "LO Object ID", "Kurs/Code"),
    "date": ("done", "Completed Date", "Abschluss am"),
    "minutes": ("minutes", "Training Hours", "Dauer (min)"),
    "status": ("status", "Transcript Status", "État"),
    "score": ("score", "Score %", "=Punkte"),
}
EXTRAS = ("Abteilung", "région", "=cmd", "note", "x 1")
BLANKS = ("", "   ", "N/A", "n/a", "NULL", "null")
STRPTIME = ("%m/%d/%Y %I:%M %p", "%d.%m.%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y%m%d", "%d/%m/%Y")
DATE_FORMATS: tuple[str | None, ...] = (*STRPTIME, None, "epoch_s", "epoch_ms")
UNITS = (None, "seconds", "minutes", "hours", "excel_days")
STATUSES = ("Passed", "Completed", "Failed", "In Progress", " passed ", "FAILED", "Exempt", "ñ")
TIMEZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata")
# fmt: off
DURATIONS = ("0", "30", "0030", "1.5", "1,5", "1:30", "1:30:15.5", "1:5", "PT90M", "P1D", "P1Y", "PT1.5H",
             "1h 30m", "90 min", "2 months", "-5", "abc", "99999999999999999999", "1e3", "NaN")
SCORES = ("87", "87%", "87.5", "87,5", "0.87", "87/100", "8.7 / 10", "150", "-1", "abc", "1e400",
          "NaN", "inf", "5/0", "100")
GARBAGE_DATES = ("yesterday", "2024-13-45", "03/05/2024", "0000-00-00", "12:00", "2024-03-05 EST",
                 "99999999999999999999", "1e12", "2024-02-30", "20240230")
# fmt: on
CELL = st.text(alphabet=st.sampled_from(list("ab Z0\"',;|\t\n=éü€✓")), max_size=8)
BLANK = st.sampled_from(BLANKS)
INSTANTS = st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2035, 12, 31))


@dataclass(frozen=True)
class Export:
    """One generated source file, its mapping YAML and how many records (rows) it holds."""

    name: str
    data: bytes = field(repr=False)
    mapping: str
    records: int
    mapping_error: bool  # mapped on purpose so the run must stop with exit 2

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How hypothesis shows a failing example: without the bytes (note() shows the file)."""
        printer.text(f"Export({self.name!r}, records={self.records}, {self.mapping_error=})")

    def describe(self) -> str:
        """The file and the mapping as text, for hypothesis' note() on a failing example."""
        if self.name.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(self.data))
            shown = f"{table.schema}\n{table.to_pylist()!r}"
        else:
            shown = repr(gzip.decompress(self.data) if self.name.endswith(".gz") else self.data)
        return f"--- {self.name} ({self.records} records)\n{shown}\n--- mapping\n{self.mapping}"


def date_text(fmt: str | None, when: datetime, variant: int, pad: bool) -> str:
    """``when`` written the way ``fmt`` reads it (``variant`` picks an ISO spelling; unpadded
    numbers when not ``pad``, so the column's width varies)."""
    if fmt in ("epoch_s", "epoch_ms"):
        seconds = (when.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
        return str(int(seconds * (1000 if fmt == "epoch_ms" else 1)))
    if fmt is None:
        spellings = (
            when.isoformat(),
            when.isoformat() + "Z",
            when.strftime("%Y-%m-%d"),
            when.isoformat(sep=" ", timespec="minutes"),
            when.isoformat(timespec="milliseconds") + "+05:30",
        )
        return spellings[variant % len(spellings)]
    text = when.strftime(fmt)
    return text if pad else re.sub(r"(?<!\d)0(\d)", r"\1", text)


@st.composite
def text_cells(draw: st.DrawFn, role: str, fmt: str | None, pad: bool, noisy: bool = True) -> str:
    """One CSV cell for a column of ``role``: a good value, a blank or (when ``noisy``) a bad one."""
    kind = draw(st.sampled_from(("good", "good", "good", "blank", "odd")[: 5 if noisy else 4]))
    if kind == "blank":
        return draw(BLANK)
    if kind == "odd":
        return draw(CELL)
    if role == "date":
        variant = draw(st.integers(0, 9))
        if variant == 9 and noisy:
            return draw(st.sampled_from(GARBAGE_DATES))
        return date_text(fmt, draw(INSTANTS), variant, pad)
    pools = {
        "user": st.sampled_from(("u1", "u2", "007", "Zoë", 'a"b', "x,y;z", "12345.0")),
        "course": st.sampled_from(("C-1", "C-2", "C 3 ", "Kurs ✓", "line\nbreak")),
        "minutes": st.sampled_from(DURATIONS),
        "status": st.sampled_from(STATUSES),
        "score": st.sampled_from(SCORES),
    }
    return draw(pools.get(role, CELL))


@dataclass(frozen=True)
class Shape:
    """What the mapping maps: column names by role, the extras, the date format."""

    names: dict[str, str]
    extras: tuple[str, ...]
    fmt: str | None
    mapped: frozenset[str]  # optional roles the mapping maps (user, course, date always)
    tenant: str | None  # an account column, or None for STACKONE_ACCOUNT_ID


@st.composite
def shapes(draw: st.DrawFn, formats: tuple[str | None, ...] = DATE_FORMATS) -> Shape:
    """Column names, extras and the mapped optional fields of one export."""
    names = {role: draw(st.sampled_from(NAMES[role])) for role in ROLES}
    extras = tuple(draw(st.lists(st.sampled_from(EXTRAS), max_size=3, unique=True)))
    optional = draw(st.sets(st.sampled_from(("minutes", "status", "score"))))
    tenant = draw(st.sampled_from((None, None, "tenant")))
    return Shape(names, extras, draw(st.sampled_from(formats)), frozenset(optional), tenant)


@st.composite
def mapping_yaml(
    draw: st.DrawFn, shape: Shape, plain: tuple[str, ...], extra: dict[str, Any]
) -> str:
    """A mapping for ``shape``: random zone, unit, scale, map, filters and repeats; ``plain``
    are columns a filter or passthrough may read; ``extra`` holds more ``fields`` entries and
    ``source`` keys (key ``source``)."""
    names = shape.names
    fields: dict[str, Any] = {
        "learning_object_external_reference": {"column": names["course"]},
        "completed_at": {"column": names["date"]} | ({"format": shape.fmt} if shape.fmt else {}),
    }
    if "minutes" in shape.mapped:
        fields["time_spent"] = {"column": names["minutes"]} | _some(draw, "unit", UNITS)
    if "status" in shape.mapped:
        codes = draw(st.sets(st.sampled_from(("Passed", "Completed", "Failed"))))
        outcomes = {c: ("Fail" if c == "Failed" else "Pass") for c in codes}
        fields["result"] = {"column": names["status"], "map": outcomes}
    if "score" in shape.mapped:
        fields["score"] = {"column": names["score"]} | _some(draw, "scale", (None, "fraction"))
    passthrough = draw(st.lists(st.sampled_from(plain), max_size=2, unique=True)) if plain else []
    if passthrough:
        fields["passthrough"] = {"columns": passthrough}
    spec: dict[str, Any] = {
        "version": 1,
        "source": {"timezone": draw(st.sampled_from(TIMEZONES))} | extra.get("source", {}),
        "user": {"column": names["user"]},
        "fields": fields | {key: value for key, value in extra.items() if key != "source"},
        "repeats": draw(st.sampled_from(("first", "last"))),
    }
    if shape.tenant is not None:
        spec["account"] = {"column": shape.tenant}
    if plain and draw(st.booleans()):
        column = draw(st.sampled_from(plain))
        spec["filters"] = [{"column": column, "in": draw(st.lists(CELL, min_size=1, max_size=3))}]
    if names["status"] in plain and draw(st.booleans()):
        spec.setdefault("filters", []).append(
            {"column": names["status"], "in": ["Passed", "Failed", "Completed", "Exempt"]}
        )
    return yaml.safe_dump(spec, allow_unicode=True, sort_keys=False)


def _some(draw: st.DrawFn, key: str, choices: tuple[str | None, ...]) -> dict[str, str]:
    choice = draw(st.sampled_from(choices))
    return {} if choice is None else {key: choice}


@st.composite
def csv_exports(draw: st.DrawFn) -> Export:
    """A CSV (or .csv.gz) export of 1 to 40 records with blank lines, ragged rows, any quoting."""
    shape = draw(shapes())
    columns = [*ROLES, *(["tenant"] if shape.tenant else []), *shape.extras]
    columns = list(draw(st.permutations(columns)))
    header = [shape.names.get(c, c) for c in columns]
    pad, noisy = draw(st.booleans()), draw(st.booleans())  # fixed-width dates, bad values
    count = draw(st.integers(1, 40))
    rows = [
        [draw(text_cells(c, shape.fmt, pad or draw(st.booleans()), noisy)) for c in columns]
        for _ in range(count)
    ]
    blank_last = draw(st.sampled_from((None, *range(len(columns)))))
    if blank_last is not None:
        rows[-1][blank_last] = draw(BLANK)
    for index in draw(st.sets(st.integers(0, count - 1), max_size=2)):
        width = draw(st.sampled_from([w for w in (1, 2, len(columns) + 1) if w != len(columns)]))
        rows[index] = [f"r{index}", *rows[index]][:width]  # never a blank line
    text = _csv_text(draw, header, rows)
    encoding = draw(st.sampled_from(("utf-8", "utf-8-sig", "cp1252")))
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        encoding, data = "utf-8", text.encode("utf-8")
    plain = (shape.names["status"], *shape.extras)
    source = {"encoding": encoding.removesuffix("-sig")}  # a BOM is tolerated with utf-8
    mapping = draw(mapping_yaml(shape, plain, {"source": source}))
    gz = draw(st.booleans())
    name = "export.csv.gz" if gz else "export.csv"
    return Export(name, gzip.compress(data) if gz else data, mapping, count, False)


def _csv_text(draw: st.DrawFn, header: list[str], rows: list[list[str]]) -> str:
    """Header and rows written by csv.writer with a random delimiter, quoting and line ends,
    blank lines anywhere (not records) and sometimes no line end after the last record."""
    delimiter = draw(st.sampled_from((",", ";", "\t", "|")))
    quoting = draw(st.sampled_from((csv.QUOTE_MINIMAL, csv.QUOTE_ALL)))
    terminator = draw(st.sampled_from(("\n", "\r\n")))
    blank_lines = draw(st.sets(st.integers(0, len(rows)), max_size=3))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator=terminator)
    writer.writerow(header)
    for index, row in enumerate(rows):
        if index in blank_lines:
            buffer.write(terminator)
        writer.writerow(row)
    if len(rows) in blank_lines:
        buffer.write(terminator)
    text = buffer.getvalue()
    return text.removesuffix(terminator) if draw(st.booleans()) else text
