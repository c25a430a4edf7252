"""Keys in doubt are reconciled at the API before anything is resent (DESIGN §7, issue 8): killed
runs against a sandbox that stores exact repeats leave every row stored exactly once, and each
outcome of a reconciliation (found, not found, unverifiable, ``--resend-in-doubt``) in a rerun."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.sandbox import RunningSandbox
from pipelines.state.ledger import Ledger
from tests.pipelines.run.kill_scenario import KillScenario, accepted, after_kill, listings
from tests.pipelines.run.test_delivery import (
    FAST,
    LMS_SYNC,
    assert_balanced,
    cli_env,
    deliver_cli,
    dry_run_truth,
    ledger_counts,
    lms_sync,
    posted_users,
    read_report,
    settled_log,
    stored,
    write_export,
)
from tests.pipelines.run.test_delivery_signals import SLOW, Child, start_delivery, wait_for

MakeSandbox = Callable[..., RunningSandbox]
# Latency with a spread (median, p99 ms): answers land one by one, so a kill at a count of
# accepted requests lands while the next ones are still in flight.
SPREAD = (150.0, 1000.0)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Children started by a test; any still running at teardown are killed."""
    started: list[Child] = []
    yield started
    for child in started:
        child.stop()


@pytest.mark.slow
def test_killed_runs_against_a_repeat_storing_api_store_every_row_exactly_once(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """SIGKILL after the API accepted 1 and 37 completions, once during the next run's
    reconciliation, and after n-1 accepted: each kill leaves keys in doubt, and after a final run every valid row is stored exactly once
    (the sandbox stores repeats: no 409 safety net)."""
    sandbox = make_sandbox(rate_limit=FAST, latency=SPREAD, store_repeats=True)
    truth = dry_run_truth(sandbox, *write_export(tmp_path / "truth", 300), tmp_path / "dry")
    n = len(truth.payloads)
    scenario = KillScenario(sandbox, tmp_path / "runs", LMS_SYNC, rows=300)

    phases = [scenario.kill_after_accepted(1), scenario.kill_after_accepted(37)]
    gets_before = listings(sandbox.request_log())
    phases.append(scenario.kill_in_reconciliation())  # dozens in doubt: listings take a while
    assert listings(sandbox.request_log()) > gets_before
    phases.append(scenario.kill_after_accepted(n - 1))
    for phase in phases:
        assert phase.killed, f"the run ended before the kill {phase.kill}"
        assert phase.in_flight > 0, f"the kill {phase.kill} left no key in doubt"
        assert phase.duplicates == 0, phase
    assert scenario.finish() == 1  # the export's invalid rows

    assert stored(sandbox) == truth.valid  # every valid row, each exactly once
    assert accepted(sandbox.request_log()) == n  # not one repeat was even sent
    assert ledger_counts(scenario.ledger, sandbox)["in_flight"] == 0


def _killed_with_doubts(
    sandbox: RunningSandbox, tmp_path: Path, children: list[Child]
) -> tuple[Any, Path, Path, Path, set[str], set[str]]:
    """A delivery killed mid-way; (truth, export, mapping, ledger, keys in doubt, keys stored)."""
    child, truth, export, mapping, ledger = start_delivery(children, sandbox, tmp_path, 200, 8)
    wait_for(lambda: len(sandbox.completions()) >= 30, child)
    child.signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    after_kill()  # its claims expire
    settled_log(sandbox)
    with Ledger(ledger, sandbox.base_url) as state:
        doubt = set(state.in_doubt())
    stored_keys = {truth.key_of_user[user] for user, _ in stored(sandbox)}
    assert doubt & stored_keys and doubt - stored_keys, "the kill should leave both kinds"
    return truth, export, mapping, ledger, doubt, stored_keys


@pytest.mark.slow
def test_a_rerun_records_found_keys_as_reconciled_and_sends_the_rest(
    make_sandbox: MakeSandbox, tmp_path: Path, children: list[Child]
) -> None:
    """Found at the API: delivered (``reconciled``), its unified id kept in the ledger, not sent;
    not found: sent once; each user with keys in doubt is listed once."""
    sandbox = make_sandbox(rate_limit=FAST, latency=SLOW, store_repeats=True)
    truth, export, mapping, ledger, doubt, stored_keys = _killed_with_doubts(
        sandbox, tmp_path, children
    )
    ids = {truth.key_of_user[c["user_id"]]: c["id"] for c in sandbox.completions()}
    log_before = len(sandbox.request_log())

    result, report = deliver_cli(sandbox, export, mapping, tmp_path / "rerun", ledger)

    assert result.exit_code == 1, result.output
    assert_balanced(report)
    rerun_log = sandbox.request_log()[log_before:]
    found = doubt & stored_keys
    assert report["reasons"]["reconciled"] == len(found)
    sent = {truth.key_of_user[user] for user in posted_users(rerun_log)}
    assert not sent & stored_keys and doubt - stored_keys <= sent
    assert listings(rerun_log) == len(doubt)
    assert stored(sandbox) == truth.valid
    with Ledger(ledger, sandbox.base_url) as state:
        records = {key: state.lookup(key) or {} for key in found}
    assert {key: r["completion_id"] for key, r in records.items()} == {k: ids[k] for k in found}
    assert {r["outcome"] for r in records.values()} == {"delivered"}


@pytest.mark.slow
@pytest.mark.parametrize("resend", [False, True], ids=["pending", "resend-in-doubt"])
def test_keys_the_api_cannot_list_are_pending_unless_resend_in_doubt(
    make_sandbox: MakeSandbox, tmp_path: Path, children: list[Child], resend: bool
) -> None:
    """A provider that cannot list completions (501): keys in doubt stay pending with
    ``in_doubt_unverifiable`` and stay in doubt in the ledger; ``--resend-in-doubt`` sends them."""
    sandbox = make_sandbox(
        rate_limit=FAST, latency=SLOW, store_repeats=True, list_completions=False
    )
    truth, export, mapping, ledger, doubt, stored_keys = _killed_with_doubts(
        sandbox, tmp_path, children
    )
    log_before = len(sandbox.request_log())
    extra = ["--resend-in-doubt"] if resend else []

    result = lms_sync(
        "run", export, "-m", mapping, "--out", tmp_path / "rerun", "--ledger", ledger,
        "--rate-limit", "2000/1s", "--quiet", *extra, env=cli_env(sandbox),
    )  # fmt: skip
    report = read_report(tmp_path / "rerun")

    assert result.exit_code == 1, result.output
    assert_balanced(report)
    assert set(report["in_doubt_keys"]) == doubt
    sent = {truth.key_of_user[u] for u in posted_users(sandbox.request_log()[log_before:])}
    if resend:
        assert doubt <= sent and "in_doubt_unverifiable" not in report["reasons"]
        assert ledger_counts(ledger, sandbox)["in_flight"] == 0
    else:
        assert not doubt & sent
        assert report["outcomes"]["pending"] == report["reasons"]["in_doubt_unverifiable"]
        assert report["outcomes"]["pending"] == len(doubt)
        assert ledger_counts(ledger, sandbox)["in_flight"] == len(doubt)
        never_stored = doubt - stored_keys
        wanted = {row: n for row, n in truth.valid.items() if truth.key_of_user[row[0]] not in never_stored}
        assert stored(sandbox) == wanted
