"""Whom a row is for: its account and its user (an email when resolved by email), with problems."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.extraction import blank_message
from transforms.mapping import MappingSpec
from transforms.text import clean_text
from transforms.validation.problems import Problem, quoted_message, required_id, where
from transforms.validation.source_columns import part_ids

_EMAIL = r"^[^@\s]+@[^@\s]+$"


def account_of(
    table: pa.Table, spec: MappingSpec, account_id: str | None
) -> tuple[pa.Array, list[Problem]]:
    """Every row's account: its column, else the mapping's or the run's id; blank or NaN is
    invalid."""
    n = table.num_rows
    not_finite = None
    blank = "account id is blank"
    if spec.account is not None and spec.account.column is not None:
        account, not_finite = part_ids(table, spec.account.column, spec.account)
        blank = blank_message("account id", spec.account.prefix, spec.account.extract)
    else:
        value = spec.account.id if spec.account is not None else account_id
        account = clean_text(pa.repeat(value, n).cast(pa.string()))
    return account, required_id(account, not_finite, "account", "invalid_account", blank)


def user_of(table: pa.Table, spec: MappingSpec) -> tuple[pa.Array, list[Problem]]:
    """Every row's user (lower-cased when an email) and its problems: not an email, then blank."""
    user, not_finite = part_ids(table, spec.user.column, spec.user)
    problems = []
    if spec.user.resolve_by == "email":
        user = pc.utf8_lower(user)
        bad_email = pc.invert(pc.fill_null(pc.match_substring_regex(user, _EMAIL), True))
        problems.append(
            Problem(
                "user",
                where(bad_email, "invalid_user"),
                quoted_message(bad_email, user, "is not an email"),
            )
        )
    blank = blank_message("user", spec.user.prefix, spec.user.extract)
    problems.extend(required_id(user, not_finite, "user", "invalid_user", blank))
    return user, problems


def user_key_part(user: pa.Array, spec: MappingSpec) -> pa.Array:
    """The user as the idempotency key names it: prefixed ``email:`` or ``external_reference:``."""
    if spec.user.resolve_by is None:
        return user
    return pc.binary_join_element_wise(f"{spec.user.resolve_by}:", user, "")
