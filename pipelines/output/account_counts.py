"""Rows per account (report.json ``accounts``) when the mapping reads the account from a column.

Every row read is counted once under its account (``""``: a row with no account id) and once
under its outcome there, so each account's outcomes add up to its ``rows_read``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.core.outcomes import OUTCOMES, RowOutcome

__all__ = ["BLANK_ACCOUNT", "AccountCounts", "Accounts", "account_table", "tally"]

BLANK_ACCOUNT = ""  # the account of rows whose account id is blank or unreadable
# The accounts of some rows: one for all of them, or one per row.
Accounts: TypeAlias = str | Sequence[str | None] | pa.Array | pa.ChunkedArray


def tally(accounts: Accounts, count: int) -> Counter[str]:
    """Rows per account: ``count`` rows of one account (a string), or one row per item."""
    if isinstance(accounts, str):
        return Counter({accounts: count}) if count else Counter()
    if isinstance(accounts, pa.Array | pa.ChunkedArray):
        if len(accounts) != count:
            raise ValueError(f"{count} rows but {len(accounts)} accounts")
        totals: Counter[str] = Counter()
        for item in pc.value_counts(accounts).to_pylist() if count else []:
            totals[item["values"] or BLANK_ACCOUNT] += item["counts"]
        return totals
    if len(accounts) != count:
        raise ValueError(f"{count} rows but {len(accounts)} accounts")
    return Counter(account or BLANK_ACCOUNT for account in accounts)


@dataclass
class AccountCounts:
    """Rows read and outcomes of each account of a run."""

    read: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)

    def count_read(self, accounts: Accounts, count: int) -> None:
        """``count`` rows were read (their accounts)."""
        self.read.update(tally(accounts, count))

    def count(self, outcome: str, accounts: Accounts, count: int) -> None:
        """``count`` rows (their accounts) ended in ``outcome``."""
        for account, rows in tally(accounts, count).items():
            self.outcomes.setdefault(account, Counter())[outcome] += rows

    def settle_rest(self) -> None:
        """Rows read without an outcome yet (the run stopped mid-chunk) are ``pending``."""
        for account, rows in self.read.items():
            counted = sum(self.outcomes.get(account, Counter()).values())
            if rows > counted:
                self.count(RowOutcome.PENDING, account, rows - counted)

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{account: {rows_read, delivered, would_send, …}}``, accounts in sorted order."""
        names = sorted(set(self.read) | set(self.outcomes))
        return {
            account: {
                "rows_read": self.read.get(account, 0),
                **{
                    name.value: self.outcomes.get(account, Counter()).get(name, 0)
                    for name in OUTCOMES
                },
            }
            for account in names
        }


def account_table(
    accounts: dict[str, dict[str, int]], refused: dict[str, str]
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-account summary (CLI table, Prefect artifact): rows read and
    every outcome some account has, a refused account marked ``403``, a blank one ``(blank)``."""
    shown = [name.value for name in OUTCOMES if any(c[name] for c in accounts.values())]
    header = ["account", "rows read", *shown]
    rows = [
        [
            (account or "(blank)") + (" (403)" if account in refused else ""),
            f"{counts['rows_read']:,}",
            *(f"{counts[name]:,}" for name in shown),
        ]
        for account, counts in accounts.items()
    ]
    return header, rows
