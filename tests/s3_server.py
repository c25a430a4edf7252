"""A session S3 emulator (moto's server mode) on a free 127.0.0.1 port, and ``s3``: a fresh
bucket per test with the standard AWS environment pointing at the emulator."""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.emulated_bucket import EmulatedBucket

_buckets = itertools.count(1)
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class Bucket(EmulatedBucket):
    """One test's bucket in moto's S3 server, with a boto3 client."""

    scheme: ClassVar[str] = "s3"
    client: Any = None

    def put(self, key: str, data: bytes) -> str:
        """Store an object; its s3:// URL."""
        self.client.put_object(Bucket=self.name, Key=key, Body=data)
        return self.url(key)

    def get(self, key: str) -> bytes:
        """An object's bytes."""
        body: bytes = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return body

    def keys(self, prefix: str = "") -> list[str]:
        """Keys of the objects (not folder markers) under ``prefix``."""
        found = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix).get("Contents", [])
        return sorted(o["Key"] for o in found if not o["Key"].endswith("/"))


@contextlib.contextmanager
def running_s3() -> Iterator[str]:
    """moto's S3 server on a free 127.0.0.1 port until the block ends; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def new_bucket(endpoint: str) -> Bucket:
    """A fresh bucket in the emulator at ``endpoint``, with the environment that reaches it."""
    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    name = f"lms-{next(_buckets)}"
    client.create_bucket(Bucket=name)
    return Bucket(name, {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}, client)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The emulator's URL (one server for the session)."""
    with running_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A fresh bucket; this process's environment reaches the emulator during the test."""
    bucket = new_bucket(s3_endpoint)
    for name, value in bucket.env.items():
        monkeypatch.setenv(name, value)
    return bucket


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_REGION"],
    }
