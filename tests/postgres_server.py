"""A throw-away PostgreSQL cluster for the tests: ``initdb`` in a temp folder, ``pg_ctl`` start on a
free 127.0.0.1 port, stopped and deleted at the end. ``initdb`` refuses to run as root: as root the
cluster is owned by the ``postgres`` user (or ``nobody``)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["postgres_missing", "running_postgres"]


def postgres_missing() -> str | None:
    """Why no cluster can be started here (None: it can)."""
    for tool in ("initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            return f"PostgreSQL's {tool} is not on the PATH"
    if os.geteuid() == 0 and _unprivileged_user() is None:
        return "running as root and there is no postgres or nobody user to run initdb as"
    return None


def _unprivileged_user() -> pwd.struct_passwd | None:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str], user: pwd.struct_passwd | None) -> None:
    command = [shutil.which(args[0]) or args[0], *args[1:]]
    if user is not None:
        command = ["runuser", "-u", user.pw_name, "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@contextmanager
def running_postgres() -> Iterator[str]:
    """Start a cluster; yields the URL of its ``postgres`` database (user ``lms``, trust auth)."""
    user = _unprivileged_user() if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="lms-sync-pg-"))
    data = folder / "data"
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    port = _free_port()
    _run(["initdb", "-D", str(data), "-U", "lms", "-A", "trust", "-E", "UTF8", "--no-sync"], user)
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
    _run(["pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"], user)
    try:
        yield f"postgresql://lms@127.0.0.1:{port}/postgres"
    finally:
        _run(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"], user)
        shutil.rmtree(folder, ignore_errors=True)
