"""Reconciling keys in doubt before any is resent (DESIGN §7): each (account, user) with keys in
doubt is listed once at the API, from the moment its keys went in flight minus ``CLOCK_SKEW``, and
a key whose learning object and ``completed_at`` instant are there was delivered already.

A listing the API cannot answer (404/501, a lookup error, or a 403 refusing the account) leaves
those keys unverifiable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipelines.api.client import StackOneClient
from pipelines.api.completion_listing import list_completions
from pipelines.api.completions import Submission
from pipelines.core.errors import AccountRefused, ApiError
from pipelines.state.doubts import Doubt
from pipelines.state.key_results import KeyResult
from pipelines.state.ledger import Ledger

__all__ = ["CLOCK_SKEW", "RECONCILED", "Reconciler", "Reconciliation", "reconciled_result"]

CLOCK_SKEW = timedelta(minutes=10)  # listed from this long before a key went in flight
RECONCILED = "reconciled"
Queued = tuple[Submission, str]  # a submission and the hash of its body
Destination = tuple[str, str]  # (account id, user id in the path)
Identity = tuple[str | None, datetime | None]  # learning object reference, completed_at instant


@dataclass
class Reconciliation:
    """Keys in doubt sorted by what the API holds: found (with the listed item), not found (to
    send), or unverifiable (the API could not list them)."""

    found: list[tuple[Queued, dict[str, Any]]] = field(default_factory=list)
    send: list[Queued] = field(default_factory=list)
    unverifiable: list[Queued] = field(default_factory=list)


@dataclass
class _Listing:
    """A destination's listed completions by identity (None: unverifiable) and from when."""

    since: datetime | None
    items: dict[Identity, dict[str, Any]] | None


class Reconciler:
    """Lists each destination with keys in doubt once per run (again only for an earlier moment),
    at most ``concurrency`` listings at a time, every page through the client's rate limiter."""

    def __init__(self, client: StackOneClient, ledger: Ledger, concurrency: int = 8) -> None:
        self._client = client
        self._ledger = ledger
        self._concurrency = max(1, concurrency)
        self._listings: dict[Destination, _Listing] = {}

    async def check(self, doubtful: Sequence[Queued]) -> Reconciliation:
        """Sort ``doubtful`` by what its users' completion lists hold."""
        doubts = self._ledger.doubts([submission.key for submission, _ in doubtful])
        wanted: dict[Destination, datetime | None] = {}
        where = []
        for queued in doubtful:
            destination, since = _where_and_when(queued[0], doubts.get(queued[0].key))
            where.append(destination)
            earlier = wanted.get(destination, since)
            wanted[destination] = None if since is None or earlier is None else min(since, earlier)
        await self._list({d: s for d, s in wanted.items() if not self._listed_since(d, s)})
        result = Reconciliation()
        for queued, destination in zip(doubtful, where, strict=True):
            items = self._listings[destination].items
            if items is None:
                result.unverifiable.append(queued)
            elif (item := items.get(body_identity(queued[0].body))) is not None:
                result.found.append((queued, item))
            else:
                result.send.append(queued)
        return result

    def _listed_since(self, destination: Destination, since: datetime | None) -> bool:
        """The destination was listed this run from ``since`` or earlier."""
        listing = self._listings.get(destination)
        if listing is None:
            return False
        return listing.since is None or (since is not None and listing.since <= since)

    async def _list(self, wanted: dict[Destination, datetime | None]) -> None:
        """List every wanted destination, a few at a time."""
        gate = asyncio.Semaphore(self._concurrency)

        async def one(destination: Destination, since: datetime | None) -> None:
            async with gate:
                self._listings[destination] = await self._listing(destination, since)

        await asyncio.gather(*(one(d, s) for d, s in wanted.items()))

    async def _listing(self, destination: Destination, since: datetime | None) -> _Listing:
        account_id, user_id = destination
        after = None if since is None else since - CLOCK_SKEW
        try:
            items = await list_completions(self._client, account_id, user_id, updated_after=after)
        except (ApiError, AccountRefused):  # the run can live with it: these stay in doubt
            items = None
        if items is None:
            return _Listing(since, None)
        return _Listing(since, {item_identity(item): item for item in reversed(items)})


def _where_and_when(
    submission: Submission, doubt: Doubt | None
) -> tuple[Destination, datetime | None]:
    """Where the key was sent (the ledger's record, else where it would be sent now) and when."""
    if doubt is None:
        return (submission.account_id, submission.user_id), None
    account = doubt.account_id or submission.account_id
    return (account, doubt.user_id or submission.user_id), doubt.in_flight_since


def body_identity(body: bytes) -> Identity:
    """The learning object reference and ``completed_at`` instant of a request body."""
    return item_identity(orjson.loads(body))


def item_identity(item: dict[str, Any]) -> Identity:
    """The learning object reference and ``completed_at`` instant of a listed completion."""
    reference = item.get("learning_object_external_reference")
    return (
        reference.strip() if isinstance(reference, str) else None,
        parse_instant(item.get("completed_at")),
    )


def parse_instant(value: object) -> datetime | None:
    """An ISO 8601 instant in any spelling (``Z`` or an offset, any fraction; naive is UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def reconciled_result(key: str, item: dict[str, Any]) -> KeyResult:
    """The ledger record of a key found at the API: delivered, with the completion's ids."""
    unified = item.get("id")
    remote = item.get("remote_id") or unified
    return KeyResult(
        key,
        "delivered",
        remote_id=None if remote is None else str(remote),
        error_code=RECONCILED,
        attempts=0,
        completion_id=None if unified is None else str(unified),
    )
