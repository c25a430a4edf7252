"""Object-store URLs (``s3://bucket/key``, ``gs://``, ``az://``, ``file://``) to pyarrow file
systems, the one place that opens them: the key is taken as it is (spaces, brackets …)."""

from __future__ import annotations

from urllib.parse import quote

import pyarrow.fs as pafs

__all__ = ["filesystem_of"]


def filesystem_of(url: str) -> tuple[pafs.FileSystem, str]:
    """The file system and the path within it of ``url`` (ValueError/OSError when it cannot)."""
    scheme, _, rest = url.partition("://")
    return pafs.FileSystem.from_uri(f"{scheme}://{quote(rest, safe='/')}")
