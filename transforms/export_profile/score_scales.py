"""Which score scale fits a column: percent or fraction, tried with the score converter."""

from __future__ import annotations

import pyarrow as pa

from transforms.export_profile.measures import floats, rejected_rows
from transforms.scores import to_scores


def best_scale(text: pa.Array) -> tuple[str, int]:
    """The scale with fewer rejected rows (fraction on a tie of small decimals), and that count."""
    percent = rejected_rows(to_scores(text, "percent"))
    fraction = rejected_rows(to_scores(text, "fraction"))
    plain = floats(text)
    small = bool(plain) and max(plain) <= 1 and any(n != int(n) for n in plain)
    if fraction < percent or (fraction == percent and small):
        return "fraction", fraction
    return "percent", percent
