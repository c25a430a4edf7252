"""The mapping-file model of DESIGN §4: shipped mappings parse, every mistake is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from transforms.errors import LmsSyncError, MappingError
from transforms.mapping import MappingSpec, check_columns, parse_mapping
from transforms.text import match_key_of

MAPPINGS = Path(__file__).resolve().parents[2] / "config" / "mappings"
SHIPPED = sorted(MAPPINGS.glob("*.yaml"))

MINIMAL = """
version: 1
user: {column: lms_user_id}
fields:
  learning_object_external_reference: {column: course_code}
"""


def parse(text: str, env: dict[str, str] | None = None) -> MappingSpec:
    """Parse mapping text with an explicit (default empty) environment."""
    return parse_mapping(text, env or {})


def with_changes(**changes: object) -> str:
    """The minimal mapping with top-level keys replaced or added (YAML text)."""
    raw = yaml.safe_load(MINIMAL)
    raw.update(changes)
    return yaml.safe_dump(raw, sort_keys=False)


def mapping_error(text: str, env: dict[str, str] | None = None) -> MappingError:
    """The MappingError ``text`` raises (fails the test when it parses)."""
    with pytest.raises(MappingError) as caught:
        parse(text, env)
    return caught.value


# --- the shipped mappings -------------------------------------------------------------------


def test_at_least_four_flavours_ship() -> None:
    """config/mappings holds one mapping per supported export flavour, at least four."""
    names = {path.stem for path in SHIPPED}
    assert {
        "cornerstone_transcript",
        "workday_learning",
        "successfactors_learning_history",
        "moodle_scorm_tracks",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_mapping_parses_without_account(path: Path) -> None:
    """Each shipped mapping parses with an empty environment and leaves the account to the env."""
    spec = parse(path.read_text(encoding="utf-8"))
    assert spec.version == 1
    assert spec.account is None
    assert spec.fields.learning_object_external_reference.column


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_mapping_has_a_header_comment(path: Path) -> None:
    """Each shipped mapping starts with a comment saying which report it fits."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# ") and len(first) > 20


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_result_map_statuses_pass_the_filters(path: Path) -> None:
    """A status the result map knows must not be filtered out, or the map entry is dead."""
    spec = parse(path.read_text(encoding="utf-8"))
    assert spec.fields.result is not None
    mapped = {match_key_of(status) for status in spec.fields.result.map}
    for rule in spec.filters:
        if rule.column == spec.fields.result.column:
            assert mapped <= {match_key_of(status) for status in rule.in_}


def test_shipped_flavour_options() -> None:
    """Spot-check the options each flavour needs: formats, units, delimiter, encoding, zone."""
    specs = {path.stem: parse(path.read_text(encoding="utf-8")) for path in SHIPPED}
    csod = specs["cornerstone_transcript"]
    assert csod.fields.completed_at is not None
    assert csod.fields.completed_at.format == "%m/%d/%Y %I:%M %p"
    assert csod.fields.time_spent is not None and csod.fields.time_spent.unit == "hours"
    assert csod.source.timezone == "America/New_York"
    workday = specs["workday_learning"]
    assert workday.source.delimiter == ";"
    assert workday.fields.completed_at is not None and workday.fields.completed_at.format is None
    sap = specs["successfactors_learning_history"]
    assert sap.source.encoding == "cp1252"
    assert sap.fields.result is not None and sap.fields.result.map["FAILED"] == "Fail"
    moodle = specs["moodle_scorm_tracks"]
    assert moodle.source.format == "parquet"
    assert moodle.fields.completed_at is not None and moodle.fields.completed_at.format == "epoch_s"
    assert moodle.fields.time_spent is not None and moodle.fields.time_spent.unit is None


# --- defaults and constants -----------------------------------------------------------------


def test_minimal_mapping_gets_the_documented_defaults() -> None:
    """Omitted blocks take DESIGN §4 defaults: auto format/delimiter, utf-8, UTC, repeats first."""
    spec = parse(MINIMAL)
    assert (spec.source.format, spec.source.delimiter) == ("auto", "auto")
    assert (spec.source.encoding, spec.source.timezone) == ("utf-8", "UTC")
    assert spec.repeats == "first"
    assert spec.filters == []
    assert spec.fields.score is None


