"""The units a mapping may give bare duration numbers (``time_spent.unit``), in seconds."""

from __future__ import annotations

from transforms.errors import MappingError

UNITS: tuple[str, ...] = ("seconds", "minutes", "hours", "excel_days")
UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "excel_days": 86400}


def check_unit(unit: str | None) -> None:
    """A unit outside UNITS is a mapping problem, not a row problem."""
    if unit is not None and unit not in UNIT_SECONDS:
        raise MappingError("time_spent.unit", f"unknown unit {unit!r}; allowed: {', '.join(UNITS)}")
