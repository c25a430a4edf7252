"""One export, many accounts (issue 14), against the session's many-accounts sandbox over HTTP.

The key reaches ``TENANT_ACCOUNTS`` only: a 403 for another account fails that account's rows
(``http_403``, stage deliver, the server's message) while the other accounts are delivered under
one rate limit; a 401 still aborts the run; ``--check-remote`` names the unreachable account first.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.core.outcomes import OUTCOMES
from pipelines.orchestration.artifacts import summary_markdown
from pipelines.output.account_counts import AccountCounts
from pipelines.output.report import RunReport
from pipelines.sandbox import ACCOUNT_REFUSED, RunningSandbox
from pipelines.state.ledger import Ledger
from tests.conftest import TENANTS_RATE_LIMIT, max_requests_in_window
from tests.pipelines.run.test_delivery import canonical, cli_env, deadletter, lms_sync, read_report

ROWS = 240
UNREACHABLE = "tenant-x"  # an account the key cannot reach
UNREACHABLE_ROW, BLANK_ROW = 7, 100  # 1-based record numbers of the two odd rows
# The client's limit: 5/6 of the key's (the sandbox's), a margin for the time between a request
# leaving the client and the server counting it on a busy machine; a limiter per account would
# still let two accounts send 100 a second, well over the key's 60.
RATE = f"{TENANTS_RATE_LIMIT[0] * 5 // 6}/{TENANTS_RATE_LIMIT[1]:g}s"
MAPPING = """\
version: 1
source: {format: csv, delimiter: ",", timezone: UTC}
account: {column: tenant}
user: {column: user_id}
fields:
  learning_object_external_reference: {column: course}
  completed_at: {column: completed}
  result: {column: status, map: {Passed: Pass, Failed: Fail}}
"""
ONE_ACCOUNT_MAPPING = MAPPING.replace("account: {column: tenant}\n", "")


def tenant_of(i: int) -> str:
    """The account of record ``i``: tenants a and b by turns, one unreachable, one blank."""
    if i == UNREACHABLE_ROW:
        return UNREACHABLE
    if i == BLANK_ROW:
        return "  "
    return "tenant-a" if i % 2 else "tenant-b"


def write_tenants_export(folder: Path, mapping_text: str = MAPPING) -> tuple[Path, Path]:
    """The 240-row, three-tenant export (each row its own user) and its mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    mapping = folder / "mapping.yaml"
    mapping.write_text(mapping_text, encoding="utf-8")
    export = folder / "tenants.csv"
    with export.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["tenant", "user_id", "course", "completed", "status"])
        for i in range(1, ROWS + 1):
            completed = f"2024-04-{1 + i % 28:02d}T09:{i % 60:02d}:00Z"
            status = "Failed" if i % 9 == 0 else "Passed"
            out.writerow([tenant_of(i), f"u{i:04d}", f"C-{i % 13:02d}", completed, status])
    return export, mapping


def run_cli(
    sandbox: RunningSandbox, *args: str | Path, env: dict[str, str] | None = None
) -> tuple[Any, dict[str, Any]]:
    """``lms-sync ARGS`` against the sandbox (``--out`` must be among them): result, report."""
    result = lms_sync(*args, env=cli_env(sandbox, **(env or {})))
    out = Path(args[list(args).index("--out") + 1])
    return result, read_report(out)


def deliver(
    sandbox: RunningSandbox, export: Path, mapping: Path, out: Path, ledger: Path, **env: str
) -> tuple[Any, dict[str, Any]]:
    """A delivering run at ``RATE``, 8 workers, summary printed."""
    return run_cli(
        sandbox, "run", export, "-m", mapping, "--out", out, "--ledger", ledger,
        "--rate-limit", RATE, "--concurrency", "8", env=env,
    )  # fmt: skip


