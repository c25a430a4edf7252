"""A session GCS emulator (gcp-storage-emulator, in memory) on a free 127.0.0.1 port, and ``gcs``:
a fresh bucket per test with ``STORAGE_EMULATOR_HOST`` pointing at the emulator. The test's own
reads and writes go through the emulator's JSON API over HTTP, not through the code under test."""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote

import httpx
import pytest
from gcp_storage_emulator.server import create_server

from tests.emulated_bucket import EmulatedBucket

_buckets = itertools.count(1)
_TIMEOUT = httpx.Timeout(30.0)


@dataclass
class GcsBucket(EmulatedBucket):
    """One test's bucket in gcp-storage-emulator, reached over its HTTP API."""

    scheme: ClassVar[str] = "gs"
    endpoint: str = ""

    def put(self, key: str, data: bytes) -> str:
        """Store an object; its gs:// URL."""
        response = httpx.post(
            f"{self.endpoint}/upload/storage/v1/b/{self.name}/o",
            params={"uploadType": "media", "name": key},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=_TIMEOUT,
        )
        response.raise_for_status()
        return self.url(key)

    def get(self, key: str) -> bytes:
        """An object's bytes."""
        response = httpx.get(
            f"{self.endpoint}/storage/v1/b/{self.name}/o/{quote(key, safe='')}",
            params={"alt": "media"},
            timeout=_TIMEOUT,
        )
        response.raise_for_status()
        return response.content

    def keys(self, prefix: str = "") -> list[str]:
        """Keys of the objects (not folder markers) under ``prefix``."""
        response = httpx.get(
            f"{self.endpoint}/storage/v1/b/{self.name}/o",
            params={"prefix": prefix},
            timeout=_TIMEOUT,
        )
        response.raise_for_status()
        items = response.json().get("items", [])
        return sorted(o["name"] for o in items if not o["name"].endswith("/"))


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """The emulator's URL (one in-memory server for the session)."""
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def gcs(gcs_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> GcsBucket:
    """A fresh bucket; this process's environment reaches the emulator during the test."""
    env = {"STORAGE_EMULATOR_HOST": gcs_endpoint}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    name = f"lms-gcs-{next(_buckets)}"
    response = httpx.post(
        f"{gcs_endpoint}/storage/v1/b",
        params={"project": "lms-sync-tests"},
        json={"name": name},
        timeout=_TIMEOUT,
    )
    response.raise_for_status()
    return GcsBucket(name, env, gcs_endpoint)
