"""Which shipped export flavour a header is: every column a mapping names must be in it.

Names are compared trimmed and case-insensitively. Of the flavours whose columns are all present,
the one naming the most columns wins; the others are ranked by the share of their columns present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from transforms.mapping import MappingSpec


@dataclass(frozen=True)
class FlavourMatch:
    """How one flavour's mapping fits a header: the columns it names, found and missing."""

    name: str
    matched: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Every column the mapping names is in the header."""
        return not self.missing

    @property
    def share(self) -> float:
        """The part of the mapping's columns that the header has (0..1)."""
        return len(self.matched) / max(1, len(self.matched) + len(self.missing))


def mapping_columns(spec: MappingSpec) -> tuple[str, ...]:
    """The distinct columns a mapping reads, in the order it names them."""
    return tuple(dict.fromkeys(column for _, column in spec.columns()))


def match_flavours(header: list[str], specs: Mapping[str, MappingSpec]) -> list[FlavourMatch]:
    """Every flavour against ``header``, best first: complete ones by most columns, then the
    partial ones by share of columns present (then by columns present, then by name)."""
    present = {_key(name) for name in header}
    matches = []
    for name, spec in specs.items():
        columns = mapping_columns(spec)
        matched = tuple(c for c in columns if _key(c) in present)
        missing = tuple(c for c in columns if _key(c) not in present)
        matches.append(FlavourMatch(name, matched, missing))
    return sorted(matches, key=lambda m: (not m.complete, -m.share, -len(m.matched), m.name))


def best_flavour(matches: list[FlavourMatch]) -> FlavourMatch | None:
    """The winning flavour of ``match_flavours``' ranking, or None when none is complete."""
    return matches[0] if matches and matches[0].complete else None


def _key(column: str) -> str:
    """A column name as flavours compare it: trimmed, case-folded."""
    return column.strip().casefold()
