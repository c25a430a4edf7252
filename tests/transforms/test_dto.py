"""The completion DTO accepts exactly DESIGN §3 bodies and serialises them byte-for-byte."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from transforms.dto import (
    API_2025_01_ONLY_FIELDS,
    API_FIELDS,
    DEPRECATED_FIELDS,
    REQUIRED_FIELDS,
    CompletionScore,
    CreateResultResponse,
    ErrorResponse,
    LmsCreateCompletionRequestDto,
    field_errors,
    is_canonical_completed_at,
    is_canonical_duration,
    parse_wire_body,
)
from transforms.durations import format_duration

REF = "learning_object_external_reference"
PCT = "score.percentage"
FULL: dict[str, Any] = {
    "learning_object_external_reference": "COURSE-1",
    "learning_object_id": "lo-9",
    "completed_at": "2024-05-01T13:45:00.000Z",
    "time_spent": "PT1H30M",
    "result": {"value": "Pass", "source_value": "Passed"},
    "score": {"percentage": 87.5, "raw_value": "87,5"},
    "passthrough": {"department": "R&D", "nested": {"n": [1, None]}},
    "external_reference": "completion-77",
    "content_id": "c-1",
    "content_external_reference": "CONTENT-1",
    "external_id": "x-1",
}


def errors_of(data: object) -> list[tuple[str, str]]:
    """(field, error type) of every problem of a body given as Python data, in API order."""
    with pytest.raises(ValidationError) as caught:
        LmsCreateCompletionRequestDto.model_validate(data)
    return [(error.field, error.type) for error in field_errors(caught.value)]


def test_field_order_constant_matches_the_model_and_design_table() -> None:
    """API_FIELDS is the §3 table order and the model declares its fields in that order."""
    assert API_FIELDS == (
        "learning_object_external_reference",
        "learning_object_id",
        "completed_at",
        "time_spent",
        "result",
        "score",
        "passthrough",
        "external_reference",
        "content_id",
        "content_external_reference",
        "external_id",
    )
    assert tuple(LmsCreateCompletionRequestDto.model_fields) == API_FIELDS
    assert {"content_id", "content_external_reference", "external_id"} == DEPRECATED_FIELDS
    assert {"external_reference"} == API_2025_01_ONLY_FIELDS
    assert {"learning_object_external_reference"} == REQUIRED_FIELDS


def test_full_body_round_trips_exactly() -> None:
    """Every field of both API versions survives validation and serialises unchanged, in order."""
    dto = LmsCreateCompletionRequestDto.model_validate(FULL)
    body = dto.to_body()
    assert body == FULL
    assert list(body) == list(API_FIELDS)
    assert json.dumps(body) == json.dumps(FULL)
    assert dto.deprecated_fields_used() == (
        "content_id",
        "content_external_reference",
        "external_id",
    )


def test_absent_and_none_fields_are_omitted_from_the_body() -> None:
    """Python None means absent: nothing null is ever serialised."""
    dto = LmsCreateCompletionRequestDto(
        learning_object_external_reference="C1", learning_object_id=None, score=None
    )
    assert dto.to_body() == {"learning_object_external_reference": "C1"}
    assert dto.deprecated_fields_used() == ()


def test_strings_are_kept_exactly() -> None:
    """Surrounding white space and case are the caller's business: the model never alters text."""
    body = {"learning_object_external_reference": "  Course 1 ", "passthrough": {" k ": " v "}}
    assert LmsCreateCompletionRequestDto.model_validate(body).to_body() == body


def test_integer_and_float_percentages_keep_their_json_form() -> None:
    """87 stays 87 and 87.5 stays 87.5; a Decimal from exact arithmetic becomes a JSON number."""
    cases: list[tuple[object, str]] = [
        (87, "87"),
        (87.5, "87.5"),
        (Decimal("90.00"), "90"),
        (0, "0"),
    ]
    for given_value, expected in cases:
        score = CompletionScore.model_validate({"percentage": given_value, "raw_value": "x"})
        dto = LmsCreateCompletionRequestDto(learning_object_external_reference="C1", score=score)
        assert json.dumps(dto.to_body()["score"]["percentage"]) == expected


