"""The mapping file (config/mappings/*.yaml): how an export's columns become a completion (DESIGN §4)."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transforms.column_types import column_type_problem
from transforms.durations import UNITS
from transforms.errors import MappingError
from transforms.extraction import check_pattern
from transforms.mapping_yaml import load_mapping_yaml
from transforms.timestamps import check_format, check_timezone

DELIMITERS = ("auto", ",", ";", "\t", "|")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Source(_Strict):
    """How to read the export."""

    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str = "auto"
    encoding: str = "utf-8"
    timezone: str = "UTC"

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if value not in DELIMITERS:
            raise ValueError(f"{value!r} is not allowed; use one of auto , ; \\t |")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r}; use e.g. utf-8, cp1252, latin-1"
            ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        check_timezone(value)
        return value


class ColumnPart(_Strict):
    """The part of a column's value to take: a ``prefix`` to strip, an ``extract`` regex group."""

    prefix: str | None = None
    extract: str | None = None

    @field_validator("extract")
    @classmethod
    def _extract(cls, value: str | None) -> str | None:
        check_pattern(value)
        return value


class Column(ColumnPart):
    """A field taken from a column, or a constant ``value``: exactly one of the two."""

    column: str | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Column:
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of 'column' or 'value'")
        if self.value is not None and (self.prefix, self.extract) != (None, None):
            raise ValueError("prefix and extract apply to a 'column', not to a 'value'")
        return self


class Timestamp(Column):
    """``completed_at``: optional strptime pattern, epoch_s, epoch_ms or excel_serial."""

    format: str | None = None

    @field_validator("format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        check_format(value)
        return value


class Duration(Column):
    """``time_spent``: the unit of bare numbers."""

    unit: str | None = None

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and value not in UNITS:
            raise ValueError(f"unit {value!r} is not allowed; use one of {', '.join(UNITS)}")
        return value


class Result(Column):
    """``result``: source statuses mapped onto Pass/Fail; anything else is unmapped_value."""

    map: dict[str, Literal["Pass", "Fail"]] = Field(default_factory=dict)


class Score(Column):
    """``score``: percent (0..100, default) or fraction (0..1)."""

    scale: Literal["percent", "fraction"] = "percent"


class Passthrough(_Strict):
    """``passthrough``: extra provider columns sent as an object."""

    columns: list[str] = Field(min_length=1)


class Fields(_Strict):
    """Body fields of the completion request, in the order of the DESIGN §3 table."""

    learning_object_external_reference: Column
    learning_object_id: Column | None = None
    completed_at: Timestamp | None = None
    time_spent: Duration | None = None
    result: Result | None = None
    score: Score | None = None
    passthrough: Passthrough | None = None
    external_reference: Column | None = None
    content_id: Column | None = None
    content_external_reference: Column | None = None
    external_id: Column | None = None


class Account(ColumnPart):
    """The StackOne account: one ``id`` for the file, or a ``column`` (many accounts)."""

    id: str | None = None
    column: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Account:
        if (self.id is None) == (self.column is None):
            raise ValueError("give exactly one of 'id' or 'column'")
        return self


class User(ColumnPart):
    """The LMS user: the column holds the id, or an email / external reference to look up."""

    column: str
    resolve_by: Literal["email", "external_reference"] | None = None


class Filter(ColumnPart):
    """Keep only rows whose column matches one of ``in`` (case- and space-insensitive)."""

    column: str
    in_: list[str] = Field(alias="in", min_length=1)


class MappingSpec(_Strict):
    """A whole mapping file."""

    version: Literal[1]
    source: Source = Field(default_factory=Source)
    account: Account | None = None
    user: User
    fields: Fields
    filters: list[Filter] = Field(default_factory=list)
    repeats: Literal["first", "last"] = "first"

    def columns(self) -> Iterator[tuple[str, str]]:
        """Every (mapping key, column name) the mapping reads, for checking against a header."""
        if self.account is not None and self.account.column is not None:
            yield "account.column", self.account.column
        yield "user.column", self.user.column
        for name in Fields.model_fields:
            spec = getattr(self.fields, name)
            if isinstance(spec, Passthrough):
                for i, column in enumerate(spec.columns):
                    yield f"fields.passthrough.columns[{i}]", column
            elif spec is not None and spec.column is not None:
                yield f"fields.{name}.column", spec.column
        for i, rule in enumerate(self.filters):
            yield f"filters[{i}].column", rule.column


def parse_mapping(text: str, env: Mapping[str, str]) -> MappingSpec:
    """Parse mapping YAML, expanding ``${VAR}`` from ``env``; any problem is one MappingError line."""
    try:
        raw = load_mapping_yaml(text)
    except yaml.YAMLError as exc:
        raise MappingError("", f"not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise MappingError("", "a mapping file is a YAML mapping with version, user and fields")
    try:
        return MappingSpec.model_validate(_expand(raw, env, ""))
    except ValidationError as exc:
        raise _first_error(exc) from None


def check_columns(
    spec: MappingSpec,
    header: list[str],
    source: str,
    types: Mapping[str, pa.DataType] | None = None,
) -> None:
    """Fail (MappingError) when the mapping reads a column the source does not have, or one
    whose ``types`` (a Parquet schema's, by column) its field cannot read."""
    present = set(header)
    timestamp = spec.fields.completed_at
    fmt = None if timestamp is None else timestamp.format
    for key, column in spec.columns():
        if column not in present:
            shown = ", ".join(header[:30]) + (" …" if len(header) > 30 else "")
            raise MappingError(key, f"column {column!r} is not in {source} (columns: {shown})")
        kind = None if types is None else types.get(column)
        problem = None if kind is None else column_type_problem(key, column, source, kind, fmt)
        if problem is not None:
            raise MappingError(*problem)


def _expand(node: Any, env: Mapping[str, str], path: str) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, env, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise MappingError(path, f"environment variable {name} is not set")
            return env[name]

        return _VAR.sub(substitute, node)
    return node


def _first_error(exc: ValidationError) -> MappingError:
    error = exc.errors()[0]
    location = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
    key = ".".join(p if not p.isdigit() else f"[{p}]" for p in location).replace(".[", "[")
    if error["type"] == "extra_forbidden":
        parent = location[:-1]
        allowed = _allowed_keys(parent)
        return MappingError(key, f"unknown key; allowed here: {', '.join(allowed)}")
    if error["type"] == "missing":
        return MappingError(key, "required key is missing")
    if error["type"] == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return MappingError(key, f"{error.get('input')!r} is not allowed; use {expected}")
    message = str(error["msg"]).removeprefix("Value error, ")
    return MappingError(key, message)


def _allowed_keys(parent: list[str]) -> list[str]:
    model: Any = MappingSpec
    for part in parent:
        if part.isdigit():
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            break
        model = _model_of(field.annotation)
    if not hasattr(model, "model_fields"):
        return []
    own = {k: v for k, v in model.model_fields.items() if k not in ColumnPart.model_fields}
    return [info.alias or name for name, info in own.items()]  # prefix/extract: every column's


def _model_of(annotation: Any) -> Any:
    for candidate in getattr(annotation, "__args__", (annotation,)):
        inner = getattr(candidate, "__args__", None)
        if inner:
            for item in inner:
                if hasattr(item, "model_fields"):
                    return item
        if hasattr(candidate, "model_fields"):
            return candidate
    return annotation
