"""Importing lms-sync picks Arrow's allocator: jemalloc unless the user chose one."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa

_SHOW = "import pipelines, pyarrow as pa; print(pa.default_memory_pool().backend_name)"


def _pool_with(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run(
        [sys.executable, "-c", _SHOW], env={**base, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_jemalloc_by_default_where_pyarrow_has_it() -> None:
    backends = pa.supported_memory_backends()
    chosen = _pool_with()
    assert chosen == "jemalloc" if "jemalloc" in backends else chosen in backends


def test_the_users_choice_wins() -> None:
    assert _pool_with(ARROW_DEFAULT_MEMORY_POOL="system") == "system"
