"""Float id columns (issue 8): whole numbers leave as integer text, NaN/inf are invalid ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from transforms.mapping import parse_mapping
from transforms.validation import INVALID, VALID, check_rows

MAPPING = """
version: 1
account: {column: tenant}
user: {column: uid}
fields:
  learning_object_external_reference: {column: course}
"""
NAN, INF = float("nan"), float("inf")


def checked(table: pa.Table) -> dict[str, list[object]]:
    """check_rows on ``table`` with the test mapping, as Python lists."""
    rows = check_rows(
        table,
        pa.nulls(table.num_rows, pa.string()),
        parse_mapping(MAPPING, {}),
        account_id=None,
        now=datetime(2030, 1, 1, tzinfo=UTC),
    )
    return {
        "status": rows.status.to_pylist(),
        "user": rows.user.to_pylist(),
        "account": rows.account.to_pylist(),
        "code": rows.error_code.to_pylist(),
        "message": rows.error_message.to_pylist(),
    }


def test_float_user_ids() -> None:
    """12345.0 → "12345", 1e18 → all its digits, 7.5 stays, NaN/±inf → invalid_user (not "nan")."""
    users = pa.array([12345.0, 1e18, 7.5, NAN, INF, -INF, None], pa.float64())
    n = len(users)
    out = checked(pa.table({"uid": users, "tenant": ["a"] * n, "course": ["C"] * n}))
    assert out["user"][:3] == ["12345", "1000000000000000000", "7.5"]
    assert out["user"][3:] == [None] * 4
    assert out["status"] == [VALID] * 3 + [INVALID] * 4
    assert out["code"][3:] == ["invalid_user"] * 4
    assert out["message"][3:6] == ["user is NaN or infinite in a float column, not an id"] * 3
    assert out["message"][6] == "user is blank"


def test_float32_and_negative_zero() -> None:
    """A float32 column works alike; -0.0 is user "0"."""
    users = pa.array([12345.0, -0.0], pa.float32())
    out = checked(pa.table({"uid": users, "tenant": ["a", "a"], "course": ["C", "C"]}))
    assert out["user"] == ["12345", "0"]


def test_float_account_and_learning_object_columns() -> None:
    """A float account column: 42.0 → "42", NaN → invalid_account; NaN course is missing."""
    table = pa.table(
        {
            "uid": ["12345"] * 3,
            "tenant": pa.array([42.0, NAN, 42.0]),
            "course": pa.array([1001.0, 1002.0, NAN]),
        }
    )
    out = checked(table)
    assert out["account"] == ["42", None, "42"]
    assert out["code"] == [None, "invalid_account", "missing_required"]
    assert out["message"][2] == (
        "learning_object_external_reference is NaN or infinite in a float column, not an id"
    )
