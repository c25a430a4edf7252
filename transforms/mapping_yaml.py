"""The mapping file's YAML as written: plain scalars stay text (statuses ``Yes``/``No``/``On``,
ids ``0042`` or ``12345``, a date constant), where YAML 1.1 would turn them into booleans,
numbers or dates that no mapping key takes; only ``null``/``~`` is None and ``version`` a number."""

from __future__ import annotations

from typing import Any

import yaml

_KEPT_TAGS = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}


class _TextLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without the bool, int, float and timestamp implicit resolvers."""


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag in _KEPT_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_mapping_yaml(text: str) -> Any:
    """The YAML document in ``text`` (``yaml.YAMLError`` when it is not YAML)."""
    raw = yaml.load(text, Loader=_TextLoader)
    if isinstance(raw, dict) and isinstance(raw.get("version"), str):
        version = raw["version"].strip()
        raw["version"] = int(version) if version.isdigit() else version
    return raw
