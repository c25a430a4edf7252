"""The verdict of every row of a batch (CheckedRows) and the three row statuses."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

VALID, SKIPPED, INVALID = "valid", "skipped", "invalid"


@dataclass(frozen=True)
class CheckedRows:
    """Per-row verdicts for one batch; every array has the batch's length."""

    status: pa.Array  # valid | skipped | invalid
    account: pa.Array
    user: pa.Array  # user id, or the email / external reference to look up
    key: pa.Array  # idempotency key (null unless valid)
    body: pa.Array  # request body JSON (null unless valid)
    error_code: pa.Array
    error_field: pa.Array
    error_message: pa.Array
    errors: pa.Array  # JSON list of every problem of the row (null unless invalid)
    deprecated_uses: Counter[str]
