"""What profiling finds: one column's guessed kind and settings, and a sampled export's columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal[
    "empty", "id", "email", "timestamp", "duration", "score", "status", "text", "number", "nested"
]

ISO = "iso"  # Profile format of a column of ISO 8601 text (the mapping leaves ``format`` out)


@dataclass(frozen=True)
class ColumnProfile:
    """What one column looks like: its guessed kind and the converter settings that fit it.

    ``format`` (timestamps: ``iso``, a strptime pattern, ``epoch_s`` …, ``typed``), ``unit``
    (durations), ``scale`` (scores) are the best candidates; ``errors`` is how many non-blank rows
    that converter still rejects; ``values`` holds status-like columns' distinct values, most
    frequent first; ``note`` says what the guess is unsure about.
    """

    name: str
    kind: Kind
    rows: int
    blanks: int
    distinct: int
    samples: tuple[str, ...]
    format: str | None = None
    unit: str | None = None
    scale: str | None = None
    errors: int = 0
    values: tuple[str, ...] = ()
    note: str | None = None

    @property
    def blank_rate(self) -> float:
        """Share of rows that are blank (DESIGN §5 blanks: empty, spaces, N/A, NULL)."""
        return self.blanks / self.rows if self.rows else 0.0

    @property
    def detail(self) -> str:
        """The converter setting in a few words, for the inspect table."""
        if self.kind == "timestamp":
            return {ISO: "ISO 8601", "typed": "typed"}.get(self.format or "", self.format or "")
        if self.kind == "duration":
            return f"bare numbers in {self.unit}" if self.unit else "self-describing"
        return self.scale or ""


@dataclass(frozen=True)
class Profile:
    """A sampled export: its columns' profiles plus how the source was read."""

    columns: tuple[ColumnProfile, ...]
    rows: int
    format: Literal["csv", "parquet"] = "csv"
    delimiter: str | None = None
    encoding: str | None = None
    column_by_name: dict[str, ColumnProfile] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_by_name", {c.name: c for c in self.columns})
