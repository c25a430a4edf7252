"""Where a delivering run's valid rows go: ledger check, write-ahead in_flight, results recorded.

Every row handed to the sink ends in exactly one outcome: delivered, duplicate, failed (dead-
lettered), invalid (its user does not exist), or pending when the run stops before its result.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.api.completions import Result, Submission
from pipelines.api.user_lookup import Kind, UserResolver, normalise
from pipelines.core.errors import AccountRefused
from pipelines.core.outcomes import SEND_STATUSES, Stage
from pipelines.output.deadletter import DeadLetterWriter, with_reasons
from pipelines.output.report import RunReport
from pipelines.run.chunks import Chunk
from pipelines.run.delivery_failures import SentRow, failed_table, kept_rows
from pipelines.run.delivery_prepare import PreparedRows, keys_where, rows_where
from pipelines.run.leases import Lease
from pipelines.run.reconcile import Reconciler, reconciled_result
from pipelines.state.key_results import KeyResult
from pipelines.state.ledger import Ledger
from transforms.masks import count_true
from transforms.validation import CheckedRows

# Keys are written in_flight per transaction just before the client takes them: at most the
# client's concurrency (up to this many) at once, so a crash leaves few never-sent keys in doubt.
MARK_BATCH = 256
FLUSH_SECONDS = 0.25  # outcomes are committed at least this often (a crash leaves few in doubt)


@dataclass
class DeliverySink:
    """Valid rows of a delivering run: ledger check, write-ahead claims, results recorded."""

    ledger: Ledger
    report: RunReport
    deadletter: DeadLetterWriter
    run_id: str
    backlog: deque[tuple[Submission, str]] = field(default_factory=deque)
    pending: dict[str, SentRow] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    mark_batch: int = MARK_BATCH
    resolver: UserResolver | None = None  # mapping user.resolve_by: look ids up first
    resolve_by: Kind | None = None
    _unresolved: list[tuple[Chunk, pa.Table]] = field(default_factory=list)
    reconciler: Reconciler | None = None  # keys in doubt are checked at the API before resending
    resend_in_doubt: bool = False  # send keys in doubt whose listing the API cannot answer
    doubtful: list[tuple[Submission, str]] = field(default_factory=list)  # to reconcile first
    marked: set[str] = field(default_factory=set)  # claimed by this run, no result yet
    lease: Lease = field(default_factory=Lease)  # how long this run's claims last
    unanswered: set[str] = field(default_factory=set)  # sent, no result: maybe stored
    _failed_rows: list[tuple[SentRow, Result]] = field(default_factory=list)
    _outcomes: list[KeyResult] = field(default_factory=list)
    _flushed_at: float = field(default_factory=time.monotonic)

    def accept(
        self, chunk: Chunk, checked: CheckedRows, fresh: pa.Array, prepared: PreparedRows
    ) -> None:
        """Sort the chunk's fresh rows (valid, first of their key) by their ledger state, as
        looked up on the checking thread; queue the ones to send."""
        chosen = fresh.to_numpy(zero_copy_only=False)[prepared.rows]  # among the valid rows
        if not chosen.any():
            return
        index = prepared.rows[chosen]  # the fresh rows' positions in the chunk
        state = self.ledger.classify_looked_up(prepared.looked.take(chosen))
        accounts = pc.take(checked.account, pa.array(index))
        for status, reason in _SETTLED_DUPLICATES:
            there = pc.equal(state, status)
            self.report.add("duplicate", count_true(there), reason, pc.filter(accounts, there))
        changed = pc.equal(state, "changed_after_delivery")
        self.report.changed_after_delivery.extend(keys_where(checked, index, changed))
        gave_up = pc.equal(state, "gave_up")
        if pc.any(gave_up).as_py():
            self._dead_letter_gave_up(chunk, rows_where(chunk, checked, index, gave_up))
        doubt = pc.equal(state, "in_doubt")
        self.report.in_doubt_keys.extend(keys_where(checked, index, doubt))

        send = pc.is_in(state, value_set=pa.array(SEND_STATUSES, pa.string()))
        hashes = pc.filter(pc.filter(prepared.hashes, pa.array(chosen)), send)
        rows = rows_where(chunk, checked, index, send)
        rows = rows.append_column("hash", hashes).append_column("doubt", pc.filter(doubt, send))
        if self.resolver is None:
            self._queue(chunk, rows, rows.column("user").to_pylist())
        else:  # user ids are looked up (async) before these rows can be sent
            self._unresolved.append((chunk, rows))

    async def resolve_users(self) -> None:
        """Look up the user ids of the rows accepted since the last call, then queue them.

        Rows whose user does not exist are ``invalid`` with ``user_not_found`` (never sent); the
        rows of an account refused (403) are queued as they are: the client fails them unsent.
        """
        assert self.resolver is not None and self.resolve_by is not None
        while self._unresolved:
            chunk, rows = self._unresolved[0]  # taken off only once queued: a stop keeps it pending
            accounts = rows.column("account").to_pylist()
            users = rows.column("user").to_pylist()
            ids: dict[tuple[str, str], str | None] = {}
            for account in sorted(set(accounts)):
                wanted = {u for a, u in zip(accounts, users, strict=True) if a == account}
                try:
                    found = await self.resolver.resolve(account, self.resolve_by, wanted)
                except AccountRefused:  # never sent: the client answers each row http_403
                    found = {normalise(self.resolve_by, u): u for u in wanted}
                ids.update({(account, u): found.get(normalise(self.resolve_by, u)) for u in wanted})
            resolved = [ids[(a, u)] for a, u in zip(accounts, users, strict=True)]
            known = pa.array([uid is not None for uid in resolved])
            self._queue(chunk, rows.filter(known), [uid for uid in resolved if uid is not None])
            self._unresolved.pop(0)  # the missing ones: dead-lettered, or pending if that fails
            missing = rows.filter(pc.invert(known))
            if missing.num_rows:
                self._dead_letter_unknown_users(chunk, missing)

    def _queue(self, chunk: Chunk, chosen: pa.Table, user_ids: list[str]) -> None:
        # The chosen rows copied: the chunk itself can go while they wait to be sent.
        kept = kept_rows(chunk, chosen.column("index")) if chosen.num_rows else chunk
        for index, (account, user_id, key, body, body_hash, doubt) in enumerate(
            zip(
                chosen.column("account").to_pylist(),
                user_ids,
                chosen.column("key").to_pylist(),
                chosen.column("body").to_pylist(),
                chosen.column("hash").to_pylist(),
                chosen.column("doubt").to_pylist(),
                strict=True,
            )
        ):
            self.pending[key] = SentRow(kept, index, body_hash, account)
            queued = (Submission(key, account, user_id, body.encode()), body_hash)
            (self.doubtful if doubt and self.reconciler else self.backlog).append(queued)
        self.arrived.set()

    async def reconcile(self) -> None:
        """Check the queued keys in doubt at the API before any is resent (DESIGN §7): found ones
        are delivered (``reconciled``), unverifiable ones pending unless ``resend_in_doubt``."""
        if self.reconciler is None or not self.doubtful:
            return
        doubtful, self.doubtful = self.doubtful, []  # a stop meanwhile leaves them pending
        checked = await self.reconciler.check(doubtful)
        for (submission, _), item in checked.found:
            del self.pending[submission.key]
            self._outcomes.append(reconciled_result(submission.key, item))
        found = [submission.account_id for (submission, _), _ in checked.found]
        self.report.add("delivered", len(found), "reconciled", found)
        if self.resend_in_doubt:
            checked.send.extend(checked.unverifiable)
        else:
            for submission, _ in checked.unverifiable:
                del self.pending[submission.key]  # stays in_flight in the ledger: still in doubt
            unverifiable = [submission.account_id for submission, _ in checked.unverifiable]
            self.report.add("pending", len(unverifiable), "in_doubt_unverifiable", unverifiable)
        self.backlog.extend(checked.send)
        self.flush()
        self.arrived.set()

    def _dead_letter_unknown_users(self, chunk: Chunk, rows: pa.Table) -> None:
        users = rows.column("user").to_pylist()
        self.deadletter.write(
            with_reasons(
                chunk.batch.table.take(rows.column("index")),
                source=chunk.source,
                rows=rows.column("row"),
                stage=Stage.RESOLVE,
                code="user_not_found",
                field="user",
                message=[f"no user with {self.resolve_by} {user!r}" for user in users],
            ),
            landed=lambda: self._count(rows, "invalid", "user_not_found"),
        )

    async def submissions(self) -> AsyncIterator[Submission]:
        """Hand rows to the client, writing each small batch in_flight before it can be sent."""
        while True:
            while not self.backlog:
                if self.closed:
                    return
                self.drained.set()
                self.arrived.clear()
                await self.arrived.wait()
            batch = [self.backlog.popleft() for _ in range(min(self.mark_batch, len(self.backlog)))]
            self.lease.check()  # a run whose leases lapsed sends nothing more
            claimed = self.ledger.claim(
                pa.array([s.key for s, _ in batch]),
                pa.array([h for _, h in batch]),
                [(s.account_id, s.user_id) for s, _ in batch],
                self.lease.seconds,
            )
            self.marked.update(claimed)
            self._claimed_elsewhere([s.key for s, _ in batch if s.key not in claimed])
            for submission, _ in batch:
                if submission.key in claimed:
                    yield submission
            if len(self.backlog) < self.mark_batch:
                self.drained.set()

    def _claimed_elsewhere(self, keys: list[str]) -> None:
        """Keys another live run has claimed: their rows are pending here (that run sends them)."""
        if keys:
            accounts = [self.pending.pop(key).account for key in keys]
            self.report.add("pending", len(keys), "claimed_elsewhere", accounts)

    def on_result(self, result: Result) -> None:
        """Count and record one result; failed rows go to the dead-letter file."""
        row = self.pending.pop(result.key)
        self.marked.discard(result.key)
        if result.outcome == "delivered":
            self.report.add("delivered", accounts=row.account)
        elif result.outcome == "duplicate":
            self.report.add("duplicate", reason=result.code or "http_409", accounts=row.account)
        else:
            self.report.add("failed", reason=result.code, accounts=row.account)
            self._failed_rows.append((row, result))
        self._outcomes.append(
            KeyResult(
                key=result.key,
                outcome=result.outcome,
                http_status=result.http_status,
                remote_id=result.remote_id,
                error_code=result.code,
                message=result.message,
                attempts=result.attempts,
                completion_id=result.completion_id,
            )
        )
        if len(self._outcomes) >= MARK_BATCH or time.monotonic() - self._flushed_at > FLUSH_SECONDS:
            self.flush()

    def on_unanswered(self, submission: Submission) -> None:
        """A row sent without a result (the run stopped in its retries): it stays in doubt."""
        self.unanswered.add(submission.key)

    def flush(self) -> None:
        """Commit recorded outcomes and write failed rows to the dead-letter file."""
        self._flushed_at = time.monotonic()
        if self._outcomes:
            self.ledger.record(self._outcomes, self.run_id)
            self._outcomes = []
        if self._failed_rows:
            self.deadletter.write(failed_table(self._failed_rows))
            self._failed_rows = []

    def settle_unsent(self) -> None:
        """Rows without a result (the run stopped) are pending. Keys this run wrote in_flight go
        back to their earlier state, except those a request may have reached: they stay in doubt.
        """
        unsent = sorted(self.marked - self.unanswered)
        if unsent:
            self.ledger.unmark(unsent)
        self.backlog.clear()
        self.doubtful.clear()
        self.marked.clear()
        accounts = [row.account for row in self.pending.values()]
        for _, rows in self._unresolved:
            accounts += rows.column("account").to_pylist()
        self.report.add("pending", len(accounts), accounts=accounts)
        self.pending.clear()
        self._unresolved.clear()

    def _dead_letter_gave_up(self, chunk: Chunk, rows: pa.Table) -> None:
        self.deadletter.write(
            with_reasons(
                chunk.batch.table.take(rows.column("index")),
                source=chunk.source,
                rows=rows.column("row"),
                stage=Stage.DELIVER,
                code="gave_up",
                message="failed in 3 runs; lms-sync ledger --retry-failed sends it again",
            ),
            landed=lambda: self._count(rows, "failed", "gave_up"),
        )

    def _count(self, rows: pa.Table, outcome: str, reason: str) -> None:
        """Count dead-lettered rows, once they are in deadletter.parquet (a crash: pending)."""
        self.report.add(outcome, rows.num_rows, reason, rows.column("account"))


# Ledger states settled as duplicates without a request, and the reason counted for each.
_SETTLED_DUPLICATES = (
    ("delivered", "already_delivered"),
    ("duplicate", "already_delivered"),
    ("changed_after_delivery", "changed_after_delivery"),
)
