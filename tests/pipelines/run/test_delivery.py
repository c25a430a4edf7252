"""Delivering runs end to end against the sandbox over real HTTP, with a real SQLite ledger.

Each test generates an export in tmp_path, takes the dry run of the same input as the truth (its
payloads.jsonl is the valid set), delivers it with ``lms-sync run`` (in-process through CliRunner,
or ``deliver_run`` when a test needs to reach inside), and compares what the sandbox stored, what
the report says and what the ledger and dead-letter files hold (DESIGN §6-§8).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from typer.testing import CliRunner, Result

from pipelines.api.client import StackOneClient
from pipelines.cli.app import app
from pipelines.core.settings import load_settings
from pipelines.output.report import OUTCOMES, RunReport
from pipelines.run.chunks import Chunk, check_chunk
from pipelines.run.delivery import deliver_run
from pipelines.run.plan import RunPlan, load_mapping, plan_run
from pipelines.sandbox import RunningSandbox
from pipelines.state.ledger import Ledger
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY, max_requests_in_window
from transforms.validation import CheckedRows

LMS_SYNC = Path(sys.executable).with_name("lms-sync")  # the console script, for subprocess runs
FAST = (100_000, 1.0)  # a sandbox limit no test reaches unless it means to
MAPPING = """\
version: 1
source: {format: csv, delimiter: ",", timezone: UTC}
user: {column: user_id}
fields:
  learning_object_external_reference: {column: course}
  completed_at: {column: completed}
  time_spent: {column: minutes, unit: minutes}
  result: {column: status, map: {Passed: Pass, Failed: Fail}}
  score: {column: score}
  passthrough: {columns: [department]}
filters:
  - {column: status, in: [Passed, Failed]}
"""
# Backoff in milliseconds, so retried faults cost the tests little time; 12 attempts, so no row
# of a few hundred meets a fault every time (at a 25 % fault rate, 6 attempts would fail one in
# ~4000 rows as retries_exhausted).
RETRIES = {"LMS_SYNC_MAX_ATTEMPTS": "12"}
QUICK_RETRIES = {**RETRIES, "LMS_SYNC_BACKOFF_BASE": "0.01", "LMS_SYNC_BACKOFF_MAX": "0.05"}


# -- inputs -------------------------------------------------------------------------------------


def write_export(folder: Path, rows: int) -> tuple[Path, Path]:
    """An export of ``rows`` records and its mapping: mostly good rows, some of each bad kind.

    Every 50th row has an unreadable date (invalid), every 41st is In Progress (skipped), every
    97th repeats row 1 exactly (duplicate_in_file); every other row has its own user id.
    """
    folder.mkdir(parents=True, exist_ok=True)
    mapping = folder / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    export = folder / "export.csv"
    with export.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["user_id", "course", "completed", "minutes", "status", "score", "department"])
        for i in range(1, rows + 1):
            record = _good_record(1 if i % 97 == 0 else i)
            if i % 97 and i % 50 == 0:
                record[2] = "not a date"
            elif i % 97 and i % 41 == 0:
                record[4] = "In Progress"
            out.writerow(record)
    return export, mapping


def _good_record(i: int) -> list[str]:
    """Row ``i`` of the export as a valid record (its own user id)."""
    return [
        f"u{i:05d}",
        f"C-{i % 37:03d}",
        f"2024-03-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
        str(i % 300),
        "Failed" if i % 7 == 0 else "Passed",
        str(i % 101),
        f"dept-{i % 5}",
    ]


def cli_env(sandbox: RunningSandbox, **extra: str) -> dict[str, str | None]:
    """Environment for the CLI: the sandbox as target, nothing from the developer's shell."""
    return {
        **dict.fromkeys((name for name in os.environ if name.startswith("LMS_SYNC_")), None),
        "STACKONE_API_KEY": SANDBOX_KEY,
        "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
        "STACKONE_BASE_URL": sandbox.base_url,
        "PREFECT_API_URL": None,
        **extra,
    }