def test_filter_key_in_is_read_from_yaml() -> None:
    """``in`` (a Python keyword) is the YAML spelling of a filter's list."""
    spec = parse(with_changes(filters=[{"column": "status", "in": ["Passed", "Failed"]}]))
    assert spec.filters[0].in_ == ["Passed", "Failed"]


def test_constant_value_instead_of_column() -> None:
    """Any field may be a constant ``value``; it then reads no column."""
    spec = parse(
        with_changes(fields={"learning_object_external_reference": {"value": "ONBOARDING-2024"}})
    )
    lo = spec.fields.learning_object_external_reference
    assert (lo.column, lo.value) == (None, "ONBOARDING-2024")
    assert dict(spec.columns()) == {"user.column": "lms_user_id"}


def test_plain_scalars_stay_the_text_written() -> None:
    """Statuses Yes/No/On/Off/true/1, a numeric account id or column name and a date constant
    are text, as written (YAML 1.1 would make them booleans, numbers and dates)."""
    spec = parse(
        """
version: 1
account: {id: 004711}
user: {column: 2024}
fields:
  learning_object_external_reference: {column: course_code}
  completed_at: {value: 2024-03-05}
  result: {column: passed, map: {Yes: Pass, No: Fail, On: Pass, false: Fail, 1: Pass, 0.50: Fail}}
filters:
  - {column: passed, in: [Yes, NO, off, TRUE, 1]}
"""
    )
    assert spec.version == 1
    assert spec.account is not None and spec.account.id == "004711"
    assert spec.user.column == "2024"
    assert spec.fields.completed_at is not None and spec.fields.completed_at.value == "2024-03-05"
    assert spec.fields.result is not None
    assert list(spec.fields.result.map) == ["Yes", "No", "On", "false", "1", "0.50"]
    assert spec.filters[0].in_ == ["Yes", "NO", "off", "TRUE", "1"]
    assert spec.fields.learning_object_id is None
    assert parse(MINIMAL.replace("version: 1", 'version: "1"')).version == 1
    assert mapping_error(MINIMAL.replace("version: 1", "version: 1.0")).key == "version"


def test_columns_lists_every_column_the_mapping_reads() -> None:
    """columns() names each column with the mapping key that reads it (for error messages)."""
    spec = parse((MAPPINGS / "cornerstone_transcript.yaml").read_text(encoding="utf-8"))
    pairs = list(spec.columns())
    assert ("user.column", "User ID") in pairs
    assert ("fields.completed_at.column", "Transcript Completed Date") in pairs
    assert ("fields.passthrough.columns[1]", "Training Type") in pairs
    assert ("filters[0].column", "Transcript Status") in pairs


# --- unknown keys ---------------------------------------------------------------------------


def test_unknown_top_level_key_names_it_and_lists_allowed() -> None:
    """A typo at the top level names the key and every allowed top-level key."""
    error = mapping_error(MINIMAL + "repeat: last\n")
    assert error.key == "repeat"
    assert str(error) == (
        "repeat: unknown key; allowed here: "
        "version, source, account, user, fields, filters, repeats"
    )


def test_unknown_field_names_it_and_lists_fields() -> None:
    """An unknown body field is named with its path and the list of real fields."""
    error = mapping_error(
        with_changes(
            fields={
                "learning_object_external_reference": {"column": "c"},
                "completion_date": {"column": "d"},
            }
        )
    )
    assert error.key == "fields.completion_date"
    assert "unknown key" in str(error)
    assert "learning_object_external_reference" in str(error)
    assert "completed_at" in str(error) and "time_spent" in str(error)


def test_unknown_nested_option_lists_that_blocks_keys() -> None:
    """A misspelt option inside a field lists exactly the options that field has."""
    error = mapping_error(
        with_changes(
            fields={
                "learning_object_external_reference": {"column": "c"},
                "time_spent": {"column": "minutes", "units": "minutes"},
            }
        )
    )
    assert str(error) == "fields.time_spent.units: unknown key; allowed here: column, value, unit"


def test_unknown_key_in_source_and_in_a_filter() -> None:
    """Unknown keys in the source block and inside a list item are named with their path."""
    error = mapping_error(with_changes(source={"seperator": ";"}))
    assert error.key == "source.seperator"
    assert "delimiter" in str(error) and "encoding" in str(error)
    error = mapping_error(with_changes(filters=[{"column": "s", "in": ["A"], "not_in": ["B"]}]))
    assert error.key == "filters[0].not_in"
    assert str(error).endswith("allowed here: column, in")


