"""Column profiling (kinds, blanks, best converter settings) and the proposed mapping file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pytest
import yaml

from pipelines.source.batches import iter_batches
from pipelines.source.headers import read_header
from transforms.export_profile import (
    ISO,
    ColumnProfile,
    profile_column,
    profile_table,
    propose_mapping,
)
from transforms.mapping import MappingSpec, check_columns, parse_mapping
from transforms.text import match_key_of

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
MAPPINGS = ROOT / "config" / "mappings"
SAMPLE_MAPPINGS = [
    ("cornerstone_transcript.csv", "cornerstone_transcript.yaml"),
    ("workday_learning.csv", "workday_learning.yaml"),
    ("successfactors_learning_history.csv", "successfactors_learning_history.yaml"),
    ("moodle_scorm_tracks.parquet", "moodle_scorm_tracks.yaml"),
]

KINDS: list[tuple[str, pa.Array | list[str], str, dict[str, object]]] = [
    ("User ID", ["0041235", "0041236", "0041237"], "id", {}),
    ("Item ID", ["0004711", "ELRN-DSGVO-01", "0004712"], "id", {}),
    ("course_idnumber", ["SAF-101", "GDPR-200", "SAF-101", "SAF-101"], "id", {}),
    ("userid", pa.array([1042, 1043, 1044], pa.int64()), "id", {}),
    ("User Email", ["a.b@example.com", "c@example.org", "N/A"], "email", {}),
    (
        "Completion Date",
        ["03/14/2024 02:05 PM", "01/08/2024 09:30 AM", "12/31/2023 11:59 PM"],
        "timestamp",
        {"format": "%m/%d/%Y %I:%M %p"},
    ),
    (
        "Completed On",
        ["2024-05-14T09:12:33-07:00", "2024-06-03", "2024-08-19 14:05"],
        "timestamp",
        {"format": ISO},
    ),
    (
        "Completion Date",
        ["14.03.2024 10:30 +0100", "02.04.2024 16:45 +0200"],
        "timestamp",
        {"format": "%d.%m.%Y %H:%M %z"},
    ),
    (
        "Completed",
        ["25/03/2024 10:00", "31/12/2023 08:15"],
        "timestamp",
        {"format": "%d/%m/%Y %H:%M"},
    ),
    (
        "timemodified",
        pa.array([1709288400, 1709560931], pa.int64()),
        "timestamp",
        {"format": "epoch_s"},
    ),
    ("completed_ms", ["1709288400000", "1709560931250"], "timestamp", {"format": "epoch_ms"}),
    ("Completion Date", pa.array([45366.5, 45000.25]), "timestamp", {"format": "excel_serial"}),
    (
        "finished",
        pa.array([datetime(2024, 3, 1, 10)], pa.timestamp("us")),
        "timestamp",
        {"format": "typed"},
    ),
    ("Duration", ["1h 30m", "45m", "PT1H15M", "1:30"], "duration", {"unit": None}),
    ("Duration", ["1h 30m", "45m", "2h", "90"], "duration", {"unit": "minutes"}),
    ("total_time", ["0000:45:30.00", "0001:05:12.34"], "duration", {"unit": None}),
    ("Training Hours", ["1.50", "0.75", "2"], "duration", {"unit": "hours"}),
    ("Total Hours", ["1,5", "0,75", "4"], "duration", {"unit": "hours"}),
    ("Minutes", pa.array([30, 45, 90], pa.int64()), "duration", {"unit": "minutes"}),
    ("Time Spent", ["3600", "5400", "7200"], "duration", {"unit": "seconds"}),
    ("Score", ["92", "87%", "N/A", "55"], "score", {"scale": "percent"}),
    ("score", ["8.7/10", "4.5/10", "0/10"], "score", {"scale": "percent"}),
    ("Score", ["0.87", "0.5", "1"], "score", {"scale": "fraction"}),
    ("Status", ["Completed", "Failed", "Completed", "In Progress"], "status", {}),
    ("lesson_status", ["passed", "failed", "completed", "incomplete"], "status", {}),
    (
        "Training Title",
        ["Code of Conduct 2024", "Information Security", "Forklift Safety", "Fire Drill"],
        "text",
        {},
    ),
    ("attempt", pa.array([1, 2, 1, 3], pa.int64()), "number", {}),
    ("Notes", ["", "  ", "NULL"], "empty", {}),
]


@pytest.mark.parametrize(("name", "values", "kind", "settings"), KINDS)
def test_kind_inference(
    name: str, values: pa.Array | list[str], kind: str, settings: dict[str, object]
) -> None:
    """Each column shape gets its kind and the converter setting (format, unit, scale) that fits."""
    array = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    profile = profile_column(name, array)
    assert profile.kind == kind
    for key, expected in settings.items():
        assert getattr(profile, key) == expected, key


def test_blanks_distinct_and_samples() -> None:
    """Blanks follow DESIGN §5 (empty, spaces, N/A, NULL); samples are distinct, in file order."""
    values = pa.array(["", "  ", "N/A", "null", " b ", "a", "b", "c", "d", "e", "f", None])
    profile = profile_column("Division", values)
    assert (profile.rows, profile.blanks, profile.distinct) == (12, 5, 6)
    assert profile.blank_rate == pytest.approx(5 / 12)
    assert profile.samples == ("b", "a", "c", "d", "e")


def test_nested_columns_are_shown_as_json_and_never_guessed() -> None:
    """Struct, list and map columns (Parquet) profile as ``nested`` with JSON samples: Arrow
    cannot count their distinct values, and no field can read them, so nothing is guessed."""
    columns = {
        "meta": pa.array([{"a": [1]}, None, {"a": [1]}, {"a": [2]}]),
        "tags": pa.array([["x"], [], None, ["x"]], pa.list_(pa.string())),
        "extra": pa.array([[("k", 1)], None, None, None], pa.map_(pa.string(), pa.int64())),
    }
    profiles = {name: profile_column(name, values) for name, values in columns.items()}
    assert {p.kind for p in profiles.values()} == {"nested"}
    meta, tags, extra = profiles["meta"], profiles["tags"], profiles["extra"]
    assert (meta.rows, meta.blanks, meta.distinct, meta.samples) == (
        4,
        1,
        2,
        ('{"a": [1]}', '{"a": [2]}'),
    )
    assert (tags.blanks, tags.distinct, tags.samples) == (1, 2, ('["x"]', "[]"))
    assert extra.samples == ('[["k", 1]]',)
    table = pa.table({"user_id": ["u1"] * 4, "course_tags": columns["tags"]})
    proposal = propose_mapping(profile_table(table), table.column_names)
    assert "course_tags" not in proposal  # not even as a commented passthrough


def test_timestamp_errors_count_rows_the_best_format_rejects() -> None:
    """The chosen format is the one with the fewest row errors; the rest are counted, not hidden."""
    good = [
        "03/14/2024 02:05 PM",
        "01/08/2024 09:30 AM",
        "02/02/2024 04:45 PM",
        "11/30/2024 11:00 AM",
    ]
    values = pa.array([*good, "25/03/2024 10:00 AM"] * 2)
    profile = profile_column("Completion Date", values)
    assert (profile.kind, profile.format, profile.errors) == ("timestamp", "%m/%d/%Y %I:%M %p", 2)


def test_day_month_ambiguity_is_flagged() -> None:
    """When every day is <= 12 the day/month order cannot be known: the profile says so."""
    profile = profile_column("Completion Date", pa.array(["03/04/2024", "05/06/2024"]))
    assert profile.kind == "timestamp"
    assert profile.note is not None and "day and month" in profile.note


def test_status_values_most_frequent_first() -> None:
    """Status-like columns keep their distinct values, most frequent first (for the result map)."""
    profile = profile_column(
        "Status", pa.array(["Failed", "Passed", "Passed", "Passed", "Failed", "x"])
    )
    assert profile.values == ("Passed", "Failed", "x")


def _sample_table(sample: Path, spec: MappingSpec) -> pa.Table:
    source = spec.source
    batch = next(
        iter_batches(
            sample, fmt=source.format, delimiter=source.delimiter, encoding=source.encoding
        )
    )
    return batch.table.filter(batch.read_errors.is_null())


def _header(sample: Path, spec: MappingSpec) -> list[str]:
    source = spec.source
    return read_header(
        sample, fmt=source.format, delimiter=source.delimiter, encoding=source.encoding
    )


@pytest.mark.parametrize(("sample", "mapping"), SAMPLE_MAPPINGS)
def test_proposal_matches_the_hand_written_mapping(sample: str, mapping: str) -> None:
    """On every sample the proposal parses, checks against the header and picks the same columns,
    formats, units, result map entries and filter values as the mapping written by hand."""
    reference = parse_mapping((MAPPINGS / mapping).read_text(encoding="utf-8"), {})
    path = SAMPLES / sample
    table = _sample_table(path, reference)
    source = reference.source
    fmt: Literal["csv", "parquet"] = "parquet" if sample.endswith(".parquet") else "csv"
    profile = profile_table(table, fmt=fmt, delimiter=source.delimiter, encoding=source.encoding)
    text = propose_mapping(profile, _header(path, reference))
    proposed = parse_mapping(text, {})
    check_columns(proposed, _header(path, reference), sample)

    assert proposed.user.column == reference.user.column
    ours, theirs = proposed.fields, reference.fields
    for name in ("learning_object_external_reference", "completed_at", "time_spent", "score"):
        assert getattr(ours, name).column == getattr(theirs, name).column, name
    assert ours.completed_at is not None and theirs.completed_at is not None
    assert ours.completed_at.format == theirs.completed_at.format
    assert ours.time_spent is not None and theirs.time_spent is not None
    assert ours.time_spent.unit == theirs.time_spent.unit
    assert ours.result is not None and theirs.result is not None
    assert ours.result.column == theirs.result.column
    assert {k: ours.result.map[k] for k in theirs.result.map} == theirs.result.map
    assert [f.column for f in proposed.filters] == [f.column for f in reference.filters]
    keep = {match_key_of(v) for v in proposed.filters[0].in_}
    assert keep == {match_key_of(v) for v in reference.filters[0].in_}


def test_proposal_without_recognisable_columns_still_parses() -> None:
    """With nothing to recognise the proposal still parses and checks, with TODOs to fill in."""
    table = pa.table({"alpha": ["x y", "z w"], "beta": ["one two", "three four"]})
    text = propose_mapping(profile_table(table), table.column_names)
    spec = parse_mapping(text, {})
    check_columns(spec, table.column_names, "t.csv")
    assert "TODO" in text
    assert spec.filters == []


def test_email_user_and_awkward_column_names() -> None:
    """Users found only by e-mail get ``resolve_by: email``; names YAML would misread are quoted."""
    table = pa.table(
        {
            "Email": ["a@example.com", "b@example.com"],
            "Course: Code #": ["C-1", "C-2"],
            "yes": ["2024-01-02", "2024-02-03"],
            "Status [final]": ["Passed", "Failed"],
        }
    )
    text = propose_mapping(profile_table(table), table.column_names)
    spec = parse_mapping(text, {})
    check_columns(spec, table.column_names, "t.csv")
    assert (spec.user.column, spec.user.resolve_by) == ("Email", "email")
    assert spec.fields.learning_object_external_reference.column == "Course: Code #"
    assert spec.fields.completed_at is not None and spec.fields.completed_at.column == "yes"
    assert spec.fields.result is not None
    assert spec.fields.result.map == {"Passed": "Pass", "Failed": "Fail"}


def test_proposal_is_commented_yaml_with_version_1() -> None:
    """The proposal is YAML text with ``version: 1`` and comments explaining each guess."""
    table = pa.table({"User ID": ["1", "2"], "Course ID": ["C1", "C2"]})
    text = propose_mapping(profile_table(table), table.column_names)
    assert yaml.safe_load(text)["version"] == 1
    assert "# id, 0% blank" in text


def test_column_profile_detail_names_the_setting() -> None:
    """The inspect table's 'format / unit' cell says what the converter will be told."""
    stamp = ColumnProfile("d", "timestamp", 1, 0, 1, ("x",), format=ISO)
    spent = ColumnProfile("t", "duration", 1, 0, 1, ("x",), unit="hours")
    assert (stamp.detail, spent.detail) == ("ISO 8601", "bare numbers in hours")
