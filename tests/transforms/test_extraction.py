"""``prefix`` and ``extract`` on a mapping's columns: the part of a value a field takes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pyarrow as pa
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from transforms.errors import MappingError
from transforms.extraction import check_pattern, take_part
from transforms.mapping import parse_mapping
from transforms.validation import INVALID, SKIPPED, VALID, check_rows

NOW = datetime(2026, 1, 1, tzinfo=UTC)
XAPI = """
version: 1
user: {column: actor, prefix: "mailto:", resolve_by: email}
fields:
  learning_object_external_reference: {column: object, extract: "/activities/course/([^/]+)$"}
  result: {column: verb, extract: "/verbs/(\\\\w+)$", map: {passed: Pass, failed: Fail}}
filters:
  - {column: verb, extract: "/verbs/(\\\\w+)$", in: [passed, failed, completed]}
"""
VERBS = "http://adlnet.gov/expapi/verbs/"
COURSE = "https://acme.example/xapi/activities/course/"


def test_prefix_is_stripped_and_a_value_without_it_is_blank() -> None:
    """``mailto:`` is cut off; a value lacking it, or with nothing after it, becomes null."""
    values = pa.array(["mailto:ana@example.com", "ana@example.com", None, "mailto:", "mailto: b@x.io "])
    assert take_part(values, "mailto:", None).to_pylist() == [
        "ana@example.com",
        None,
        None,
        None,
        "b@x.io",
    ]


def test_extract_takes_the_group_of_the_first_match() -> None:
    """The one group of a search (not a full match); no match is null; the part is trimmed."""
    values = pa.array([VERBS + "passed", "https://example.org/verbs/Failed", "passed", VERBS])
    assert take_part(values, None, r"/verbs/(\w+)$").to_pylist() == [
        "passed",
        "Failed",
        None,
        None,
    ]


def test_prefix_then_extract() -> None:
    """With both, the pattern runs on what follows the prefix."""
    values = pa.array(["urn:li:lyndaCourse:2824089", "urn:li:lyndaVideo:11", "2824089"])
    assert take_part(values, "urn:li:", r"^lyndaCourse:(\d+)$").to_pylist() == [
        "2824089",
        None,
        None,
    ]


def test_typed_column_is_read_as_text_and_nothing_to_take_passes_through() -> None:
    """An int64 column is matched as its text; without prefix and pattern the column is untouched."""
    numbers = pa.array([1042, None, 7])
    assert take_part(numbers, None, r"^(\d\d)").to_pylist() == ["10", None, None]
    assert take_part(numbers, None, None) is numbers


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(unclosed", "does not compile"),
        ("no group", "has 0 groups"),
        ("(a)(b)", "has 2 groups"),
        (r"(?=look)(ahead)", "does not compile"),  # Python accepts it, Arrow's RE2 does not
    ],
)
def test_bad_pattern_is_a_value_error(pattern: str, reason: str) -> None:
    """A pattern that does not compile, or without exactly one group, is refused."""
    with pytest.raises(ValueError, match=reason):
        check_pattern(pattern)


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ({"user": {"column": "actor", "extract": "(a)(b)"}}, "user.extract"),
        ({"fields": {"learning_object_external_reference": {"column": "o", "extract": "x"}}},
         "fields.learning_object_external_reference.extract"),
        ({"filters": [{"column": "verb", "extract": "(", "in": ["x"]}]}, "filters[0].extract"),
    ],
)
def test_bad_pattern_in_a_mapping_is_one_line_naming_the_key(where: dict[str, object], key: str) -> None:
    """The mapping error names the key that holds the bad pattern, on one line."""
    raw = yaml.safe_load(XAPI)
    raw.update(where)
    with pytest.raises(MappingError) as caught:
        parse_mapping(yaml.safe_dump(raw), {})
    message = str(caught.value)
    assert message.startswith(f"{key}: pattern ")
    assert "\n" not in message


def test_prefix_on_a_constant_value_is_refused() -> None:
    """``prefix``/``extract`` take part of a column; with ``value`` they are an error."""
    raw = yaml.safe_load(XAPI)
    raw["fields"]["learning_object_id"] = {"value": "x", "prefix": "y"}
    with pytest.raises(MappingError, match=r"fields\.learning_object_id: prefix and extract apply"):
        parse_mapping(yaml.safe_dump(raw), {})


def test_rows_take_their_parts_and_a_miss_is_blank() -> None:
    """User, learning object, result and filter all read the part; a miss is blank for the field."""
    spec = parse_mapping(XAPI, {})
    table = pa.table(
        {
            "actor": ["mailto:Ana@Example.com", "ana@example.com", "mailto:bo@example.com", "mailto:cy@example.com"],
            "object": [COURSE + "SAF-101", COURSE + "SAF-101", COURSE[:-7] + "module/SAF-101-2", COURSE + "GDPR-1"],
            "verb": [VERBS + "passed", VERBS + "failed", VERBS + "completed", VERBS + "experienced"],
        }
    )
    rows = check_rows(table, pa.nulls(4, pa.string()), spec, account_id="acct", now=NOW)
    assert rows.status.to_pylist() == [VALID, INVALID, INVALID, SKIPPED]
    assert rows.user.to_pylist()[0] == "ana@example.com"
    assert rows.error_code.to_pylist()[1:3] == ["invalid_user", "missing_required"]
    assert rows.error_message.to_pylist()[1] == (
        "user is blank or has no part matching its prefix/extract"
    )
    body = rows.body.to_pylist()[0]
    assert '"learning_object_external_reference":"SAF-101"' in body
    assert '"result":{"value":"Pass","source_value":"passed"}' in body


@given(st.lists(st.one_of(st.none(), st.text(alphabet="ab:/ x\n", max_size=12)), max_size=20))
def test_take_part_agrees_with_python_re_search(values: list[str | None]) -> None:
    """Vectorised prefix + extract equals a per-value ``startswith`` and ``re.search``, trimmed."""
    prefix, pattern = "a:", r"/(b+)x?"

    def reference(value: str | None) -> str | None:
        if value is None or not value.startswith(prefix):
            return None
        found = re.search(pattern, value[len(prefix) :], re.DOTALL)
        part = found.group(1).strip() if found else ""
        return part or None

    assert take_part(pa.array(values, pa.string()), prefix, pattern).to_pylist() == [
        reference(v) for v in values
    ]