# --- values that are not allowed ------------------------------------------------------------


def test_bad_unit_lists_the_units() -> None:
    """An unknown unit names itself and every allowed unit."""
    error = mapping_error(
        with_changes(
            fields={
                "learning_object_external_reference": {"column": "c"},
                "time_spent": {"column": "t", "unit": "days"},
            }
        )
    )
    assert error.key == "fields.time_spent.unit"
    assert "'days'" in str(error)
    for unit in ("seconds", "minutes", "hours", "excel_days"):
        assert unit in str(error)


def test_bad_scale_lists_the_scales() -> None:
    """An unknown score scale names itself and both allowed scales."""
    error = mapping_error(
        with_changes(
            fields={
                "learning_object_external_reference": {"column": "c"},
                "score": {"column": "s", "scale": "percentage"},
            }
        )
    )
    assert error.key == "fields.score.scale"
    assert "'percentage'" in str(error)
    assert "'percent'" in str(error) and "'fraction'" in str(error)


def test_bad_result_target_lists_pass_and_fail() -> None:
    """A result map may only map onto Pass or Fail."""
    error = mapping_error(
        with_changes(
            fields={
                "learning_object_external_reference": {"column": "c"},
                "result": {"column": "s", "map": {"Passed": "Success"}},
            }
        )
    )
    assert error.key == "fields.result.map.Passed"
    assert "'Success'" in str(error) and "'Pass'" in str(error) and "'Fail'" in str(error)


def test_bad_delimiter_lists_the_delimiters() -> None:
    """A delimiter outside auto , ; tab | is named with the allowed list."""
    error = mapping_error(with_changes(source={"delimiter": ":"}))
    assert error.key == "source.delimiter"
    assert str(error) == "source.delimiter: ':' is not allowed; use one of auto , ; \\t |"


def test_bad_encoding_suggests_encodings() -> None:
    """An encoding Python does not know is named with examples of real ones."""
    error = mapping_error(with_changes(source={"encoding": "utf-9"}))
    assert error.key == "source.encoding"
    assert "'utf-9'" in str(error) and "cp1252" in str(error)


def test_bad_format_lists_the_formats() -> None:
    """An unknown source format names the allowed ones."""
    error = mapping_error(with_changes(source={"format": "xlsx"}))
    assert error.key == "source.format"
    assert "'xlsx'" in str(error) and "'csv'" in str(error) and "'parquet'" in str(error)


def test_bad_timezone_is_named() -> None:
    """A zone that is not an IANA name (an abbreviation, a typo) is a mapping error naming it."""
    for zone in ("EST5", "Europe/Berln"):
        error = mapping_error(with_changes(source={"timezone": zone}))
        assert error.key == "source.timezone"
        assert zone in str(error)
        assert "IANA" in str(error)


def test_bad_timestamp_format_is_named() -> None:
    """A completed_at format without a full date (epoch_s typo, a picture) says what it needs."""
    for pattern in ("epoch_us", "MM/DD/YYYY"):
        error = mapping_error(
            with_changes(
                fields={
                    "learning_object_external_reference": {"column": "c"},
                    "completed_at": {"column": "d", "format": pattern},
                }
            )
        )
        assert error.key == "fields.completed_at.format"
        assert repr(pattern) in str(error)
        assert "%Y" in str(error) and "%d" in str(error)


def test_bad_repeats_and_version() -> None:
    """repeats takes first|last and version only 1; the message lists what is allowed."""
    error = mapping_error(with_changes(repeats="newest"))
    assert error.key == "repeats"
    assert "'first'" in str(error) and "'last'" in str(error)
    error = mapping_error(with_changes(version=2))
    assert error.key == "version"
    assert "1" in str(error)


def test_missing_required_keys_are_named() -> None:
    """A mapping without user or the required body field says which key is missing."""
    error = mapping_error(
        "version: 1\nfields:\n  learning_object_external_reference: {column: c}\n"
    )
    assert str(error) == "user: required key is missing"
    error = mapping_error("version: 1\nuser: {column: u}\nfields: {}\n")
    assert str(error) == "fields.learning_object_external_reference: required key is missing"


