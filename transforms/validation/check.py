"""check_rows: statuses, keys, bodies and errors of one batch from its identity, fields, filters."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from transforms.keys import idempotency_keys
from transforms.mapping import MappingSpec
from transforms.validation.body import body_of
from transforms.validation.byte_columns import decoded_columns
from transforms.validation.checked_rows import INVALID, SKIPPED, VALID, CheckedRows
from transforms.validation.dto_fields import DEPRECATED
from transforms.validation.error_report import errors_json, first_problem
from transforms.validation.filters import filtered_out
from transforms.validation.identity import account_of, user_key_part, user_of
from transforms.validation.problems import Problem, null_where


def check_rows(
    table: pa.Table,
    read_errors: pa.Array,
    spec: MappingSpec,
    *,
    account_id: str | None,
    now: datetime,
) -> CheckedRows:
    """Convert and validate every row of ``table`` (the source's columns) against ``spec``."""
    table, undecodable = decoded_columns(table, spec)
    if undecodable is not None:
        read_errors = pc.coalesce(read_errors, undecodable)
    account, account_problems = account_of(table, spec, account_id)
    user, user_problems = user_of(table, spec)
    body = body_of(table, spec, now)
    read_problem = Problem("_row", read_errors, read_errors)
    problems = [read_problem, *account_problems, *user_problems, *body.problems]
    code, field, message = first_problem(problems)
    malformed = pc.is_valid(read_errors)
    skipped = pc.and_not(filtered_out(table, spec, table.num_rows), malformed)
    invalid = pc.and_not(pc.is_valid(code), skipped)
    status = pc.if_else(invalid, INVALID, pc.if_else(skipped, SKIPPED, VALID))
    valid = pc.equal(status, VALID)
    not_valid, not_invalid = pc.invert(valid), pc.invert(invalid)
    keys = idempotency_keys(
        null_where(not_valid, account),
        user_key_part(user, spec),
        body.learning_object,
        body.completed_at,
    )
    return CheckedRows(
        status=status,
        account=account,
        user=user,
        key=keys,
        body=null_where(not_valid, body.json),
        error_code=null_where(not_invalid, code),
        error_field=null_where(not_invalid, field),
        error_message=null_where(not_invalid, message),
        errors=errors_json(problems, malformed, invalid),
        deprecated_uses=_deprecated_uses(valid, body.strings),
    )


def _deprecated_uses(valid: pa.Array, strings: dict[str, pa.Array]) -> Counter[str]:
    """How many valid rows send each deprecated field that the mapping maps."""
    uses: Counter[str] = Counter()
    for name in DEPRECATED:
        if name in strings:
            uses[name] = pc.sum(pc.and_(valid, pc.is_valid(strings[name]))).as_py() or 0
    return uses