def dry_payloads(sandbox: RunningSandbox, export: Path, mapping: Path, out: Path) -> list[Any]:
    """The dry run's payload lines: every valid row with its account, user, body and key."""
    result, _ = run_cli(
        sandbox, "run", export, "-m", mapping, "--dry-run", "--out", out,
        "--ledger", out / "none.sqlite", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # the blank account is invalid
    lines = (out / "payloads.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def stored_by_account(sandbox: RunningSandbox) -> Counter[tuple[str, str, str]]:
    """What the sandbox stored, as (account, user, canonical body) with how often."""
    return Counter(
        (c["account_id"], c["user_id"], canonical(c["body"])) for c in sandbox.completions()
    )


def assert_accounts_add_up(report: dict[str, Any]) -> None:
    """Each account's outcomes add up to its rows read, and the accounts to the run's."""
    accounts = report["accounts"]
    for counts in accounts.values():
        assert sum(counts[name] for name in OUTCOMES) == counts["rows_read"]
    assert sum(counts["rows_read"] for counts in accounts.values()) == report["rows_read"]
    for name in OUTCOMES:
        assert sum(counts[name] for counts in accounts.values()) == report["outcomes"][name]


@pytest.fixture
def reachable_later(tenants_sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    """The tenants sandbox; ``UNREACHABLE`` may be made reachable in the test, undone after."""
    yield tenants_sandbox
    tenants_sandbox.config.account_ids.discard(UNREACHABLE)


def test_a_refused_account_fails_alone_and_the_others_are_delivered_under_one_limit(
    reachable_later: RunningSandbox, tmp_path: Path
) -> None:
    """240 rows, three tenants: both reachable accounts delivered into their own account, the
    unreachable one's row http_403 (stage deliver, the server's message), the blank account
    invalid_account, exit 1; one rate limit held across all accounts; a replay once the account
    is fixed delivers that row."""
    sandbox = reachable_later
    export, mapping = write_tenants_export(tmp_path)
    payloads = dry_payloads(sandbox, export, mapping, tmp_path / "dry")
    ledger = tmp_path / "ledger.sqlite"

    result, report = deliver(sandbox, export, mapping, tmp_path / "run", ledger)

    assert result.exit_code == 1, result.output
    good = [p for p in payloads if p["account_id"] != UNREACHABLE]
    assert stored_by_account(sandbox) == Counter(
        (p["account_id"], p["user_id"], canonical(p["body"])) for p in good
    )
    assert {p["account_id"] for p in good} == {"tenant-a", "tenant-b"}
    assert report["aborted"] is None and report["status"] == "finished"
    assert report["outcomes"] == {
        **dict.fromkeys(OUTCOMES, 0), "delivered": len(good), "failed": 1, "invalid": 1,
    }  # fmt: skip
    assert report["reasons"] == {"http_403": 1, "invalid_account": 1}
    assert report["refused_accounts"] == {UNREACHABLE: ACCOUNT_REFUSED}
    assert report["accounts"][UNREACHABLE] == {
        **dict.fromkeys(OUTCOMES, 0), "rows_read": 1, "failed": 1,
    }  # fmt: skip
    assert report["accounts"][""]["invalid"] == 1
    assert report["accounts"]["tenant-a"]["delivered"] == ROWS // 2 - 1  # rows 7 and 100 aside
    assert_accounts_add_up(report)

    dead = {row["_dl_source_row"]: row for row in deadletter(tmp_path / "run")}
    assert sorted(dead) == [UNREACHABLE_ROW, BLANK_ROW]
    refused = dead[UNREACHABLE_ROW]
    assert (refused["_dl_error_code"], refused["_dl_stage"], refused["_dl_http_status"]) == (
        "http_403",
        "deliver",
        403,
    )
    assert refused["_dl_error_message"] == ACCOUNT_REFUSED
    assert (dead[BLANK_ROW]["_dl_error_code"], dead[BLANK_ROW]["_dl_stage"]) == (
        "invalid_account",
        "validate",
    )

    log = sandbox.request_log()
    assert [e["status"] for e in log if e["account"] == UNREACHABLE] == [403]
    assert not [e for e in log if e["status"] == 429]
    assert max_requests_in_window(log, TENANTS_RATE_LIMIT[1]) <= TENANTS_RATE_LIMIT[0]
    assert {e["account"] for e in log} == {"tenant-a", "tenant-b", UNREACHABLE}

    (key,) = [p["key"] for p in payloads if p["account_id"] == UNREACHABLE]
    with Ledger(ledger, sandbox.base_url) as opened:
        record = opened.lookup(key)
        assert opened.counts()["in_flight"] == opened.counts()["gave_up"] == 0
    assert record is not None
    assert (record["outcome"], record["http_status"], record["failed_runs"]) == ("failed", 403, 0)

    assert "tenant-a" in result.stderr and f"account '{UNREACHABLE}' refused" in result.stderr

    sandbox.config.account_ids.add(UNREACHABLE)  # the account is fixed: a replay sends the row
    replay, again = run_cli(
        sandbox, "replay", tmp_path / "run" / "deadletter.parquet", "-m", mapping,
        "--out", tmp_path / "replay", "--ledger", ledger, "--rate-limit", RATE, "--quiet",
    )  # fmt: skip
    assert replay.exit_code == 1, replay.output  # the blank account is still invalid
    assert again["outcomes"]["delivered"] == 1 and again["outcomes"]["invalid"] == 1
    assert sum(1 for c in sandbox.completions() if c["account_id"] == UNREACHABLE) == 1


def test_a_run_whose_only_account_is_refused_stops_sending_and_dead_letters_its_rows(
    tenants_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """One account for the whole run, answered 403: at most ``concurrency`` requests, then none;
    every valid row failed http_403 and dead-lettered (exit 1), none pending or in flight, and
    the keys stay retryable (failed, no failed run counted)."""
    sandbox = tenants_sandbox
    export, mapping = write_tenants_export(tmp_path, ONE_ACCOUNT_MAPPING)
    ledger = tmp_path / "ledger.sqlite"

    result, report = deliver(
        sandbox, export, mapping, tmp_path / "run", ledger, STACKONE_ACCOUNT_ID=UNREACHABLE
    )

    assert result.exit_code == 1, result.output
    log = sandbox.request_log()
    assert 1 <= len(log) <= 8 and {e["status"] for e in log} == {403}
    assert report["requests"]["sent"] == len(log)
    assert report["outcomes"] == {**dict.fromkeys(OUTCOMES, 0), "failed": ROWS}
    assert report["reasons"] == {"http_403": ROWS}
    assert "accounts" not in report  # one account for the file: no per-account counts
    dead = deadletter(tmp_path / "run")
    assert len(dead) == ROWS
    assert {(r["_dl_error_code"], r["_dl_stage"], r["_dl_error_message"]) for r in dead} == {
        ("http_403", "deliver", ACCOUNT_REFUSED)
    }
    assert sandbox.completions() == []
    with Ledger(ledger, sandbox.base_url) as opened:
        counts = opened.counts()
    assert counts["failed"] == ROWS and counts["in_flight"] == counts["gave_up"] == 0


def test_a_refused_key_still_aborts_a_many_accounts_run(
    tenants_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A 401 names no account: the run stops (exit 3), the valid rows stay pending."""
    sandbox = tenants_sandbox
    export, mapping = write_tenants_export(tmp_path)
    result, report = deliver(
        sandbox, export, mapping, tmp_path / "run", tmp_path / "l.db", STACKONE_API_KEY="wrong"
    )
    assert result.exit_code == 3, result.output
    assert report["aborted"] and "HTTP 401" in report["aborted"]
    assert report["outcomes"]["pending"] == ROWS - 1 and report["outcomes"]["invalid"] == 1
    assert report["outcomes"]["failed"] == report["outcomes"]["delivered"] == 0
    assert "refused_accounts" not in report
    assert_accounts_add_up(report)
    assert {e["status"] for e in sandbox.request_log()} == {401}


def test_a_refused_account_met_while_looking_users_up_fails_its_rows_alone(
    tenants_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """With ``resolve_by: email`` the 403 comes from the user lookup: that account's rows fail
    http_403 (never posted), the other account's rows go on (here: no such users), exit 1."""
    sandbox = tenants_sandbox
    mapping_text = MAPPING.replace(
        "user: {column: user_id}", "user: {column: email, resolve_by: email}"
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(mapping_text, encoding="utf-8")
    export = tmp_path / "emails.csv"
    export.write_text(
        "tenant,email,course,completed,status\n"
        + "".join(
            f"{tenant},p{i}@example.com,C-1,2024-04-0{i}T09:00:00Z,Passed\n"
            for i, tenant in enumerate(["tenant-a", UNREACHABLE, UNREACHABLE, "tenant-a"], 1)
        ),
        encoding="utf-8",
    )
    result, report = deliver(sandbox, export, mapping, tmp_path / "run", tmp_path / "l.db")
    assert result.exit_code == 1, result.output
    assert report["reasons"] == {"http_403": 2, "user_not_found": 2}
    assert report["refused_accounts"] == {UNREACHABLE: ACCOUNT_REFUSED}
    assert_accounts_add_up(report)
    log = sandbox.request_log()
    assert [(e["method"], e["status"]) for e in log if e["account"] == UNREACHABLE] == [
        ("GET", 403)
    ]


def test_check_remote_names_the_accounts_the_key_cannot_reach(
    tenants_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A --check-remote dry run looks each distinct account up once (one users page, one user
    long), names the unreachable one with the server's message, and sends nothing."""
    sandbox = tenants_sandbox
    export, mapping = write_tenants_export(tmp_path)
    result, report = run_cli(
        sandbox, "run", export, "-m", mapping, "--dry-run", "--check-remote",
        "--out", tmp_path / "dry", "--ledger", tmp_path / "none.sqlite",
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # the blank account is invalid
    remote = report["remote_check"]
    assert remote["unreachable_accounts"] == {UNREACHABLE: ACCOUNT_REFUSED}
    assert remote["accounts_checked"] == 3
    assert f"account '{UNREACHABLE}' is not reachable" in result.stderr
    log = sandbox.request_log()
    assert {e["method"] for e in log} == {"GET"}
    # tenant-x: its one look-up; the others: their look-up, then their user list (one page)
    assert Counter((e["account"], e["path"]) for e in log) == {
        (UNREACHABLE, "/unified/lms/users"): 1,
        ("tenant-a", "/unified/lms/users"): 2,
        ("tenant-b", "/unified/lms/users"): 2,
    }
    assert report["accounts"][UNREACHABLE]["would_send"] == 1
    assert report["outcomes"]["would_send"] == ROWS - 1
    assert_accounts_add_up(report)


def test_the_run_summary_artifact_shows_rows_per_account() -> None:
    """The Prefect run-summary markdown has a row per account and names a refused account."""
    from datetime import UTC, datetime

    from pipelines.core.outcomes import RunMode

    report = RunReport("r1", RunMode.DELIVER, "http://x", ["a.csv"], datetime.now(UTC))
    report.accounts = AccountCounts()
    report.read(3, ["tenant-a", "tenant-a", UNREACHABLE])
    report.add("delivered", 2, accounts="tenant-a")
    report.add("failed", 1, "http_403", [UNREACHABLE])
    report.refused_accounts = {UNREACHABLE: ACCOUNT_REFUSED}
    markdown = summary_markdown(report)
    assert "| account | rows read | delivered | failed |" in markdown
    assert "| tenant-a | 2 | 2 | 0 |" in markdown
    assert f"| {UNREACHABLE} (403) | 1 | 0 | 1 |" in markdown
    assert f"Account `{UNREACHABLE}` refused (HTTP 403):** {ACCOUNT_REFUSED}" in markdown
