"""The shipped export flavours (config/mappings/*.yaml) as ``inspect`` recognises them in a header."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transforms.errors import MappingError
from transforms.flavours import FlavourMatch, best_flavour, match_flavours
from transforms.mapping import MappingSpec, parse_mapping

SHIPPED_MAPPINGS = Path(__file__).resolve().parents[2] / "config" / "mappings"
_SHOWN_PARTIALS = 3
_PARTIAL_SHARE = 0.5  # a partial candidate has at least half of its mapping's columns


@dataclass(frozen=True)
class ShippedFlavour:
    """One shipped mapping file: where it is, its text as written, and its parsed spec."""

    path: Path
    text: str
    spec: MappingSpec


def load_flavours(folder: Path = SHIPPED_MAPPINGS) -> dict[str, ShippedFlavour]:
    """Every mapping in ``folder`` that parses without environment variables, by file stem."""
    flavours = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            text = path.read_text(encoding="utf-8")
            flavours[path.stem] = ShippedFlavour(path, text, parse_mapping(text, {}))
        except (OSError, UnicodeDecodeError, MappingError):
            continue  # not a usable flavour (e.g. needs a ${VAR}); the profile still proposes one
    return flavours


def recognise(
    header: list[str], flavours: dict[str, ShippedFlavour]
) -> tuple[ShippedFlavour | None, list[str]]:
    """The flavour whose columns are all in ``header`` (None if none is), and comment lines
    saying which matched, or which came closest and what they miss."""
    matches = match_flavours(header, {name: item.spec for name, item in flavours.items()})
    best = best_flavour(matches)
    if best is not None:
        found = flavours[best.name]
        return found, [
            f"# Recognised flavour {best.name} ({_shown(found.path)}): all "
            f"{len(best.matched)} columns it names are in the header:",
            f"#   {', '.join(best.matched)}",
        ]
    lines = ["# No shipped flavour has all its columns in this header; proposing from the profile."]
    close = [m for m in matches if m.share >= _PARTIAL_SHARE][:_SHOWN_PARTIALS]
    lines.extend(_partial_line(match, flavours[match.name].path) for match in close)
    return None, lines


def _partial_line(match: FlavourMatch, path: Path) -> str:
    total = len(match.matched) + len(match.missing)
    return (
        f"#   closest: {match.name} ({_shown(path)}) has {len(match.matched)} of {total}; "
        f"missing {', '.join(match.missing)}; matched {', '.join(match.matched)}"
    )


def _shown(path: Path) -> str:
    """The path relative to the working directory when it is under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
