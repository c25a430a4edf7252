"""``lms-sync ledger``: counts, key and source-row lookups, forgetting keys, lifting gave_up.

The ledger is filled by real delivering runs of the Cornerstone sample against the sandbox, so
the keys looked up are exactly the ones a run writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner, Result

from pipelines.cli.ledger_command import ledger_command, parse_source_row, read_key_file
from pipelines.core.settings import RunOptions, load_settings
from pipelines.core.state_location import StateLocation
from pipelines.output.report import RunReport
from pipelines.run.execute import execute
from pipelines.run.plan import load_mapping, plan_run
from pipelines.sandbox import RunningSandbox
from pipelines.state.ledger import Ledger
from tests.conftest import SANDBOX_ACCOUNT, SANDBOX_KEY
from transforms.keys import key_of

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "samples" / "cornerstone_transcript.csv"
MAPPING = ROOT / "config" / "mappings" / "cornerstone_transcript.yaml"
LO = "5e0c3f9a-2b1d-4c6e-9f47-1a2b3c4d5e0"
# Row 1 (Maria Lopez) and row 2 (James Carter) of the sample, as a run keys them.
ROW1_KEY = key_of(SANDBOX_ACCOUNT, "0041235", f"{LO}1", "2024-03-14T18:05:00.000Z")
ROW2_KEY = key_of(SANDBOX_ACCOUNT, "0041236", f"{LO}2", "2024-01-08T14:30:00.000Z")
DELIVERED_USERS = 10  # would_send rows of the sample (data/samples/README.md)

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command("ledger")(ledger_command)


@app.callback()
def _group() -> None:
    """Keep ``ledger`` a subcommand, as in lms-sync."""


class Setup:
    """A sandbox, a ledger file and a way to deliver the sample into both."""

    def __init__(self, running: RunningSandbox, folder: Path) -> None:
        self.running = running
        self.folder = folder
        self.ledger = folder / "ledger.sqlite"
        self.runs = 0

    @property
    def env(self) -> dict[str, str | None]:
        """Environment of a shell set up for this sandbox."""
        return {
            "STACKONE_BASE_URL": self.running.base_url,
            "STACKONE_API_KEY": SANDBOX_KEY,
            "STACKONE_ACCOUNT_ID": SANDBOX_ACCOUNT,
            "PREFECT_API_URL": None,
        }

    def deliver(self) -> RunReport:
        """One delivering run of the sample against the sandbox."""
        settings = load_settings(
            base_url=self.running.base_url, api_key=SANDBOX_KEY, account_id=SANDBOX_ACCOUNT
        )
        plan = plan_run([str(SAMPLE)], load_mapping(MAPPING, {}), settings.account_id)
        self.runs += 1
        out = self.folder / f"run{self.runs}"
        return execute(plan, settings, RunOptions(out=out, state=StateLocation.sqlite(self.ledger)))

    def ledger_cli(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        """``lms-sync ledger --ledger <this ledger> ARGS`` in-process."""
        return CliRunner().invoke(
            app, ["ledger", "--ledger", str(self.ledger), *args], env={**self.env, **(env or {})}
        )

    def ledger_json(self, *args: str) -> dict[str, Any]:
        """The command's ``--json`` answer (exit code 0 required)."""
        result = self.ledger_cli(*args, "--json")
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = orjson.loads(result.stdout)
        return data


@pytest.fixture
def setup(make_sandbox: Callable[..., RunningSandbox], tmp_path: Path) -> Setup:
    """A sandbox that knows every user of the sample except James Carter (row 2: 404)."""
    users = [{"id": f"00412{n}"} for n in range(35, 55) if n != 36]
    return Setup(make_sandbox(users=users), tmp_path)


def test_counts_per_outcome(setup: Setup) -> None:
    """After one run the ledger counts the delivered keys and the failed one, per outcome."""
    report = setup.deliver()
    assert report.outcomes["delivered"] == DELIVERED_USERS - 1
    data = setup.ledger_json()
    assert data["target"] == setup.running.base_url
    assert data["counts"] == {
        "in_flight": 0,
        "delivered": DELIVERED_USERS - 1,
        "failed": 1,
        "gave_up": 0,
        "duplicate": 0,
    }
    shown = setup.ledger_cli()
    assert shown.exit_code == 0, shown.output
    assert "delivered" in shown.stdout and f"{DELIVERED_USERS - 1}" in shown.stdout
    assert "total" in shown.stdout


def test_other_target_shows_zeros_and_names_the_targets_with_keys(setup: Setup) -> None:
    """Asking about a target the ledger has no keys for says which targets it does have keys for."""
    setup.deliver()
    data = setup.ledger_json("--target", "https://api.stackone.com")
    assert sum(data["counts"].values()) == 0
    assert data["other_targets"] == [setup.running.base_url]
    shown = setup.ledger_cli(env={"STACKONE_BASE_URL": None})
    assert "https://api.stackone.com" in shown.stdout
    assert setup.running.base_url in shown.stdout


