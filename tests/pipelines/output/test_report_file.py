"""report.json read back (a run that ran on another worker): from a local run folder and from a
run folder in a bucket (moto's S3 server); and a staged object's own URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.core.errors import SourceError
from pipelines.core.outcomes import RunMode, RunStatus
from pipelines.output.remote_folder import upload_folder
from pipelines.output.report import RunReport
from pipelines.output.report_file import load_report
from pipelines.source.object_store import list_objects, origin_url, stage
from tests.s3_server import Bucket


def _finished_report(folder: Path) -> RunReport:
    """A delivering run with dead-lettered rows, a pause and a stop, written to ``folder``."""
    folder.mkdir(parents=True)
    started = datetime.now(UTC) - timedelta(seconds=12)
    report = RunReport("20261207T101500Z-ab12", RunMode.DELIVER, "https://t", ["a.csv"], started)
    report.folder = folder
    report.read(10)
    report.add("delivered", 6)
    report.add("duplicate", 1, "already_delivered")
    report.add("invalid", 2, "invalid_timestamp")
    report.add("pending", 1)
    report.requests_sent, report.status_429, report.retries = 7, 1, 2
    report.aborted = "HTTP 401 from the API"
    report.warnings["deprecated_field:content_id"] = 3
    report.finish({"csv": str(folder / "deadletter.csv"), "parquet": str(folder / "x.parquet")})
    return report


def test_a_local_report_reads_back_as_the_run_left_it(tmp_path: Path) -> None:
    """Counts, reasons, warnings, requests, dead-letter files and how the run ended survive the
    round trip; the threshold comes from the caller (report.json does not keep it)."""
    written = _finished_report(tmp_path / "run")
    loaded = load_report(str(tmp_path / "run"), max_invalid_pct=5.0)
    assert loaded.as_dict() == written.as_dict()
    assert loaded.folder == tmp_path / "run" and loaded.location is None
    assert loaded.status is RunStatus.ABORTED and loaded.exit_code() == 3
    assert loaded.max_invalid_pct == 5.0 and loaded.balanced


def test_a_report_in_a_bucket_reads_back_with_its_location(s3: Bucket, tmp_path: Path) -> None:
    """A run folder copied to ``s3://…/runs/a``: the report names the objects, and reads back."""
    written = _finished_report(tmp_path / "run")
    url = f"s3://{s3.name}/runs/a"
    written.moved_to(url)
    upload_folder(tmp_path / "run", url)
    loaded = load_report(url)
    assert loaded.as_dict() == written.as_dict()
    assert loaded.location == url and loaded.folder is None
    assert loaded.deadletter["csv"] == f"{url}/deadletter.csv"
    with pytest.raises(SourceError, match="cannot read the run's report"):
        load_report(f"s3://{s3.name}/runs/missing")


def test_a_missing_local_report_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"report\.json: cannot read"):
        load_report(str(tmp_path))


def test_a_staged_copy_knows_the_url_of_its_object(s3: Bucket, tmp_path: Path) -> None:
    """Another worker fetches the object itself: the staged copy maps back to its URL; a file
    that is not a staged copy has none."""
    url = s3.put("history/year=2023/part-1.csv", b"a,b\n1,2\n")
    (obj,) = list_objects(url, (".csv",))
    local = stage(obj, cache=tmp_path / "cache")
    assert origin_url(local, cache=tmp_path / "cache") == url
    assert origin_url(tmp_path / "elsewhere.csv", cache=tmp_path / "cache") is None
    assert origin_url(stage(obj)) == url  # the default cache under $TMPDIR