def child_env(sandbox: RunningSandbox) -> dict[str, str]:
    """Environment for an ``lms-sync`` subprocess: the sandbox as target, no stray settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LMS_SYNC_", "PREFECT_API", "STACKONE_"))
    }
    env.update(
        STACKONE_API_KEY=SANDBOX_KEY,
        STACKONE_ACCOUNT_ID=SANDBOX_ACCOUNT,
        STACKONE_BASE_URL=sandbox.base_url,
        LMS_SYNC_BUDGET_DIR=os.environ["LMS_SYNC_BUDGET_DIR"],  # the tests' rate budget files
    )
    return env


def lms_sync(*args: str | Path, env: dict[str, str | None]) -> Result:
    """``lms-sync ARGS`` in-process (CliRunner), with ``env`` on top of the test's environment."""
    return CliRunner().invoke(app, [str(arg) for arg in args], env=env)


def deliver_cli(
    sandbox: RunningSandbox,
    export: Path,
    mapping: Path,
    out: Path,
    ledger: Path,
    *,
    rate: str = "2000/1s",
    concurrency: int = 16,
    env: dict[str, str] | None = None,
) -> tuple[Result, dict[str, Any]]:
    """A delivering ``lms-sync run`` to the sandbox; its CLI result and report.json."""
    result = lms_sync(
        "run", export, "-m", mapping, "--out", out, "--ledger", ledger,
        "--rate-limit", rate, "--concurrency", str(concurrency), "--quiet",
        env=cli_env(sandbox, **(env or {})),
    )  # fmt: skip
    return result, read_report(out)


def parse_time(text: str) -> datetime:
    """A report timestamp (``…Z``) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_report(folder: Path) -> dict[str, Any]:
    """The run folder's report.json."""
    report: dict[str, Any] = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return report