def test_key_lookup(setup: Setup) -> None:
    """--key shows the record of a key (outcome, remote id); unknown keys exit 1, bad ones 2."""
    setup.deliver()
    record = setup.ledger_json("--key", ROW1_KEY.upper())["key"]["record"]
    stored = {c["user_id"]: c for c in setup.running.completions()}["0041235"]
    assert (record["key"], record["outcome"], record["remote_id"]) == (
        ROW1_KEY,
        "delivered",
        stored["remote_id"],
    )
    failed = setup.ledger_json("--key", ROW2_KEY)["key"]["record"]
    assert (failed["outcome"], failed["http_status"], failed["failed_runs"]) == ("failed", 404, 1)
    missing = setup.ledger_cli("--key", "0" * 32)
    assert missing.exit_code == 1
    assert "not in the ledger" in missing.stdout
    bad = setup.ledger_cli("--key", "not-a-key")
    assert bad.exit_code == 2
    assert "32 hex characters" in bad.output


def test_source_row_lookup(setup: Setup) -> None:
    """--source-row FILE:ROW finds the row's key with the pipeline's own check step."""
    setup.deliver()
    found = setup.ledger_json("--source-row", f"{SAMPLE}:1", "-m", str(MAPPING))["source_row"]
    assert (found["status"], found["key"]) == ("valid", ROW1_KEY)
    assert found["record"]["outcome"] == "delivered"
    repeat = setup.ledger_json("--source-row", f"{SAMPLE}:14", "-m", str(MAPPING))
    assert repeat["source_row"]["key"] == ROW1_KEY  # row 14 repeats row 1


@pytest.mark.parametrize(
    ("row", "shown"),
    [(4, "is skipped"), (7, "is invalid (missing_required: learning_object_external_reference")],
)
def test_source_row_without_a_key(setup: Setup, row: int, shown: str) -> None:
    """A skipped or invalid row has no key: the command says why and exits 1."""
    setup.deliver()
    result = setup.ledger_cli("--source-row", f"{SAMPLE}:{row}", "-m", str(MAPPING))
    assert result.exit_code == 1, result.output
    assert shown in result.stdout
    assert "never sent" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source-row", f"{SAMPLE}:99", "-m", str(MAPPING)], "has no row 99"),
        (["--source-row", f"{SAMPLE}:1"], "needs --mapping"),
        (["--source-row", f"{SAMPLE}:x", "-m", str(MAPPING)], "FILE:ROW"),
        (["--source-row", f"{SAMPLE}:0", "-m", str(MAPPING)], "FILE:ROW"),
    ],
)
def test_source_row_usage_errors(setup: Setup, args: list[str], message: str) -> None:
    """A row past the end, a missing mapping or a malformed FILE:ROW is a usage error (exit 2)."""
    Ledger(setup.ledger, setup.running.base_url).open().close()  # an empty ledger
    result = setup.ledger_cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_forget_makes_a_rerun_resend(setup: Setup) -> None:
    """A forgotten key is new again: the next run sends its row (and only that row)."""
    setup.deliver()
    data = setup.ledger_json("--forget", ROW1_KEY)
    assert data["forgotten"] == 1
    assert data["counts"]["delivered"] == DELIVERED_USERS - 2
    setup.running.reset()
    report = setup.deliver()
    assert report.outcomes["delivered"] == 1
    assert report.reasons["already_delivered"] == DELIVERED_USERS - 2
    assert [c["user_id"] for c in setup.running.completions()] == ["0041235"]


def test_forget_file(setup: Setup, tmp_path: Path) -> None:
    """--forget-file reads keys one a line (comments and blank lines ignored)."""
    setup.deliver()
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# to resend\n{ROW1_KEY}\n\n{ROW2_KEY}  # the 404 one\n{'f' * 32}\n")
    assert read_key_file(keys) == [ROW1_KEY, ROW2_KEY, "f" * 32]
    data = setup.ledger_json("--forget-file", str(keys))
    assert data["forgotten"] == 2
    assert data["counts"]["failed"] == 0


def test_retry_failed_lifts_gave_up(setup: Setup) -> None:
    """After three failing runs a key gives up (no request); --retry-failed makes runs send it."""
    for _ in range(3):
        setup.deliver()
    assert setup.ledger_json()["counts"]["gave_up"] == 1
    posts = len(setup.running.request_log())
    fourth = setup.deliver()
    assert fourth.reasons["gave_up"] == 1
    assert len(setup.running.request_log()) == posts  # nothing sent
    data = setup.ledger_json("--retry-failed")
    assert data["retried"] == 1
    assert (data["counts"]["gave_up"], data["counts"]["failed"]) == (0, 1)
    fifth = setup.deliver()
    assert fifth.reasons["http_404"] == 1
    assert len(setup.running.request_log()) == posts + 1


def test_missing_ledger_is_a_usage_error(setup: Setup) -> None:
    """No ledger file: exit 2, and no empty ledger is created as a side effect."""
    result = setup.ledger_cli()
    assert result.exit_code == 2, result.output
    assert "no ledger" in result.output
    assert not setup.ledger.exists()


def test_parse_source_row_splits_at_the_last_colon() -> None:
    """Windows drive letters and colons in names stay part of the file name."""
    assert parse_source_row(r"C:\exports\a.csv:7") == (Path(r"C:\exports\a.csv"), 7)
    assert parse_source_row("dir/a:b.csv:12") == (Path("dir/a:b.csv"), 12)
    with pytest.raises(typer.BadParameter):
        parse_source_row("a.csv")
