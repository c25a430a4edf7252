"""Run identity and the run folder: run ids, owner-only files (they hold personal data)."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pipelines.core.settings import DEFAULT_RUNS_DIR


def new_run_id(now: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ-xxxx``: sortable by start time, unique enough for one machine."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def run_folder(out: Path | None, run_id: str) -> Path:
    """The run folder: ``--out`` itself, else data/runs/<run-id>/; created owner-only."""
    folder = out if out is not None else DEFAULT_RUNS_DIR / run_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def open_private(path: Path, mode: str = "wb", buffering: int = -1) -> IO[bytes]:
    """Open a file for writing, created readable by the owner only (0600); ``buffering=0``: raw."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, buffering)