def dry_run_truth(sandbox: RunningSandbox, export: Path, mapping: Path, out: Path) -> DryRun:
    """The dry run of the input (no ledger): the valid set and the dead-lettered rows."""
    result = lms_sync(
        "run", export, "-m", mapping, "--dry-run", "--out", out,
        "--ledger", out / "no-ledger.sqlite", "--quiet",
        env=cli_env(sandbox),
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    lines = (out / "payloads.jsonl").read_text(encoding="utf-8").splitlines()
    return DryRun([json.loads(line) for line in lines], read_report(out), deadletter(out))


class DryRun:
    """What the dry run says a delivering run must do."""

    def __init__(
        self, payloads: list[dict[str, Any]], report: dict[str, Any], dead: list[dict[str, Any]]
    ) -> None:
        self.payloads = payloads
        self.report = report
        self.dead = dead
        self.key_of_user = {p["user_id"]: p["key"] for p in payloads}
        assert len(self.key_of_user) == len(payloads), "the generator gives each row its own user"

    @property
    def valid(self) -> Counter[tuple[str, str]]:
        """Each valid row once, as (user id, canonical body)."""
        return Counter((p["user_id"], canonical(p["body"])) for p in self.payloads)

    @property
    def keys(self) -> set[str]:
        """The idempotency keys of the valid rows."""
        return {p["key"] for p in self.payloads}


def canonical(body: dict[str, Any]) -> str:
    """A body as comparable text (key order does not matter on the wire)."""
    return json.dumps(body, sort_keys=True)


def stored(sandbox: RunningSandbox) -> Counter[tuple[str, str]]:
    """What the sandbox stored, as (user id, canonical body) with how often."""
    return Counter((c["user_id"], canonical(c["body"])) for c in sandbox.completions())


def deadletter(folder: Path) -> list[dict[str, Any]]:
    """The rows of deadletter.parquet."""
    rows: list[dict[str, Any]] = pq.read_table(folder / "deadletter.parquet").to_pylist()
    return rows


def posted_users(log: Iterable[dict[str, Any]], **match: Any) -> list[str]:
    """User ids of the completion POSTs in a request log (optionally only matching entries)."""
    return [
        entry["path"].split("/")[4]
        for entry in log
        if entry["method"] == "POST" and all(entry.get(k) == v for k, v in match.items())
    ]


def settled_log(sandbox: RunningSandbox, quiet_for: float = 0.3) -> list[dict[str, Any]]:
    """The request log once no request has been logged for ``quiet_for`` s (slow ones landed)."""
    log = sandbox.request_log()
    while True:
        time.sleep(quiet_for)
        again = sandbox.request_log()
        if len(again) == len(log):
            return again
        log = again


def assert_balanced(report: dict[str, Any]) -> None:
    """Outcome counts add up to rows read; every outcome is listed."""
    assert set(report["outcomes"]) == set(OUTCOMES)
    assert sum(report["outcomes"].values()) == report["rows_read"]


def ledger_counts(path: Path, sandbox: RunningSandbox) -> dict[str, int]:
    """Keys per stored outcome in the ledger for the sandbox target."""
    with Ledger(path, sandbox.base_url) as ledger:
        return ledger.counts()


# -- 1. the delivered set is the valid set --------------------------------------------------------


def test_the_delivered_set_is_exactly_the_valid_set(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """Every valid row of the dry run is stored once with the same body, nothing else is; the
    dead-letter file holds exactly the invalid rows; the report adds up and counts requests."""
    sandbox = make_sandbox(rate_limit=FAST)
    export, mapping = write_export(tmp_path, 500)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")

    result, report = deliver_cli(sandbox, export, mapping, tmp_path / "run", tmp_path / "l.db")

    assert result.exit_code == 1, result.output  # invalid rows were dead-lettered
    assert stored(sandbox) == truth.valid
    assert_balanced(report)
    assert report["rows_read"] == truth.report["rows_read"] == 500
    dry = truth.report["outcomes"]
    assert report["outcomes"] == {
        **dry,
        "delivered": dry["would_send"],
        "would_send": 0,
    }
    assert report["reasons"] == truth.report["reasons"]
    assert report["aborted"] is None and report["in_doubt_keys"] == []
    dead = deadletter(tmp_path / "run")
    assert [(r["_dl_source_row"], r["_dl_error_code"], r["_dl_stage"]) for r in dead] == [
        (r["_dl_source_row"], r["_dl_error_code"], r["_dl_stage"]) for r in truth.dead
    ]
    assert [r["_dl_source_row"] for r in dead] == list(range(50, 501, 50))
    requests = report["requests"]
    assert requests["sent"] == dry["would_send"] == len(sandbox.request_log())
    assert requests["per_second"] > 0 and requests["status_429"] == requests["retries"] == 0
    assert ledger_counts(tmp_path / "l.db", sandbox)["delivered"] == dry["would_send"]
    assert (report["mode"], report["target"]) == ("deliver", sandbox.base_url)
    for name in ("report.json", "deadletter.csv", "deadletter.parquet"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o600, name


# -- 2. faults: nothing lost, nothing doubled -----------------------------------------------------


def check_fault_run(
    sandbox: RunningSandbox, truth: DryRun, report: dict[str, Any], result: Result
) -> list[dict[str, Any]]:
    """The invariants every faulty run keeps; returns the settled request log."""
    assert result.exit_code == 1, result.output  # only the invalid rows were dead-lettered
    assert_balanced(report)
    assert stored(sandbox) == truth.valid  # every valid row stored exactly once
    outcomes, reasons = report["outcomes"], report["reasons"]
    http_409 = reasons.get("http_409", 0)
    assert outcomes["failed"] == outcomes["pending"] == 0
    assert outcomes["delivered"] + http_409 == len(truth.payloads)
    log = settled_log(sandbox)
    # A 409 only ever answers a request for a row that an earlier request had stored.
    conflicts = posted_users(log, status=409)
    assert set(conflicts) <= set(posted_users(log, status=201))
    assert http_409 <= len(conflicts)
    # Every request the client started reached the sandbox's log, retries included.
    requests = report["requests"]
    assert requests["sent"] == len(log)
    assert requests["retries"] == requests["sent"] - len(truth.payloads)
    return log


def test_5xx_bursts_and_dropped_connections_lose_and_double_nothing(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """With a quarter of requests answered 500/502/503 or dropped, every row still arrives once."""
    faults = ("http_500", "http_502", "http_503", "drop")
    sandbox = make_sandbox(rate_limit=FAST, faults=faults, fault_rate=0.25, seed=11)
    export, mapping = write_export(tmp_path, 300)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")

    result, report = deliver_cli(
        sandbox, export, mapping, tmp_path / "run", tmp_path / "l.db", env=QUICK_RETRIES
    )

    log = check_fault_run(sandbox, truth, report, result)
    seen = Counter(entry["fault"] for entry in log)
    assert all(seen[kind] > 5 for kind in faults), seen
    assert report["requests"]["retries"] == sum(seen[kind] for kind in faults)
    assert report["reasons"].get("http_409", 0) == 0  # faults store nothing, so no 409
    assert report["outcomes"]["delivered"] == len(truth.payloads)


def test_slow_answers_past_the_read_timeout_are_retried_and_a_stored_one_is_a_409(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """A request the client gave up on may still be stored: its retry is then a 409 duplicate,
    never a second completion; rows whose retry won the race are delivered."""
    sandbox = make_sandbox(
        rate_limit=FAST, faults=("slow",), fault_rate=0.15, slow_seconds=0.6, seed=5
    )
    export, mapping = write_export(tmp_path, 250)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")

    result, report = deliver_cli(
        sandbox, export, mapping, tmp_path / "run", tmp_path / "l.db",
        env={**RETRIES, "LMS_SYNC_READ_TIMEOUT": "0.25", "LMS_SYNC_BACKOFF_BASE": "0.8",
             "LMS_SYNC_BACKOFF_MAX": "1"},
    )  # fmt: skip

    log = check_fault_run(sandbox, truth, report, result)
    slow = sum(1 for entry in log if entry["fault"] == "slow")
    assert slow > 20
    assert report["requests"]["retries"] >= slow  # each slow answer came after the timeout
    assert set(posted_users(log, fault="slow")) <= set(posted_users(log, fault=None))
    assert report["reasons"].get("http_409", 0) > 0  # some retries came after the slow store
    counts = ledger_counts(tmp_path / "l.db", sandbox)
    assert counts["delivered"] == report["outcomes"]["delivered"]
    assert counts["duplicate"] == report["reasons"]["http_409"]
    assert counts["in_flight"] == 0


def test_a_429_storm_pauses_the_run_and_every_row_arrives_once(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """The sandbox allows 40/s while the client asks for 400/s: 429s are waited out, counted,
    retried, and nothing is lost or doubled."""
    sandbox = make_sandbox(rate_limit=(40, 1.0))
    export, mapping = write_export(tmp_path, 100)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")

    result, report = deliver_cli(
        sandbox, export, mapping, tmp_path / "run", tmp_path / "l.db", rate="400/1s"
    )

    log = check_fault_run(sandbox, truth, report, result)
    refused = sum(1 for entry in log if entry["status"] == 429)
    assert refused > 0
    assert report["requests"]["status_429"] == refused == report["requests"]["retries"]
    assert max_requests_in_window(log, 1.0, exclude_statuses={429}) <= 40


# -- 3. a refused key stops the run; a refused account fails its rows ----------------------------


def test_a_bad_key_aborts_and_an_unknown_account_fails_its_rows_then_both_are_resent(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """A 401 (key) exits 3 with every valid row pending; a 403 (the run's one account) exits 1
    with every valid row failed http_403 (stage deliver), both after at most ``concurrency``
    requests; the ledger keeps nothing in flight or given up, and a later good run sends all."""
    sandbox = make_sandbox(rate_limit=FAST, latency=(20.0, 40.0))
    export, mapping = write_export(tmp_path, 300)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")
    ledger = tmp_path / "l.db"
    for run, refused in (("bad-key", {"STACKONE_API_KEY": "wrong-key"}),
                         ("bad-account", {"STACKONE_ACCOUNT_ID": "acct-unknown"})):  # fmt: skip
        before = len(sandbox.request_log())
        result, report = deliver_cli(
            sandbox, export, mapping, tmp_path / run, ledger, concurrency=4, env=refused
        )
        sent = sandbox.request_log()[before:]
        assert 1 <= len(sent) <= 4 and report["requests"]["sent"] == len(sent)
        assert {entry["status"] for entry in sent} == {401 if run == "bad-key" else 403}
        assert_balanced(report)
        assert report["outcomes"]["delivered"] == 0
        stages = Counter(r["_dl_stage"] for r in deadletter(tmp_path / run))
        if run == "bad-key":
            assert result.exit_code == 3, result.output
            assert report["aborted"] and "HTTP 401" in report["aborted"]
            assert report["outcomes"]["pending"] == len(truth.payloads)
            assert report["outcomes"]["failed"] == 0
            assert set(stages) == {"validate"}
        else:
            assert result.exit_code == 1, result.output
            assert report["aborted"] is None
            assert report["outcomes"]["failed"] == len(truth.payloads)
            assert report["reasons"]["http_403"] == len(truth.payloads)
            assert report["outcomes"]["pending"] == 0
            assert stages["deliver"] == len(truth.payloads)
        assert "wrong-key" not in (tmp_path / run / "report.json").read_text()
        counts = ledger_counts(ledger, sandbox)
        assert counts["in_flight"] == counts["gave_up"] == 0
    assert stored(sandbox) == Counter()

    result, report = deliver_cli(sandbox, export, mapping, tmp_path / "good", ledger)
    assert result.exit_code == 1, result.output
    assert report["outcomes"]["delivered"] == len(truth.payloads)
    assert report["in_doubt_keys"] == []  # the refused rows were never in doubt
    assert stored(sandbox) == truth.valid


# -- 4. a rerun sends nothing --------------------------------------------------------------------


def test_a_rerun_sends_nothing_and_counts_every_row_already_delivered(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """The second run of the same input makes no request: its valid rows are already_delivered."""
    sandbox = make_sandbox(rate_limit=FAST)
    export, mapping = write_export(tmp_path, 400)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")
    ledger = tmp_path / "l.db"
    deliver_cli(sandbox, export, mapping, tmp_path / "first", ledger)
    requests_before = len(sandbox.request_log())

    result, report = deliver_cli(sandbox, export, mapping, tmp_path / "again", ledger)

    assert result.exit_code == 1, result.output  # the same invalid rows, dead-lettered again
    assert len(sandbox.request_log()) == requests_before
    assert report["requests"]["sent"] == 0
    assert_balanced(report)
    assert report["outcomes"]["delivered"] == 0
    assert report["reasons"]["already_delivered"] == len(truth.payloads)
    assert report["outcomes"]["duplicate"] == len(truth.payloads) + report["reasons"].get(
        "duplicate_in_file", 0
    )
    assert report["in_doubt_keys"] == report["changed_after_delivery"] == []
    assert stored(sandbox) == truth.valid


def test_a_rerun_with_changed_bodies_sends_nothing_and_lists_the_changed_keys(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """Rows delivered before whose score changed since (same key, new body) are not sent again
    (the API only creates): duplicate changed_after_delivery, each key listed in the report."""
    sandbox = make_sandbox(rate_limit=FAST)
    export, mapping = write_export(tmp_path, 200)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")
    ledger = tmp_path / "l.db"
    deliver_cli(sandbox, export, mapping, tmp_path / "first", ledger)
    changed = {f"u{i:05d}" for i in range(2, 12)}
    with export.open(newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    with export.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(
            [*r[:5], "55", r[6]] if r[0] in changed else r for r in records
        )
    requests_before = len(sandbox.request_log())

    result, report = deliver_cli(sandbox, export, mapping, tmp_path / "again", ledger)

    assert result.exit_code == 1, result.output
    assert len(sandbox.request_log()) == requests_before
    assert_balanced(report)
    assert report["reasons"]["changed_after_delivery"] == len(changed)
    assert report["reasons"]["already_delivered"] == len(truth.payloads) - len(changed)
    assert sorted(report["changed_after_delivery"]) == sorted(truth.key_of_user[u] for u in changed)
    assert stored(sandbox) == truth.valid


# -- 5. rejected rows: dead-lettered, then given up ------------------------------------------------


def corrupt_every_30th(chunk: Chunk, plan: RunPlan, now: datetime) -> CheckedRows:
    """``check_chunk``, then every 30th source row's body gets a date the API refuses (422)."""
    checked = check_chunk(chunk, plan, now)
    bad = pa.array([row % 30 == 0 for row in chunk.batch.rows.to_pylist()], pa.bool_())
    refused = pa.scalar('{"learning_object_external_reference":"X","completed_at":"2024-03-01"}')
    body = pc.if_else(pc.and_(bad, pc.is_valid(checked.body)), refused, checked.body)
    return replace(checked, body=body)


def deliver_in_process(
    sandbox: RunningSandbox, export: Path, mapping: Path, out: Path, ledger_path: Path
) -> RunReport:
    """``deliver_run`` with the 422-provoking check above (the CLI has no such seam)."""
    settings = load_settings(
        base_url=sandbox.base_url, api_key=SANDBOX_KEY, account_id=SANDBOX_ACCOUNT,
        rate_limit="2000/1s", concurrency=8,
    )  # fmt: skip
    plan = plan_run([str(export)], load_mapping(mapping, {}), settings.account_id)

    async def run() -> RunReport:
        with Ledger(ledger_path, settings.target) as ledger:
            async with StackOneClient.from_settings(settings) as client:
                return await deliver_run(
                    plan, client, ledger, out=out, target=settings.target, check=corrupt_every_30th
                )

    return asyncio.run(run())


def test_rejected_rows_are_dead_lettered_with_the_servers_reason_and_given_up_after_3_runs(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """404 (unknown user) and 422 (body refused) rows go to the dead-letter file at stage
    deliver with the server's message and status; later runs retry them until they have failed
    in 3 runs, then the 4th run sends nothing and lists them gave_up."""
    known = [{"id": f"u{i:05d}"} for i in range(1, 301) if i % 11]
    sandbox = make_sandbox(rate_limit=FAST, users=known)
    export, mapping = write_export(tmp_path, 300)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")
    rows = {int(p["source_row"]): p for p in truth.payloads}
    unprocessable = {row for row in rows if row % 30 == 0}
    unknown = {row for row in rows if row % 11 == 0} - unprocessable
    refused = unknown | unprocessable
    ledger = tmp_path / "l.db"

    for run in (1, 2, 3):
        before = len(sandbox.request_log())
        report = deliver_in_process(sandbox, export, mapping, tmp_path / f"run{run}", ledger)
        summary = report.as_dict()
        assert_balanced(summary)
        sent = sandbox.request_log()[before:]
        expected_codes = {"http_404": len(unknown), "http_422": len(unprocessable)}
        assert {k: summary["reasons"].get(k) for k in expected_codes} == expected_codes
        assert summary["outcomes"]["failed"] == len(refused)
        dead = [r for r in deadletter(tmp_path / f"run{run}") if r["_dl_stage"] == "deliver"]
        assert sorted(r["_dl_source_row"] for r in dead) == sorted(refused)
        for r in dead:
            user = rows[r["_dl_source_row"]]["user_id"]
            assert r["user_id"] == user  # the source's own columns are kept
            assert r["_dl_attempts"] == 1
            if r["_dl_source_row"] in unprocessable:
                assert (r["_dl_http_status"], r["_dl_error_code"]) == (422, "http_422")
                assert r["_dl_error_message"].startswith("completed_at: must be a UTC instant")
            else:
                assert (r["_dl_http_status"], r["_dl_error_code"]) == (404, "http_404")
                assert r["_dl_error_message"] == f"User '{user}' not found"
            assert json.loads(r["_dl_errors"])[0]["code"] == r["_dl_error_code"]
        if run == 1:
            assert summary["outcomes"]["delivered"] == len(rows) - len(refused)
        else:  # only the refused rows are tried again
            assert sorted(posted_users(sent)) == sorted(rows[row]["user_id"] for row in refused)

    before = len(sandbox.request_log())
    report = deliver_in_process(sandbox, export, mapping, tmp_path / "run4", ledger)
    summary = report.as_dict()
    assert len(sandbox.request_log()) == before
    assert summary["reasons"]["gave_up"] == summary["outcomes"]["failed"] == len(refused)
    dead = [r for r in deadletter(tmp_path / "run4") if r["_dl_stage"] == "deliver"]
    assert sorted(r["_dl_source_row"] for r in dead) == sorted(refused)
    assert {r["_dl_error_code"] for r in dead} == {"gave_up"}
    assert ledger_counts(ledger, sandbox)["gave_up"] == len(refused)
    assert stored(sandbox) == Counter(
        {k: v for k, v in truth.valid.items() if k[0] not in {rows[r]["user_id"] for r in refused}}
    )


# -- 8. the rate limit, seen from the server ------------------------------------------------------


def test_no_window_of_s_seconds_holds_more_than_n_requests(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """``lms-sync run --rate-limit 50/1s`` with 16 workers: the sandbox never sees more than 50
    requests in any 1-second window, and the limit is used (three windows' worth take about two
    seconds). The client runs as its own process, as in production: sharing this process's GIL
    with the sandbox would delay the sandbox's arrival stamps by varying amounts."""
    sandbox = make_sandbox(rate_limit=FAST)
    export, mapping = write_export(tmp_path, 130)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")

    child = subprocess.run(
        [LMS_SYNC, "run", export, "-m", mapping, "--out", tmp_path / "run",
         "--ledger", tmp_path / "l.db", "--rate-limit", "50/1s", "--concurrency", "16", "--quiet"],
        env=child_env(sandbox), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert child.returncode == 1, child.stderr
    report = read_report(tmp_path / "run")
    log = sandbox.request_log()
    assert len(log) == len(truth.payloads) > 100
    assert max_requests_in_window(log, 1.0) <= 50
    times = sorted(entry["time"] for entry in log)
    assert 2.0 <= times[-1] - times[0] < 4.0
    seconds = (parse_time(report["finished_at"]) - parse_time(report["started_at"])).total_seconds()
    assert abs(report["requests"]["per_second"] - len(log) / seconds) < 2


# -- retries exhausted, unreachable, waiting for the lock -----------------------------------------


def test_rows_whose_retries_run_out_are_failed_with_their_attempts_and_retried_next_run(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """Every answer a 503: each row fails retries_exhausted after its attempts, is dead-lettered
    with status and attempts, and (a transient failure) is sent again by the next run."""
    sandbox = make_sandbox(rate_limit=FAST, faults=("http_503",), fault_rate=1.0)
    export, mapping = write_export(tmp_path, 60)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")
    ledger = tmp_path / "l.db"
    env = {**QUICK_RETRIES, "LMS_SYNC_MAX_ATTEMPTS": "2"}

    for run in ("first", "second"):
        before = len(sandbox.request_log())
        result, report = deliver_cli(sandbox, export, mapping, tmp_path / run, ledger, env=env)
        assert result.exit_code == 1, result.output
        assert report["aborted"] is None
        assert_balanced(report)
        assert report["outcomes"]["failed"] == report["reasons"]["retries_exhausted"]
        assert report["outcomes"]["failed"] == len(truth.payloads)
        assert len(sandbox.request_log()) - before == 2 * len(truth.payloads)
        assert report["requests"]["retries"] == len(truth.payloads)
        dead = [r for r in deadletter(tmp_path / run) if r["_dl_stage"] == "deliver"]
        assert len(dead) == len(truth.payloads)
        assert {(r["_dl_error_code"], r["_dl_http_status"], r["_dl_attempts"]) for r in dead} == {
            ("retries_exhausted", 503, 2)
        }
    assert ledger_counts(ledger, sandbox)["failed"] == len(truth.payloads)
    assert stored(sandbox) == Counter()


def test_an_unreachable_api_aborts_and_only_rows_sent_without_an_answer_stay_in_doubt(
    make_sandbox: Callable[..., RunningSandbox], tmp_path: Path
) -> None:
    """Every connection dropped: the run aborts (exit 3) once rows keep getting no answer; rows
    that were sent end failed or in doubt (in flight in the ledger), rows never sent are pending
    and unmarked, so the next run lists as in doubt only what may have reached the API."""
    sandbox = make_sandbox(rate_limit=FAST, faults=("drop",), fault_rate=1.0)
    export, mapping = write_export(tmp_path, 120)
    truth = dry_run_truth(sandbox, export, mapping, tmp_path / "dry")
    ledger = tmp_path / "l.db"

    result, report = deliver_cli(
        sandbox, export, mapping, tmp_path / "run", ledger, concurrency=4,
        env={**QUICK_RETRIES, "LMS_SYNC_MAX_ATTEMPTS": "2"},
    )  # fmt: skip

    assert result.exit_code == 3, result.output
    assert "unreachable" in report["aborted"]
    assert_balanced(report)
    failed = report["outcomes"]["failed"]
    assert failed == report["reasons"]["retries_exhausted"] >= 1
    assert report["outcomes"]["pending"] == len(truth.payloads) - failed
    sent = {truth.key_of_user[user] for user in posted_users(settled_log(sandbox))}
    with Ledger(ledger, sandbox.base_url) as state:
        doubt = set(state.in_doubt())
        failed_keys = {k for k in truth.keys if (state.lookup(k) or {}).get("outcome") == "failed"}
    assert len(failed_keys) == failed
    assert doubt and not doubt & failed_keys
    assert doubt | failed_keys == sent  # in doubt: exactly the rows sent without a result
    dead = [r for r in deadletter(tmp_path / "run") if r["_dl_stage"] == "deliver"]
    assert {(r["_dl_error_code"], r["_dl_http_status"], r["_dl_attempts"]) for r in dead} == {
        ("retries_exhausted", None, 2)
    }
