"""Object-store URLs (``s3://bucket/key``, ``gs://``, ``az://``, ``file://``) to pyarrow file
systems, the one place that opens them: the key is taken as it is (spaces, brackets …).

An object is read through a local staged copy (``<cache>/<scheme>/<bucket>/<key>``); what a run
shows people (report.json's sources, ``_dl_source_file``) is the object's URL, not that copy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit

import pyarrow.fs as pafs

from pipelines.core.settings import storage_emulator_host

__all__ = [
    "REMOTE_SCHEMES",
    "filesystem_of",
    "is_url",
    "origin_url",
    "source_label",
    "staged_location",
]

REMOTE_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "file")
_GCS_SCHEMES = ("gs", "gcs")


def is_url(text: str) -> bool:
    """Does ``text`` name an object store location (``scheme://…``) rather than a local path?"""
    return text.partition("://")[0].lower() in REMOTE_SCHEMES and "://" in text


def filesystem_of(url: str) -> tuple[pafs.FileSystem, str]:
    """The file system and the path within it of ``url`` (ValueError/OSError when it cannot);
    ``gs://`` goes to the emulator named by ``STORAGE_EMULATOR_HOST`` when that is set."""
    scheme, _, rest = url.partition("://")
    emulator = storage_emulator_host() if scheme.lower() in _GCS_SCHEMES else None
    if emulator:
        return _gcs_emulator(emulator), rest
    return pafs.FileSystem.from_uri(f"{scheme}://{quote(rest, safe='/')}")


def _gcs_emulator(host: str) -> pafs.GcsFileSystem:
    """Anonymous access to a GCS emulator at ``http://host:port`` (as Google's clients do)."""
    parts = urlsplit(host if "://" in host else f"http://{host}")
    if not parts.netloc:
        raise ValueError(f"STORAGE_EMULATOR_HOST {host!r} names no host")
    return pafs.GcsFileSystem(anonymous=True, scheme=parts.scheme, endpoint_override=parts.netloc)


def cache_root() -> Path:
    """Where objects are staged: ``$TMPDIR/lms-sync-objects``."""
    return Path(tempfile.gettempdir()) / "lms-sync-objects"


def staged_location(url: str, cache: Path | None = None) -> Path:
    """The local path of the staged copy of the object at ``url``."""
    scheme, _, rest = url.partition("://")
    return (cache or cache_root()) / scheme / rest


def origin_url(path: Path, cache: Path | None = None) -> str | None:
    """The URL of the object ``path`` is the staged copy of (None: not a staged copy), so a run
    on another machine can fetch the object itself."""
    try:
        scheme, *key = path.relative_to(cache or cache_root()).parts
    except ValueError:
        return None
    return f"{scheme}://{'/'.join(key)}" if scheme in REMOTE_SCHEMES and key else None


def source_label(source: Path | str) -> str:
    """How a source is named to people: a staged copy by its object's URL, else as given."""
    if isinstance(source, str) and is_url(source):
        return source
    return origin_url(Path(source)) or str(source)
