"""The ``lms-sync`` command's entry point: keeps pandas out of the process, then runs the CLI.

pyarrow imports pandas the first time ``pa.array()`` is called, only to ask whether its input is a
pandas object (~2 s and ~60 MB here, a third of the command's start-up). lms-sync never hands it
one, so the command's process goes without; code importing lms-sync as a library is unaffected.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType


class _WithoutPandas(MetaPathFinder):
    """Answers every import of pandas with ModuleNotFoundError, as where it is not installed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(f"lms-sync runs without {fullname}", name=fullname)
        return None


def main() -> None:
    """Console-script entry point."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _WithoutPandas())
    from pipelines.cli.app import main as run_cli  # after the finder is in place

    run_cli()
