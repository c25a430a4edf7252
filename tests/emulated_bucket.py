"""What every emulated bucket of the tests has: a name, the environment that reaches it, URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass
class EmulatedBucket:
    """One test's bucket in an emulator (S3 or GCS), named by its URL scheme."""

    scheme: ClassVar[str]
    name: str
    env: dict[str, str]

    def url(self, key: str = "") -> str:
        """The URL of ``key`` in this bucket (``s3://name/key``, ``gs://name/key``)."""
        return f"{self.scheme}://{self.name}/{key}"
