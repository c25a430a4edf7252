"""Exports in a bucket and run folders written to one: ``run``, ``nightly``, ``backfill`` and
``replay`` over object-store URLs against real emulators started on 127.0.0.1 (moto's S3 server
and gcp-storage-emulator for ``gs://``) and the sandbox; every test runs against both."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.sandbox import RunningSandbox
from tests.gcs_server import GcsBucket
from tests.pipelines.run.test_jobs import (
    MAPPING,
    SAMPLE,
    SAMPLE_SENT,
    env_for,
    lms_sync,
    write_history,
)
from tests.s3_server import Bucket

Store = Bucket | GcsBucket


@pytest.fixture(params=["s3", "gcs"])
def bucket(request: pytest.FixtureRequest) -> Store:
    """A fresh bucket in the S3 emulator, then in the GCS emulator."""
    store: Store = request.getfixturevalue(request.param)
    return store


def env(sandbox: RunningSandbox, bucket: Store) -> dict[str, str | None]:
    """A delivering run's environment, reaching the sandbox and the bucket."""
    return {**env_for(sandbox), **bucket.env}


def origins(table_bytes: bytes) -> set[str]:
    """The ``_dl_source_file`` values of a deadletter.parquet."""
    return set(pq.read_table(io.BytesIO(table_bytes)).column("_dl_source_file").to_pylist())


