"""The ``format`` of a timestamp column: the special numeric formats and strptime directives."""

from __future__ import annotations

import re

SPECIAL_FORMATS: tuple[str, ...] = ("epoch_s", "epoch_ms", "excel_serial")

# strptime directives Python knows; glibc/Arrow ``pc.strptime`` parses the second set like Python
# (others, e.g. %f %j %c, run per value). %Z (zone names) is refused: abbreviations are ambiguous.
_PY_DIRECTIVES = frozenset("aAbBcdfGHIjmMpSuUVwWxXyYzZ%")
ARROW_DIRECTIVES = frozenset("aAbBdHIMmpSYyz%")
_DIRECTIVE = re.compile(r"%(.?)", re.DOTALL)


def check_format(fmt: str | None) -> None:
    """Raise ValueError unless ``fmt`` is absent, a special format, or a strptime date pattern."""
    allowed = f"a strptime pattern with a full date, or one of {', '.join(SPECIAL_FORMATS)}"
    if fmt is None or fmt in SPECIAL_FORMATS:
        return
    if not isinstance(fmt, str) or not fmt.strip():
        raise ValueError(f"format {fmt!r} is empty; use {allowed}")
    found = directives(fmt)
    if "Z" in found:
        raise ValueError(f"format {fmt!r}: %Z zone names are ambiguous; use %z (+02:00 or Z)")
    day = ("d" in found and bool(found & set("mbB"))) or "j" in found
    if not (found & {"c", "x"} or (found & {"Y", "y"} and day)):
        raise ValueError(
            f"format {fmt!r} has no full date: it needs the year (%Y or %y), month (%m, %b or "
            f"%B) and day (%d), or the year and day of year (%j)"
        )


def directives(fmt: str) -> set[str]:
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


def move_directives(fmt: str, moves: dict[str, str]) -> str:
    """``fmt`` with some directives replaced (``{"d": "I"}`` turns %d into %I; %% stays)."""
    return _DIRECTIVE.sub(lambda m: "%" + moves.get(m.group(1), m.group(1)), fmt)
