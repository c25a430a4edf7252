"""How an error ends a run (DESIGN §8): a known run-level error stops it and is raised on; any
other error is a crash, recorded in the report (exit 3) instead of escaping as a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from pipelines.output.report import RunReport
from transforms.errors import LmsSyncError

Redact = Callable[[str], str]


@contextlib.contextmanager
def record_errors(report: RunReport, redact: Redact | None = None) -> Iterator[None]:
    """Around a run's work: rows read without an outcome become ``pending`` however it ends.

    An ``LmsSyncError`` (a source that cannot be read on, the API refusing the key) marks the
    run aborted and is raised on for the caller to name; any other ``Exception`` is a crash: the
    report says so (status crashed, exit 3) with its traceback saved, and nothing is raised.
    """
    try:
        yield
    except LmsSyncError as exc:
        report.aborted = report.aborted or str(exc) or type(exc).__name__
        report.settle_rest()
        raise
    except Exception as exc:  # an unexpected error: the run is over, the report says crashed
        report.crashed(exc, redact)