def test_decimal_fraction_percentage_becomes_float() -> None:
    """A non-integral Decimal percentage is emitted as the float it denotes."""
    dto = LmsCreateCompletionRequestDto(
        learning_object_external_reference="C1",
        score=CompletionScore.model_validate(
            {"percentage": Decimal("87.25"), "raw_value": "87,25"}
        ),
    )
    assert dto.to_body()["score"] == {"percentage": 87.25, "raw_value": "87,25"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({REF: None}, (REF, "string_type")),
        ({REF: ""}, (REF, "string_too_short")),
        ({REF: 123}, (REF, "string_type")),
        ({"learning_object_id": 5}, ("learning_object_id", "string_type")),
        ({"completed_at": "2024-05-01T13:45:00Z"}, ("completed_at", "completed_at_format")),
        ({"time_spent": "PT90M"}, ("time_spent", "duration_format")),
        ({"time_spent": 5400}, ("time_spent", "string_type")),
        ({"result": {"value": "pass", "source_value": "p"}}, ("result.value", "literal_error")),
        ({"result": {"value": "Pass"}}, ("result.source_value", "missing")),
        ({"result": "Pass"}, ("result", "model_type")),
        ({"score": {"percentage": 100.01, "raw_value": "x"}}, (PCT, "percentage_range")),
        ({"score": {"percentage": -1, "raw_value": "x"}}, (PCT, "percentage_range")),
        ({"score": {"percentage": float("nan"), "raw_value": "x"}}, (PCT, "percentage_range")),
        ({"score": {"percentage": True, "raw_value": "x"}}, (PCT, "number_type")),
        ({"score": {"percentage": "87", "raw_value": "87"}}, (PCT, "number_type")),
        ({"score": {"percentage": 87, "raw_value": 87}}, ("score.raw_value", "string_type")),
        (
            {"score": {"percentage": 87, "raw_value": "8", "max": 1}},
            ("score.max", "extra_forbidden"),
        ),
        ({"passthrough": ["a"]}, ("passthrough", "dict_type")),
        ({"course": "x"}, ("course", "extra_forbidden")),
        ({"LearningObjectId": "x"}, ("LearningObjectId", "extra_forbidden")),
    ],
)
def test_invalid_fields_are_named(change: dict[str, Any], expected: tuple[str, str]) -> None:
    """Each rule breach is reported against its field (dotted for nested) with a stable type."""
    assert errors_of({**FULL, **change}) == [expected]


def test_required_field_missing() -> None:
    """A body without learning_object_external_reference is refused even if otherwise complete."""
    body = {k: v for k, v in FULL.items() if k != "learning_object_external_reference"}
    assert errors_of(body) == [("learning_object_external_reference", "missing")]


def test_errors_come_in_api_field_order_unknown_fields_last() -> None:
    """field_errors sorts problems by the §3 table, whatever order pydantic found them in."""
    body = {
        "zzz": 1,
        "score": {"percentage": 300, "raw_value": "300"},
        "completed_at": "today",
        "external_id": "",
    }
    assert [field for field, _ in errors_of(body)] == [
        "learning_object_external_reference",
        "completed_at",
        "score.percentage",
        "external_id",
        "zzz",
    ]


def test_wire_body_rejects_explicit_nulls() -> None:
    """On the wire a null breaches 'nulls omitted'; the Python constructor still takes None."""
    raw = json.dumps({"learning_object_external_reference": "C1", "learning_object_id": None})
    with pytest.raises(ValidationError) as caught:
        parse_wire_body(raw)
    assert [(e.field, e.type) for e in field_errors(caught.value)] == [
        ("learning_object_id", "null_field")
    ]
    assert parse_wire_body(json.dumps(FULL)).to_body() == FULL


@pytest.mark.parametrize(("raw", "kind"), [(b"{oops", "json_invalid"), (b"[1]", "model_type")])
def test_wire_body_that_is_not_an_object(raw: bytes, kind: str) -> None:
    """Unparseable JSON or a non-object is one error against the whole body."""
    with pytest.raises(ValidationError) as caught:
        parse_wire_body(raw)
    assert [(e.field, e.type) for e in field_errors(caught.value)] == [("body", kind)]


