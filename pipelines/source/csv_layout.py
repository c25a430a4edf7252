"""A CSV source's layout (encoding, delimiter, header), read from its first bytes before any row."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.errors import SourceError
from pipelines.source.binary_files import STREAM_BREAKS, open_binary
from pipelines.source.column_names import checked_names
from pipelines.source.delimiters import records, resolve_delimiter
from pipelines.source.file_signatures import refuse_non_text
from pipelines.source.gzip_check import find_break
from pipelines.source.text_encoding import codecs_for, decode_message

__all__ = ["SNIFF_BYTES", "CsvLayout", "csv_layout"]

SNIFF_BYTES = 64 * 1024  # read to detect the delimiter and the header


@dataclass(frozen=True)
class CsvLayout:
    """How to read one CSV source: its codecs, delimiter and header names (raw and checked)."""

    path: Path
    encoding: str  # as the mapping gave it, for messages
    delimiter: str
    python_encoding: str  # codec for Python's csv path (utf-8-sig for UTF-8: BOM stripped)
    arrow_encoding: str | None  # None: not ASCII-compatible, Python path only
    raw_names: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def compressed(self) -> bool:
        """Whether the file is gzip-compressed (by its ``.gz`` extension)."""
        return self.path.name.lower().endswith(".gz")


def csv_layout(path: Path, delimiter: str, encoding: str) -> CsvLayout:
    """Decode the first bytes, resolve the delimiter and check the header (BOM dropped)."""
    sample, whole = _read_sample(path)
    python_encoding, arrow_encoding = codecs_for(path, encoding, sample)
    if not sample:
        raise SourceError(path, "file is empty")
    refuse_non_text(path, sample, python_encoding)
    try:
        decoder = codecs.getincrementaldecoder(python_encoding)(errors="strict")
        text = decoder.decode(sample, final=whole)
    except UnicodeDecodeError as exc:
        line = sample[: exc.start].count(b"\n") + 1
        raise SourceError(path, decode_message(encoding, exc, line)) from exc
    if not whole:  # keep whole lines only
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut < 0:
            raise SourceError(path, f"first line is longer than {SNIFF_BYTES // 1024} KB")
        text = text[: cut + 1]
    sep = resolve_delimiter(path, delimiter, text)
    header = next((rec for rec in records(text, sep) if rec), None)
    if header is None:
        raise SourceError(path, "file has no header (only blank lines)")
    if header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    names = checked_names(path, _named_trailing_column(header))
    return CsvLayout(path, encoding, sep, python_encoding, arrow_encoding, tuple(header), names)


def _named_trailing_column(header: list[str]) -> list[str]:
    """The header with an empty last name (a delimiter ending the header line, as Cornerstone and
    SuccessFactors exports have) named ``unnamed_<position>``: a column no mapping reads, kept
    in the dead-letter files. Any other empty name is still refused."""
    if len(header) > 1 and not header[-1].strip():
        return [*header[:-1], f"unnamed_{len(header)}"]
    return header


def _read_sample(path: Path) -> tuple[bytes, bool]:
    """The first SNIFF_BYTES bytes (decompressed) and whether that is the whole file.

    A .gz stream that breaks within them gives the complete lines before the break.
    """
    try:
        with open_binary(path) as stream:
            sample = stream.read(SNIFF_BYTES + 1)
    except STREAM_BREAKS as exc:
        broken = find_break(path) if path.name.lower().endswith(".gz") else None
        if broken is None:
            raise SourceError(path, f"cannot read: {exc}") from exc
        with open_binary(path, broken.good_bytes) as stream:
            sample = stream.read(SNIFF_BYTES + 1)
        if not sample:
            reason = f"file is truncated or corrupt: {broken.reason}, before its header line ends"
            raise SourceError(path, reason) from exc
    return sample[:SNIFF_BYTES], len(sample) <= SNIFF_BYTES