def test_not_yaml_or_not_a_mapping() -> None:
    """Broken YAML and a YAML list are mapping errors, not crashes."""
    assert "not valid YAML" in str(mapping_error("version: [1\n"))
    assert "YAML mapping" in str(mapping_error("- 1\n- 2\n"))


def test_empty_filter_list_is_rejected() -> None:
    """A filter with an empty ``in`` list would skip every row: rejected."""
    error = mapping_error(with_changes(filters=[{"column": "s", "in": []}]))
    assert error.key == "filters[0].in"


def test_mapping_error_is_a_one_line_terminal_exit_2() -> None:
    """MappingError is an LmsSyncError with exit code 2, not retryable, and one line of text."""
    error = mapping_error(MINIMAL + "colour: blue\n")
    assert isinstance(error, LmsSyncError)
    assert error.exit_code == 2
    assert error.retryable is False
    assert "\n" not in str(error)


# --- exactly one of column / value ----------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [{"column": "c", "value": "X"}, {}],
    ids=["both", "neither"],
)
def test_exactly_one_of_column_or_value(field: dict[str, str]) -> None:
    """A field with both a column and a value, or with neither, is rejected naming the field."""
    error = mapping_error(with_changes(fields={"learning_object_external_reference": field}))
    assert error.key == "fields.learning_object_external_reference"
    assert "exactly one of 'column' or 'value'" in str(error)


def test_account_needs_exactly_one_of_id_or_column() -> None:
    """The account block takes an id or a column, not both."""
    error = mapping_error(with_changes(account={"id": "a", "column": "tenant"}))
    assert error.key == "account"
    assert "exactly one of 'id' or 'column'" in str(error)


# --- ${VAR} expansion -----------------------------------------------------------------------


def test_variables_expand_from_the_given_environment() -> None:
    """``${VAR}`` anywhere in a string value is replaced from ``env`` (also inside text)."""
    text = with_changes(
        account={"id": "${STACKONE_ACCOUNT_ID}"},
        fields={"learning_object_external_reference": {"value": "${PREFIX}-onboarding"}},
    )
    spec = parse(text, {"STACKONE_ACCOUNT_ID": "acct-42", "PREFIX": "HR"})
    assert spec.account is not None and spec.account.id == "acct-42"
    assert spec.fields.learning_object_external_reference.value == "HR-onboarding"


def test_unset_variable_names_it_and_where() -> None:
    """An unset variable is a mapping error naming the variable and the key that uses it."""
    text = with_changes(account={"id": "${STACKONE_ACCOUNT_ID}"})
    error = mapping_error(text, {"OTHER": "x"})
    assert error.key == "account.id"
    assert "STACKONE_ACCOUNT_ID" in str(error) and "not set" in str(error)


def test_text_without_braces_is_left_alone() -> None:
    """Only ``${NAME}`` expands: a bare ``$NAME`` or a dollar amount stays as written."""
    spec = parse(
        with_changes(fields={"learning_object_external_reference": {"value": "$COURSE costs $5"}})
    )
    assert spec.fields.learning_object_external_reference.value == "$COURSE costs $5"


# --- check_columns --------------------------------------------------------------------------


def test_check_columns_accepts_a_matching_header() -> None:
    """A header holding every column the mapping reads passes (extra columns are fine)."""
    spec = parse(MINIMAL)
    check_columns(spec, ["lms_user_id", "course_code", "department"], "export.csv")


def test_check_columns_names_the_missing_column_and_the_source() -> None:
    """A missing column is named with the mapping key that reads it, the file and its columns."""
    spec = parse((MAPPINGS / "cornerstone_transcript.yaml").read_text(encoding="utf-8"))
    header = [column for _, column in spec.columns() if column != "Transcript Score"]
    with pytest.raises(MappingError) as caught:
        check_columns(spec, header, "transcript.csv")
    assert caught.value.key == "fields.score.column"
    message = str(caught.value)
    assert "'Transcript Score'" in message and "transcript.csv" in message
    assert "User ID" in message  # the columns that are there, to spot the typo


def test_check_columns_is_exact_about_names() -> None:
    """Column names match exactly: a different case is a missing column, not a guess."""
    spec = parse(MINIMAL)
    with pytest.raises(MappingError) as caught:
        check_columns(spec, ["LMS_USER_ID", "course_code"], "export.csv")
    assert caught.value.key == "user.column"
    assert "'lms_user_id'" in str(caught.value)
