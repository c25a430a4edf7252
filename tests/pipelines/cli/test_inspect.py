"""``inspect``: profile each sample export, print the table and proposal, write a usable mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pipelines.cli.inspect_command import (
    detect_delimiter,
    detect_encoding,
    inspect_command,
    profile_file,
)
from pipelines.run.dryrun import dry_run
from pipelines.run.plan import load_mapping, plan_run
from pipelines.source.headers import read_header
from transforms.mapping import check_columns, parse_mapping

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "data" / "samples"
MAPPINGS = ROOT / "config" / "mappings"
SAMPLE_NAMES = [
    "cornerstone_transcript.csv",
    "workday_learning.csv",
    "successfactors_learning_history.csv",
    "moodle_scorm_tracks.parquet",
]

app = typer.Typer()
app.command("inspect")(inspect_command)
app.command("unused")(lambda: None)  # two commands: the CLI keeps the "inspect" sub-command name


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["inspect", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_inspect_sample_prints_table_and_writes_a_mapping_that_runs(
    name: str, tmp_path: Path
) -> None:
    """Exit 0, one table row per column, the YAML printed; the written mapping dry-runs with the
    same outcome counts as the hand-written mapping in config/mappings."""
    sample = SAMPLES / name
    written = tmp_path / "proposed.yaml"
    code, out, err = _invoke(str(sample), "--write", str(written))
    assert code == 0, err
    reference = load_mapping(
        MAPPINGS / name.replace(".csv", ".yaml").replace(".parquet", ".yaml"), {}
    )
    source = reference.source
    header = read_header(sample, delimiter=source.delimiter, encoding=source.encoding)
    table_part = out.split("version: 1")[0]
    assert "kind" in table_part and "blank %" in table_part
    for column in header:
        assert column in table_part, column
    assert written.read_text(encoding="utf-8") in out

    spec = parse_mapping(written.read_text(encoding="utf-8"), {})
    check_columns(spec, header, name)
    proposed = dry_run(
        plan_run([str(sample)], spec, "acct-test"), out=tmp_path / "proposed", target="dry-run"
    )
    by_hand = dry_run(
        plan_run([str(sample)], reference, "acct-test"), out=tmp_path / "by-hand", target="dry-run"
    )
    assert proposed.balanced
    valid = proposed.outcomes["would_send"] + proposed.outcomes["duplicate"]
    assert valid > proposed.outcomes["invalid"]
    assert dict(proposed.outcomes) == dict(by_hand.outcomes)


@pytest.mark.parametrize(
    ("name", "encoding", "delimiter"),
    [
        ("cornerstone_transcript.csv", "utf-8", ","),
        ("workday_learning.csv", "utf-8", ";"),
        ("successfactors_learning_history.csv", "cp1252", ","),
    ],
)
def test_csv_encoding_and_delimiter_are_detected(name: str, encoding: str, delimiter: str) -> None:
    """The cp1252 export is told from UTF-8 (BOM or not) and the delimiter is named."""
    sample = SAMPLES / name
    assert detect_encoding(sample) == encoding
    assert detect_delimiter(sample, encoding) == delimiter


def test_tab_delimited_latin1_file(tmp_path: Path) -> None:
    """A tab-separated file whose bytes are not cp1252 text is read as latin-1, tab shown as tab."""
    path = tmp_path / "export.csv"
    path.write_bytes(
        "User ID\tCourse ID\tStatus\n7\tC-1\tPassed \x81\n8\tC-2\tFailed\n".encode("latin-1")
    )
    code, out, err = _invoke(str(path))
    assert code == 0, err
    assert "delimiter tab, encoding latin-1" in out
    assert 'delimiter: "\\t"' in out
    assert parse_mapping(out[out.index("# Proposed") :], {}).source.delimiter == "\t"


def test_rows_limits_the_sample(tmp_path: Path) -> None:
    """``--rows N`` profiles the first N records only."""
    profile, _, malformed = profile_file(SAMPLES / "cornerstone_transcript.csv", rows=5)
    assert (profile.rows, malformed) == (5, 0)
    code, out, _ = _invoke(str(SAMPLES / "workday_learning.csv"), "--rows", "3")
    assert code == 0
    assert "3 rows sampled" in out


def test_write_never_overwrites(tmp_path: Path) -> None:
    """An existing --write target (maybe a hand-edited mapping) is left alone: exit 2."""
    target = tmp_path / "mine.yaml"
    target.write_text("keep me\n", encoding="utf-8")
    code, _, err = _invoke(str(SAMPLES / "workday_learning.csv"), "--write", str(target))
    assert code == 2
    assert "already exists" in err
    assert target.read_text(encoding="utf-8") == "keep me\n"


def test_unreadable_source_is_a_usage_error(tmp_path: Path) -> None:
    """A missing file or unknown extension is one error line and exit 2, no traceback."""
    code, _, err = _invoke(str(tmp_path / "nope.xlsx"))
    assert code == 2
    assert "error:" in err and "nope.xlsx" in err


def test_header_only_file(tmp_path: Path) -> None:
    """A file with a header and no rows still gets a proposal that parses (every column empty)."""
    path = tmp_path / "empty.csv"
    path.write_text("User ID,Course ID,Completed On\n", encoding="utf-8")
    code, out, err = _invoke(str(path))
    assert code == 0, err
    assert "0 rows sampled" in out
    assert parse_mapping(out[out.index("# Proposed") :], {}).user.column == "User ID"


def test_help_has_an_example() -> None:
    """``--help`` explains the command and shows an example invocation."""
    result = CliRunner().invoke(app, ["inspect", "--help"])
    assert result.exit_code == 0
    assert "lms-sync inspect data/samples/workday_learning.csv" in result.stdout
    assert "--write" in result.stdout and "--rows" in result.stdout
