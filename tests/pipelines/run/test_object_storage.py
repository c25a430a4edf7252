"""Exports in a bucket and run folders written to one: ``run``, ``nightly`` and ``backfill`` over
``s3://`` URLs against a real S3 emulator (moto's server) and the sandbox."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.sandbox import RunningSandbox
from tests.pipelines.run.test_jobs import (
    MAPPING,
    SAMPLE,
    SAMPLE_SENT,
    env_for,
    lms_sync,
    write_history,
)
from tests.s3_server import Bucket


def env(sandbox: RunningSandbox, bucket: Bucket) -> dict[str, str | None]:
    """A delivering run's environment, reaching the sandbox and the bucket."""
    return {**env_for(sandbox), **bucket.env}


def test_a_run_reads_an_export_from_a_bucket_and_writes_its_run_folder_there(
    make_sandbox: Callable[..., RunningSandbox], s3: Bucket, tmp_path: Path
) -> None:
    """``run s3://…/export.csv --out s3://…/runs/today``: delivered as from a local file; the run
    folder's files are objects under the URL and report.json names them."""
    sandbox = make_sandbox(rate_limit=(100_000, 1.0))
    url = s3.put("exports/May export (final).csv", SAMPLE.read_bytes())  # a key as people name them
    result = lms_sync(
        env(sandbox, s3), "run", url, "-m", MAPPING, "--out", f"s3://{s3.name}/runs/today",
        "--ledger", tmp_path / "ledger.sqlite",
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # the sample's bad rows are dead-lettered
    keys = s3.keys("runs/today/")
    assert {"runs/today/report.json", "runs/today/deadletter.csv"} <= set(keys)
    report = json.loads(s3.get("runs/today/report.json"))
    assert report["outcomes"]["delivered"] == SAMPLE_SENT
    assert report["location"] == f"s3://{s3.name}/runs/today"
    assert report["deadletter"]["csv"] == f"s3://{s3.name}/runs/today/deadletter.csv"
    header = s3.get("runs/today/deadletter.csv").splitlines()[0]
    assert b'"_dl_error_code"' in header and b'"Employee ID"' in header


def test_nightly_over_a_bucket_prefix_runs_each_new_object_once(
    make_sandbox: Callable[..., RunningSandbox], s3: Bucket, tmp_path: Path
) -> None:
    """A landing prefix: the first night runs its exports, the second night nothing, a new
    object the night after; an empty prefix is a quiet night."""
    sandbox = make_sandbox(rate_limit=(100_000, 1.0))
    files = write_history(tmp_path / "history", 3, 12)
    for path in files[:2]:
        s3.put(f"landing/{path.name}", path.read_bytes())
        time.sleep(0.05)  # object times order the night's files
    landing = f"s3://{s3.name}/landing/"
    args = ["nightly", landing, "-m", MAPPING, "--ledger", tmp_path / "ledger.sqlite"]

    first = lms_sync(env(sandbox, s3), *args, "--out", tmp_path / "n1")
    assert first.exit_code in (0, 1), first.output
    assert len(list((tmp_path / "n1").glob("*/report.json"))) == 2
    posts = len(sandbox.request_log())
    again = lms_sync(env(sandbox, s3), *args, "--out", tmp_path / "n2")
    assert again.exit_code == 0, again.output
    assert "already processed" in again.output and len(sandbox.request_log()) == posts
    s3.put(f"landing/{files[2].name}", files[2].read_bytes())
    third = lms_sync(env(sandbox, s3), *args, "--out", tmp_path / "n3")
    reports = [json.loads(p.read_text()) for p in (tmp_path / "n3").glob("*/report.json")]
    assert third.exit_code in (0, 1) and len(reports) == 1
    assert Path(reports[0]["sources"][0]).name == files[2].name
    quiet = lms_sync(env(sandbox, s3), "nightly", f"s3://{s3.name}/empty/", "-m", MAPPING,
                     "--ledger", tmp_path / "ledger.sqlite")  # fmt: skip
    assert quiet.exit_code == 0, quiet.output


def test_a_parallel_backfill_of_a_bucket_writes_every_run_folder_to_the_bucket(
    make_sandbox: Callable[..., RunningSandbox], s3: Bucket, tmp_path: Path
) -> None:
    """``backfill s3://…/history/ --parallel 2 --out s3://…/runs``: every file runs once, every
    row is sent once, each file's run folder lands under the bucket's runs prefix."""
    sandbox = make_sandbox(rate_limit=(100_000, 1.0))
    files = write_history(tmp_path / "history", 4, 10)
    for path in files:
        s3.put(f"history/year=2023/{path.name}", path.read_bytes())
    result = lms_sync(
        env(sandbox, s3), "backfill", f"s3://{s3.name}/history/", "-m", MAPPING,
        "--parallel", "2", "--out", f"s3://{s3.name}/runs", "--ledger", tmp_path / "l.sqlite",
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    reports = [k for k in s3.keys("runs/") if k.endswith("/report.json")]
    assert len(reports) == len(files)
    delivered = sum(json.loads(s3.get(k))["outcomes"]["delivered"] for k in reports)
    users = [e["path"].split("/")[4] for e in sandbox.request_log() if e["method"] == "POST"]
    assert len(users) == len(set(users)) == delivered
    assert all(os.path.basename(k) == "report.json" for k in reports)
