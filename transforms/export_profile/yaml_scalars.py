"""YAML scalars for the proposed mapping: plain when safe, else double-quoted."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence


def yaml_scalar(value: str) -> str:
    """A YAML scalar: plain when safe (also inside flow collections), else double-quoted."""
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9 _.\-/()]*", value) and not value.endswith(" ")
    special = value.lower() in {"yes", "no", "on", "off", "true", "false", "null", "y", "n"}
    if plain and not special:
        return value
    return json.dumps(value, ensure_ascii=not value.isprintable())  # YAML refuses raw controls


def yaml_listed(values: Sequence[str]) -> str:
    """The values as YAML scalars, comma-separated."""
    return ", ".join(yaml_scalar(v) for v in values)
