"""User lookup: emails or external references → LMS user ids, cached with a time-to-live.

Every lookup is a request under the run's rate limit. With few distinct values each gets one
filtered ``GET /unified/lms/users``; with many (100 k emails one by one would take ~105 min at
950/min) the whole user list is paged through once instead. Answers, misses included, are kept in
the state store so that nightly runs do not look up the same people again.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from typing import Any, cast

from pipelines.api.client import StackOneClient
from pipelines.api.endpoints import USERS_PATH
from pipelines.core.errors import AccountRefused
from pipelines.state.user_cache import Kind, UserCache

PAGE_SIZE = 100


def normalise(kind: Kind, value: str) -> str:
    """Emails match case-insensitively; external references exactly (trimmed)."""
    value = value.strip()
    return value.lower() if kind == "email" else value


class UserResolver:
    """Resolves lookup values to user ids through the cache and, for the rest, the API."""

    def __init__(
        self, client: StackOneClient, cache: UserCache, *, one_by_one_limit: int = 200
    ) -> None:
        self.client = client
        self.cache = cache
        self.one_by_one_limit = one_by_one_limit
        self._listed: set[tuple[str, Kind]] = set()  # accounts whose whole list was read

    async def resolve(
        self, account: str, kind: Kind, values: Iterable[str]
    ) -> dict[str, str | None]:
        """User id (or None when no user has it) for every value."""
        wanted = {normalise(kind, v) for v in values}
        answers = self.cache.get(account, kind, wanted)
        missing = wanted - answers.keys()
        if not missing:
            return answers
        if (account, kind) in self._listed:  # this run read the whole list: not there
            fetched: dict[str, str | None] = dict.fromkeys(missing)
        elif len(missing) <= self.one_by_one_limit:
            fetched = await self._one_by_one(account, kind, missing)
        else:
            fetched = await self._whole_list(account, kind, missing)
        self.cache.put(account, kind, fetched)
        return {**answers, **fetched}

    async def _one_by_one(
        self, account: str, kind: Kind, values: set[str]
    ) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for value in sorted(values):
            if kind == "email":
                users = await self.client.find_users(account, email=value)
            else:
                users = await self.client.find_users(account, external_reference=value)
            matches = [u for u in users if normalise(kind, str(u.get(kind) or "")) == value]
            found[value] = str(matches[0]["id"]) if matches else None
        return found

    async def _whole_list(
        self, account: str, kind: Kind, values: set[str]
    ) -> dict[str, str | None]:
        everyone: dict[str, str | None] = {}
        async for user in self.client.iter_all_users(account, page_size=PAGE_SIZE):
            for key in ("email", "external_reference"):
                if user.get(key):
                    everyone.setdefault(
                        f"{key}\x1f{normalise(key, str(user[key]))}", str(user["id"])
                    )
        self._listed.add((account, kind))
        listed = {value: everyone.get(f"{kind}\x1f{value}") for value in values}
        # Cache everything the list showed, so later chunks need no request at all.
        extra = {
            k.split("\x1f", 1)[1]: uid for k, uid in everyone.items() if k.startswith(f"{kind}\x1f")
        }
        self.cache.put(account, kind, extra)
        return listed


async def unreachable_accounts(client: StackOneClient, accounts: Iterable[str]) -> dict[str, str]:
    """The accounts the key cannot reach (answered 403), with the server's message: one cheap
    authenticated request each (the first page of the user list, one user long). A 401 raises."""
    refused: dict[str, str] = {}
    for account in sorted(set(accounts)):
        try:
            pages = cast(
                AsyncGenerator[dict[str, Any], None], client.pages(USERS_PATH, account, 1, {})
            )
            async with aclosing(pages) as users:  # closed after one page: no second request
                async for _ in users:
                    break  # one page is enough: the account answered
        except AccountRefused as exc:
            refused[account] = exc.server_message
    return refused


async def check_remote(
    resolver: UserResolver, kind: Kind | None, users: dict[str, set[str]]
) -> dict[str, object]:
    """Which accounts of a dry run the key cannot reach (each looked up once, before any user),
    and which of the users it would send to do not exist (each looked up once)."""
    refused = await unreachable_accounts(resolver.client, users)
    missing: list[str] = []
    checked = 0
    for account, values in sorted(users.items()):
        if account in refused:
            continue
        checked += len(values)
        if kind is None:
            known = {str(u["id"]) async for u in resolver.client.iter_all_users(account, PAGE_SIZE)}
            missing += [f"{account}/{v}" for v in sorted(values - known)]
        else:
            found = await resolver.resolve(account, kind, values)
            missing += [f"{account}/{v}" for v, uid in sorted(found.items()) if uid is None]
    return {
        "accounts_checked": len(users),
        "unreachable_accounts": refused,
        "users_checked": checked,
        "missing_count": len(missing),
        "missing": missing[:100],
    }
