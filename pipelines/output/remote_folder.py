"""A run folder written to object storage (``--out s3://bucket/runs/today``): the run writes a
local folder as always, then its files are copied under the URL, and report.json names the
objects (absolute locations) instead of the local files."""

from __future__ import annotations

from pathlib import Path

from pipelines.core.errors import SourceError
from pipelines.core.object_urls import filesystem_of

__all__ = ["upload_folder"]

_COPY_BLOCK = 8 << 20


def upload_folder(folder: Path, url: str) -> None:
    """Copy every file of ``folder`` under ``url`` (the run folder's own location)."""
    try:
        fs, root = filesystem_of(url.rstrip("/"))
        fs.create_dir(root, recursive=True)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = f"{root}/{path.relative_to(folder).as_posix()}"
            with path.open("rb") as source, fs.open_output_stream(name) as target:
                while block := source.read(_COPY_BLOCK):
                    target.write(block)
    except (OSError, ValueError) as exc:
        raise SourceError(url, f"cannot write the run folder there: {exc}") from None