def test_a_run_reads_an_export_from_a_bucket_and_writes_its_run_folder_there(
    make_sandbox: Callable[..., RunningSandbox], bucket: Store, tmp_path: Path
) -> None:
    """``run <bucket>/export.csv --out <bucket>/runs/today``: delivered as from a local file; the
    run folder's files are objects under the URL, report.json names them, and the report and the
    dead-letter name the object (its URL), not the local copy the run read."""
    sandbox = make_sandbox(rate_limit=(100_000, 1.0))
    url = bucket.put("exports/May export (final).csv", SAMPLE.read_bytes())  # a key as people name
    result = lms_sync(
        env(sandbox, bucket), "run", url, "-m", MAPPING, "--out", bucket.url("runs/today"),
        "--ledger", tmp_path / "ledger.sqlite",
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # the sample's bad rows are dead-lettered
    keys = bucket.keys("runs/today/")
    assert {"runs/today/report.json", "runs/today/deadletter.csv"} <= set(keys)
    report = json.loads(bucket.get("runs/today/report.json"))
    assert report["outcomes"]["delivered"] == SAMPLE_SENT
    assert report["location"] == bucket.url("runs/today")
    assert report["deadletter"]["csv"] == bucket.url("runs/today/deadletter.csv")
    assert report["sources"] == [url]
    header = bucket.get("runs/today/deadletter.csv").splitlines()[0]
    assert b'"_dl_error_code"' in header and b'"Employee ID"' in header
    assert f'"{url}"'.encode() in bucket.get("runs/today/deadletter.csv")
    assert origins(bucket.get("runs/today/deadletter.parquet")) == {url}


def test_a_dry_run_of_an_object_names_it_in_its_payloads(bucket: Store, tmp_path: Path) -> None:
    """``run <bucket>/export.csv --dry-run``: every payload line's source_file is the object's URL."""
    url = bucket.put("exports/dry run.csv", SAMPLE.read_bytes())
    environment = {"STACKONE_ACCOUNT_ID": "acct-dry", "PREFECT_API_URL": None, **bucket.env}
    result = lms_sync(
        environment, "run", url, "-m", MAPPING, "--dry-run", "--out", tmp_path / "dry"
    )
    assert result.exit_code == 1, result.output  # the sample's bad rows are dead-lettered
    lines = (tmp_path / "dry" / "payloads.jsonl").read_text().splitlines()
    assert len(lines) == SAMPLE_SENT
    assert {json.loads(line)["source_file"] for line in lines} == {url}


def test_a_dead_letter_in_a_bucket_replays_and_keeps_the_object_as_origin(
    make_sandbox: Callable[..., RunningSandbox], bucket: Store, tmp_path: Path
) -> None:
    """``replay <bucket>/runs/first``: the rows (unfixed, so dead-lettered again) keep the
    object's URL as their ``_dl_source_file``; the report names the dead-letter object."""
    sandbox = make_sandbox(rate_limit=(100_000, 1.0))
    url = bucket.put("exports/may.csv", SAMPLE.read_bytes())
    ledger = tmp_path / "ledger.sqlite"
    first = lms_sync(env(sandbox, bucket), "run", url, "-m", MAPPING,
                     "--out", bucket.url("runs/first"), "--ledger", ledger)  # fmt: skip
    assert first.exit_code == 1, first.output
    dead = pq.read_table(io.BytesIO(bucket.get("runs/first/deadletter.parquet")))
    again = lms_sync(env(sandbox, bucket), "replay", bucket.url("runs/first"), "-m", MAPPING,
                     "--out", tmp_path / "replay", "--ledger", ledger)  # fmt: skip
    assert again.exit_code == 1, again.output
    report = json.loads((tmp_path / "replay" / "report.json").read_text())
    assert report["sources"] == [bucket.url("runs/first/deadletter.parquet")]
    assert report["rows_read"] == dead.num_rows == report["outcomes"]["invalid"]
    replayed = pq.read_table(tmp_path / "replay" / "deadletter.parquet")
    assert set(replayed.column("_dl_source_file").to_pylist()) == {url}
    rows = replayed.column("_dl_source_row").to_pylist()
    assert rows == dead.column("_dl_source_row").to_pylist()


def test_nightly_over_a_bucket_prefix_runs_each_new_object_once(
    make_sandbox: Callable[..., RunningSandbox], bucket: Store, tmp_path: Path
) -> None:
    """A landing prefix: the first night runs its exports, the second night nothing, a new
    object the night after; an empty prefix is a quiet night."""
    sandbox = make_sandbox(rate_limit=(100_000, 1.0))
    files = write_history(tmp_path / "history", 3, 12)
    for path in files[:2]:
        bucket.put(f"landing/{path.name}", path.read_bytes())
        time.sleep(0.05)  # object times order the night's files
    ledger = tmp_path / "ledger.sqlite"
    args = ["nightly", bucket.url("landing/"), "-m", MAPPING, "--ledger", ledger]

    first = lms_sync(env(sandbox, bucket), *args, "--out", tmp_path / "n1")
    assert first.exit_code in (0, 1), first.output
    assert len(list((tmp_path / "n1").glob("*/report.json"))) == 2
    posts = len(sandbox.request_log())
    again = lms_sync(env(sandbox, bucket), *args, "--out", tmp_path / "n2")
    assert again.exit_code == 0, again.output
    assert "already processed" in again.output and len(sandbox.request_log()) == posts
    bucket.put(f"landing/{files[2].name}", files[2].read_bytes())
    third = lms_sync(env(sandbox, bucket), *args, "--out", tmp_path / "n3")
    reports = [json.loads(p.read_text()) for p in (tmp_path / "n3").glob("*/report.json")]
    assert third.exit_code in (0, 1) and len(reports) == 1
    assert reports[0]["sources"] == [bucket.url(f"landing/{files[2].name}")]
    quiet = lms_sync(env(sandbox, bucket), "nightly", bucket.url("empty/"), "-m", MAPPING,
                     "--ledger", ledger)  # fmt: skip
    assert quiet.exit_code == 0, quiet.output


def test_a_parallel_backfill_of_a_bucket_writes_every_run_folder_to_the_bucket(
    make_sandbox: Callable[..., RunningSandbox], bucket: Store, tmp_path: Path
) -> None:
    """``backfill <bucket>/history/ --parallel 2 --out <bucket>/runs``: every file runs once,
    every row is sent once, each file's run folder lands under the bucket's runs prefix."""
    sandbox = make_sandbox(rate_limit=(100_000, 1.0))
    files = write_history(tmp_path / "history", 4, 10)
    for path in files:
        bucket.put(f"history/year=2023/{path.name}", path.read_bytes())
    result = lms_sync(
        env(sandbox, bucket), "backfill", bucket.url("history/"), "-m", MAPPING,
        "--parallel", "2", "--out", bucket.url("runs"), "--ledger", tmp_path / "l.sqlite",
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    reports = [k for k in bucket.keys("runs/") if k.endswith("/report.json")]
    assert len(reports) == len(files)
    delivered = sum(json.loads(bucket.get(k))["outcomes"]["delivered"] for k in reports)
    users = [e["path"].split("/")[4] for e in sandbox.request_log() if e["method"] == "POST"]
    assert len(users) == len(set(users)) == delivered
    assert all(os.path.basename(k) == "report.json" for k in reports)


def test_a_rerun_of_a_backfill_into_the_same_bucket_folder_keeps_the_first_runs(
    bucket: Store, tmp_path: Path
) -> None:
    """Two dry-run backfills with one ``--out`` in a bucket (a dry run marks nothing processed,
    so both run every file): the second run's folders get ``-2`` names, the first's stay."""
    files = write_history(tmp_path / "history", 2, 5)
    for path in files:
        bucket.put(f"history/{path.name}", path.read_bytes())
    args = ["backfill", bucket.url("history/"), "-m", MAPPING, "--dry-run",
            "--out", bucket.url("runs"), "--ledger", tmp_path / "l.sqlite"]  # fmt: skip
    environment = {**bucket.env, "STACKONE_ACCOUNT_ID": "acme", "PREFECT_API_URL": None}
    run_ids = []
    for _ in range(2):
        result = lms_sync(environment, *args)
        assert result.exit_code == 0, result.output
        run_ids.append({json.loads(bucket.get(k))["run_id"] for k in bucket.keys("runs/")
                        if k.endswith("/report.json")})  # fmt: skip
    stems = [path.stem for path in files]
    expected = {f"runs/{stem}{suffix}/report.json" for stem in stems for suffix in ("", "-2")}
    assert {k for k in bucket.keys("runs/") if k.endswith("/report.json")} == expected
    assert run_ids[0] < run_ids[1] and len(run_ids[1]) == 4  # the first run's reports are kept
