"""Exports in object storage (``s3://``, ``gs://``, ``az://``, ``file://``): listing a prefix or a
glob, and staging each object in a local cache before it is read like a local file.

pyarrow's file systems do the I/O, with the credentials of the standard environment
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_REGION``, ``AWS_ENDPOINT_URL`` for an
S3-compatible store such as MinIO; ``STORAGE_EMULATOR_HOST`` for a GCS emulator; Google and Azure
likewise). A staged copy mirrors the object's
location (``<cache>/s3/bucket/key``) and is fetched again only when the object's size or
modification time changed; fingerprints are of the content, as for local files.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow.fs as pafs

from pipelines.core.errors import SourceError
from pipelines.core.object_urls import (
    REMOTE_SCHEMES,
    filesystem_of,
    is_url,
    origin_url,
    staged_location,
)

__all__ = [
    "REMOTE_SCHEMES",
    "RemoteObject",
    "exists",
    "is_url",
    "list_objects",
    "origin_url",
    "stage",
    "staged",
    "staged_location",
]

_COPY_BLOCK = 8 << 20


@dataclass(frozen=True)
class RemoteObject:
    """One object: its URL, size and modification time (seconds, None when unknown)."""

    url: str
    size: int
    mtime: float | None


def _filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    """The file system and path of ``url``; the key is taken as it is (spaces, brackets …)."""
    try:
        return filesystem_of(url)
    except (ValueError, OSError) as exc:
        raise SourceError(url, f"cannot open the object store: {exc}") from None


def list_objects(
    url: str, suffixes: tuple[str, ...], *, empty_ok: bool = False
) -> list[RemoteObject]:
    """The export objects at ``url``: one object, every object under a prefix (recursive, hidden
    and ``_``-prefixed names left out) or those matching a glob, oldest first, then by name;
    ``empty_ok``: an existing prefix without exports is no error (a quiet night)."""
    scheme = url.partition("://")[0]
    wild = next((i for i, c in enumerate(url) if c in "*?["), None)
    base = url if wild is None else url[: url.rfind("/", 0, wild) + 1]
    fs, root = _filesystem(base)
    try:
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.File and wild is None:
            found = [info]
        elif info.type == pafs.FileType.Directory:
            found = [i for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))
                     if i.type == pafs.FileType.File]  # fmt: skip
        elif empty_ok and _bucket_exists(fs, root):
            found = []  # an object store has no empty folders: an unused prefix is empty
        else:
            raise SourceError(url, "no such object or prefix")
    except OSError as exc:
        raise SourceError(url, f"cannot list: {exc}") from None
    prefix = f"{scheme}://"
    objects = [
        RemoteObject(prefix + i.path, int(i.size or 0), i.mtime.timestamp() if i.mtime else None)
        for i in found
        if _wanted(i.path, root, suffixes, url[len(prefix) :] if wild is not None else None)
    ]
    if not objects and not empty_ok:
        raise SourceError(url, f"no {', '.join(suffixes)} objects here")
    return sorted(objects, key=lambda o: (o.mtime or 0.0, o.url))


def _bucket_exists(fs: pafs.FileSystem, root: str) -> bool:
    return bool(fs.get_file_info(root.split("/", 1)[0]).type == pafs.FileType.Directory)


def _wanted(path: str, root: str, suffixes: tuple[str, ...], glob: str | None) -> bool:
    if glob is not None:
        return fnmatch.fnmatchcase(path, glob)
    parts = PurePosixPath(path).relative_to(root).parts if path != root else (path,)
    hidden = any(part[:1] in (".", "_") for part in parts)
    return path.lower().endswith(suffixes) and not hidden


def stage(obj: RemoteObject, cache: Path | None = None) -> Path:
    """A local copy of the object (fetched again only when its size or mtime changed)."""
    local = staged_location(obj.url, cache)
    stamp = local.with_name(local.name + ".stamp")
    mark = f"{obj.size} {obj.mtime}"
    if local.exists() and stamp.exists() and stamp.read_text() == mark:
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    fs, path = _filesystem(obj.url)
    partial = local.with_name(local.name + ".part")
    try:
        with fs.open_input_stream(path) as source, partial.open("wb") as target:
            while block := source.read(_COPY_BLOCK):
                target.write(block)
    except OSError as exc:
        raise SourceError(obj.url, f"cannot fetch: {exc}") from None
    partial.replace(local)
    if obj.mtime is not None:
        os.utime(local, (obj.mtime, obj.mtime))  # landing folders are taken oldest first
    stamp.write_text(mark)
    return local


def exists(url: str) -> bool:
    """Is there an object at ``url``, or any object under it (a prefix in use)?"""
    fs, path = _filesystem(url.rstrip("/"))
    try:
        return bool(fs.get_file_info(path).type != pafs.FileType.NotFound)
    except OSError as exc:
        raise SourceError(url, f"cannot look: {exc}") from None


def staged(url: str, suffixes: tuple[str, ...], *, empty_ok: bool = False) -> list[Path]:
    """Local copies of the export objects at ``url``, oldest first."""
    return [stage(obj) for obj in list_objects(url, suffixes, empty_ok=empty_ok)]
