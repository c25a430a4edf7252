"""`time_spent`: any accepted duration spelling -> canonical ISO 8601 (H/M/S only, DESIGN §5)."""

from transforms.durations.canonical import format_duration
from transforms.durations.columns import to_iso_durations
from transforms.durations.parsing import parse_duration
from transforms.durations.units import UNITS

__all__ = ["UNITS", "format_duration", "parse_duration", "to_iso_durations"]
