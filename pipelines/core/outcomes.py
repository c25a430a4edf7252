"""The names of what happens to rows, keys and runs (DESIGN §6-§8): one ``StrEnum`` per meaning."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["OUTCOMES", "SEND_STATUSES", "KeyStatus", "RowOutcome", "RunMode", "RunStatus", "Stage"]


class RowOutcome(StrEnum):
    """The one outcome every row read ends in (DESIGN §6)."""

    DELIVERED = "delivered"
    WOULD_SEND = "would_send"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    INVALID = "invalid"
    FAILED = "failed"
    PENDING = "pending"


OUTCOMES = tuple(RowOutcome)


class KeyStatus(StrEnum):
    """What the ledger says of a key about to be sent (DESIGN §7 rerun rules)."""

    NEW = "new"
    DELIVERED = "delivered"
    CHANGED_AFTER_DELIVERY = "changed_after_delivery"
    IN_DOUBT = "in_doubt"
    RETRY = "retry"
    GAVE_UP = "gave_up"
    DUPLICATE = "duplicate"


# The statuses whose keys a run sends (every other status is settled without a request).
SEND_STATUSES = (KeyStatus.NEW, KeyStatus.RETRY, KeyStatus.IN_DOUBT)


class RunMode(StrEnum):
    """A dry run writes payloads; a delivering run sends them."""

    DRY_RUN = "dry_run"
    DELIVER = "deliver"


class RunStatus(StrEnum):
    """How a run ended (report.json ``status``): got through, stopped early, or an unexpected error."""

    FINISHED = "finished"
    ABORTED = "aborted"
    CRASHED = "crashed"


class Stage(StrEnum):
    """Where a dead-lettered row stopped (``_dl_stage``)."""

    READ = "read"
    VALIDATE = "validate"
    RESOLVE = "resolve"
    DELIVER = "deliver"