@pytest.mark.parametrize(
    "text",
    ["2024-05-01T13:45:00.000Z", "2024-02-29T23:59:59.999Z", "1970-01-01T00:00:00.000Z"],
)
def test_completed_at_accepts_the_exact_form(text: str) -> None:
    """A real UTC instant with milliseconds and Z is accepted."""
    assert is_canonical_completed_at(text)


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T13:45:00Z",
        "2024-05-01T13:45:00.000+00:00",
        "2024-05-01T13:45:00.000000Z",
        "2024-05-01 13:45:00.000Z",
        "2024-05-01T13:45:00.000z",
        "2023-02-29T00:00:00.000Z",
        "2024-13-01T00:00:00.000Z",
        "2024-05-01T24:00:00.000Z",
        "2024-05-01",
        "\uff12\uff10\uff12\uff14-05-01T13:45:00.000Z",
        " 2024-05-01T13:45:00.000Z",
    ],
)
def test_completed_at_rejects_anything_else(text: str) -> None:
    """Other spellings, impossible dates and non-ASCII digits are refused."""
    assert not is_canonical_completed_at(text)


@pytest.mark.parametrize(
    "text",
    [
        "PT0S",
        "PT1H30M",
        "PT1.5S",
        "PT26H",
        "PT0.001S",
        "PT1H0.5S",
        "PT59M59.999S",
        "PT1H1S",
        "PT1M",
    ],
)
def test_duration_accepts_canonical_forms(text: str) -> None:
    """H/M/S parts, zero parts omitted, at most 3 decimals without trailing zeros, PT0S for zero."""
    assert is_canonical_duration(text)


@pytest.mark.parametrize(
    "text",
    [
        "PT",
        "P1D",
        "PT90M",
        "PT60S",
        "PT0H",
        "PT1H0M",
        "PT0.0S",
        "PT1.50S",
        "PT1.2345S",
        "PT01H",
        "pt1h",
        "PT1.5H",
        "PT30M1H",
        "PT0.5M",
        "-PT1H",
        "PT\uff11H",
    ],
)
def test_duration_rejects_non_canonical_forms(text: str) -> None:
    """Day parts, overflowing or zero parts, padded numbers and fractions above S are refused."""
    assert not is_canonical_duration(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9))
def test_every_whole_millisecond_count_has_an_accepted_spelling(millis: int) -> None:
    """Spelling any duration the §5 way (largest parts first, zero parts dropped) is accepted."""
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{Decimal(rest) / 1000:f}".rstrip("0").rstrip(".") if rest else ""
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    text += f"{seconds}S" if seconds else ""
    assert is_canonical_duration(text if millis else "PT0S")
    assert not is_canonical_duration(text.replace("PT", "PT0H") if hours == 0 else text + "0M")


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=0, max_value=10**7, places=4))
def test_duration_converter_output_is_accepted(seconds: Decimal) -> None:
    """Contract with transforms.durations: whatever format_duration writes, the DTO accepts."""
    assert is_canonical_duration(format_duration(seconds))


def test_created_response_parses_stackone_201() -> None:
    """The 201 body parses by its camelCase keys and dumps back the same way."""
    body = {
        "statusCode": 201,
        "message": "Record created successfully.",
        "timestamp": "2024-05-01T13:45:00.000Z",
        "data": {"id": "abc", "remote_id": "r-1"},
    }
    created = CreateResultResponse.model_validate(body)
    assert (created.status_code, created.data.id, created.data.remote_id) == (201, "abc", "r-1")
    assert created.model_dump(mode="json") == body


def test_error_response_keeps_data_and_provider_errors() -> None:
    """An error body parses with optional data/provider_errors and unknown extras ignored."""
    body = {
        "statusCode": 400,
        "message": "completed_at: bad",
        "timestamp": "2024-05-01T13:45:00.000Z",
        "data": {"errors": [{"field": "completed_at"}]},
        "provider_errors": [{"status": 400, "raw": {"error": "x"}}],
        "trace": "ignored",
    }
    error = ErrorResponse.model_validate(body)
    assert error.status_code == 400
    assert error.provider_errors == [{"status": 400, "raw": {"error": "x"}}]
    assert error.to_body() == {k: v for k, v in body.items() if k != "trace"}
    minimal = ErrorResponse.model_validate({"statusCode": 429, "message": "slow down"})
    assert minimal.to_body() == {"statusCode": 429, "message": "slow down"}
