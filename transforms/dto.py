"""StackOne's ``LmsCreateCompletionRequestDto`` (DESIGN §3) as strict pydantic models, plus the
bodies of the 201 answer and of an error answer.

One request model holds the union of both published versions: the current API (where
``learning_object_external_reference`` is required) and the 2025-01 API (which adds
``external_reference``). Strings are kept exactly as given (never stripped); serialise with
:meth:`LmsCreateCompletionRequestDto.to_body` (snake_case, nulls omitted).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

# Body fields in the order of the §3 table: the order in which a row's errors are reported.
API_FIELDS: tuple[str, ...] = (
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
REQUIRED_FIELDS: frozenset[str] = frozenset({"learning_object_external_reference"})
DEPRECATED_FIELDS: frozenset[str] = frozenset(
    {"content_id", "content_external_reference", "external_id"}
)
# Fields only the 2025-01 API (seed ``LmsCreateCompletionRequestDto``, PHP SDK) knows.
API_2025_01_ONLY_FIELDS: frozenset[str] = frozenset({"external_reference"})
RESULT_VALUES: tuple[str, ...] = ("Pass", "Fail", "unmapped_value")

_COMPLETED_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_CANONICAL_DURATION = re.compile(
    r"PT(?:([1-9][0-9]*)H)?(?:([1-9][0-9]?)M)?(?:(0|[1-9][0-9]?)(?:\.([0-9]{0,2}[1-9]))?S)?"
)


def is_canonical_completed_at(text: str) -> bool:
    """True when ``text`` is a real UTC instant spelled exactly ``YYYY-MM-DDTHH:MM:SS.sssZ``."""
    if not _COMPLETED_AT.fullmatch(text):
        return False
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


def is_canonical_duration(text: str) -> bool:
    """True when ``text`` is an ISO 8601 duration in §5 canonical form (``PT1H30M``, ``PT0S``)."""
    if text == "PT0S":
        return True
    match = _CANONICAL_DURATION.fullmatch(text)
    if match is None:
        return False
    hours, minutes, seconds, fraction = match.groups()
    if hours is None and minutes is None and seconds is None:
        return False
    if minutes is not None and int(minutes) >= 60:
        return False
    return seconds is None or (int(seconds) < 60 and (seconds != "0" or fraction is not None))


def _completed_at(value: str) -> str:
    if not is_canonical_completed_at(value):
        raise PydanticCustomError(
            "completed_at_format", "must be a UTC instant exactly like 2024-05-01T13:45:00.000Z"
        )
    return value


def _time_spent(value: str) -> str:
    if not is_canonical_duration(value):
        raise PydanticCustomError(
            "duration_format",
            "must be an ISO 8601 duration with H/M/S parts only, like PT1H30M, PT1.5S or PT0S",
        )
    return value


def _percentage(value: object) -> int | float:
    if isinstance(value, Decimal) and value.is_finite():
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number_type", "must be a number")
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise PydanticCustomError("percentage_range", "must be a number from 0 to 100")
    return value


NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
CompletedAt = Annotated[StrictStr, AfterValidator(_completed_at)]
TimeSpent = Annotated[StrictStr, AfterValidator(_time_spent)]
Percentage = Annotated[int | float, BeforeValidator(_percentage)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompletionResult(_Strict):
    """``result``: the mapped outcome plus the original text it came from."""

    value: Literal["Pass", "Fail", "unmapped_value"]
    source_value: StrictStr


class CompletionScore(_Strict):
    """``score``: a percentage 0..100 plus the original text it came from."""

    percentage: Percentage
    raw_value: StrictStr


class LmsCreateCompletionRequestDto(_Strict):
    """The body of ``POST /unified/lms/users/{id}/completions``, fields in ``API_FIELDS`` order."""

    learning_object_external_reference: NonEmptyStr
    learning_object_id: NonEmptyStr | None = None
    completed_at: CompletedAt | None = None
    time_spent: TimeSpent | None = None
    result: CompletionResult | None = None
    score: CompletionScore | None = None
    passthrough: dict[StrictStr, Any] | None = None
    external_reference: NonEmptyStr | None = None
    content_id: NonEmptyStr | None = None
    content_external_reference: NonEmptyStr | None = None
    external_id: NonEmptyStr | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_null_on_the_wire(cls, value: object, info: ValidationInfo) -> object:
        """On the wire (context ``{"wire": True}``) a null breaches the contract: omit instead."""
        if value is None and isinstance(info.context, dict) and info.context.get("wire"):
            raise PydanticCustomError("null_field", "must be omitted, not null")
        return value

    def to_body(self) -> dict[str, Any]:
        """The JSON body: snake_case, absent fields omitted, in :data:`API_FIELDS` order."""
        return self.model_dump(mode="json", exclude_none=True)

    def deprecated_fields_used(self) -> tuple[str, ...]:
        """Deprecated fields this body sets (each is a warning in the run report)."""
        return tuple(
            name for name in API_FIELDS if name in DEPRECATED_FIELDS and getattr(self, name)
        )


# Short name (bench/transform.py imports it).
CompletionRequest = LmsCreateCompletionRequestDto


def parse_wire_body(raw: bytes | str) -> LmsCreateCompletionRequestDto:
    """Validate a JSON body as received (explicit nulls rejected); raises ValidationError."""
    return LmsCreateCompletionRequestDto.model_validate_json(raw, context={"wire": True})


@dataclass(frozen=True)
class FieldError:
    """One problem of a body: dotted field path (``score.percentage``), error type, message."""

    field: str
    type: str
    message: str


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Flatten a body's ValidationError, ordered by :data:`API_FIELDS` (unknown fields last)."""
    errors = [
        FieldError(
            field=".".join(str(part) for part in error["loc"]) or "body",
            type=error["type"],
            message=error["msg"],
        )
        for error in exc.errors(include_url=False)
    ]
    order = {name: index for index, name in enumerate(API_FIELDS)}
    return sorted(errors, key=lambda error: order.get(error.field.split(".")[0], len(order)))


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_by_name=True, serialize_by_alias=True)


class CreateResultData(_Response):
    """``data`` of a 201: the unified id and the provider's id of the created completion."""

    id: str
    remote_id: str | None = None


class CreateResultResponse(_Response):
    """The 201 body: ``{"statusCode":201,"message":…,"timestamp":…,"data":{"id","remote_id"}}``."""

    status_code: int = Field(alias="statusCode")
    message: str
    timestamp: str | None = None
    data: CreateResultData


class ErrorResponse(_Response):
    """An error body: ``{"statusCode","message","timestamp","data"?,"provider_errors"?}``."""

    status_code: int = Field(alias="statusCode")
    message: str
    timestamp: str | None = None
    data: dict[str, Any] | None = None
    provider_errors: list[dict[str, Any]] | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body with absent optional parts omitted."""
        return self.model_dump(mode="json", exclude_none=True)
