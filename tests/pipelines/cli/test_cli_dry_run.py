"""``lms-sync run --dry-run`` end to end on every shipped sample export, in-process via CliRunner.

Each sample (data/samples/, described in its README) holds realistic good rows and bad rows; the
expectations below pin every row's outcome, the exact request bodies, the dead-letter rows and the
report counts, so a change in any converter or in the run's bookkeeping shows up here.
"""

from __future__ import annotations

import csv
import json
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner, Result

from pipelines.cli.app import app
from pipelines.output.deadletter import DL_COLUMNS
from transforms.keys import key_of

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "data" / "samples"
MAPPINGS = ROOT / "config" / "mappings"
ACCOUNT = "acct-5f2c9e71"
HEX32 = re.compile(r"[0-9a-f]{32}")
OUTCOMES = ("delivered", "would_send", "duplicate", "skipped", "invalid", "failed", "pending")
# Variables that would change what the CLI does if the developer's shell had them set.
CLEAN_ENV: dict[str, str | None] = {
    "STACKONE_ACCOUNT_ID": ACCOUNT,
    "PREFECT_API_URL": None,
    "STACKONE_BASE_URL": None,
}


@dataclass(frozen=True)
class Expected:
    """What one sample must produce."""

    source: str
    mapping: str
    outcomes: dict[str, int]
    reasons: dict[str, int]
    deadletters: dict[int, str]  # _dl_source_row -> _dl_error_code
    bodies: dict[int, tuple[str, dict[str, Any]]]  # source_row -> (user_id, body)
    formula_rows: dict[int, str] = field(default_factory=dict)  # row -> column holding "=…"
    encoding: str = "utf-8-sig"
    delimiter: str = ","

    @property
    def header(self) -> list[str]:
        """The sample's columns, read with the standard library (not with lms-sync's reader)."""
        path = SAMPLES / self.source
        if path.suffix == ".parquet":
            return list(pq.read_schema(path).names)
        with path.open(encoding=self.encoding, newline="") as handle:
            return next(csv.reader(handle, delimiter=self.delimiter))


def body(
    lo: str,
    at: str,
    time_spent: str | None,
    result: tuple[str, str],
    score: tuple[float, str] | None,
    passthrough: dict[str, Any],
) -> dict[str, Any]:
    """A request body as the API receives it: §3 field order, null fields left out."""
    out: dict[str, Any] = {"learning_object_external_reference": lo, "completed_at": at}
    if time_spent is not None:
        out["time_spent"] = time_spent
    out["result"] = {"value": result[0], "source_value": result[1]}
    if score is not None:
        out["score"] = {"percentage": score[0], "raw_value": score[1]}
    out["passthrough"] = passthrough
    return out


def csod(title: str, kind: str, division: str) -> dict[str, str]:
    """Cornerstone passthrough."""
    return {"Training Title": title, "Training Type": kind, "Division": division}


def wd(content: str, kind: str, org: str) -> dict[str, str]:
    """Workday passthrough."""
    return {
        "Learning Content": content,
        "Learning Content Type": kind,
        "Supervisory Organization": org,
    }


def sf(kind: str, title: str, grade: str | None = None) -> dict[str, str]:
    """SuccessFactors passthrough (a blank Grade is left out)."""
    return {"Item Type": kind, "Item Title": title} | ({"Grade": grade} if grade else {})


def scorm(name: str, attempt: int) -> dict[str, Any]:
    """Moodle passthrough: the Parquet int64 ``attempt`` stays a JSON number."""
    return {"scorm_name": name, "attempt": attempt}


# The tables below are read row by row against data/samples/README.md: one row per line, so the
# formatter is off and the line-length rule is waived for this file (see the ruff noqa at the top).
# fmt: off
LO = "5e0c3f9a-2b1d-4c6e-9f47-1a2b3c4d5e0"
PASS, FAIL = ("Pass", "Completed"), ("Fail", "Failed")
COC, ISA, ABC, FORK = ("Code of Conduct 2024", "Online Course"), ("Information Security Awareness", "Online Course"), ("Anti-Bribery and Corruption Assessment", "Test"), ("Forklift Safety", "Session")
CSOD_LINK = f"https://acme.csod.com/ui/lms-learning-details/app/course/{LO}1"
CORNERSTONE = Expected(
    source="cornerstone_transcript.csv",
    mapping="cornerstone_transcript.yaml",
    outcomes={"would_send": 10, "duplicate": 2, "skipped": 4, "invalid": 8},
    reasons={"duplicate_in_file": 2, "future_timestamp": 1, "invalid_duration": 1, "invalid_timestamp": 2,
             "invalid_user": 1, "malformed_row": 2, "missing_required": 1},
    deadletters={7: "missing_required", 8: "invalid_timestamp", 9: "future_timestamp", 10: "invalid_duration",
                 11: "malformed_row", 13: "invalid_timestamp", 23: "invalid_user", 24: "malformed_row"},
    bodies={
        # 2:05 PM New York on 14 March 2024 is EDT (UTC-4); January is EST (UTC-5); N/A omitted.
        1: ("0041235", body(LO + "1", "2024-03-14T18:05:00.000Z", "PT1H30M", PASS, (92, "92"), csod(*COC, "Sales"))),
        2: ("0041236", body(LO + "2", "2024-01-08T14:30:00.000Z", "PT45M", PASS, None, csod(*ISA, "Operations"))),
        3: ("0041237", body(LO + "4", "2024-02-02T21:45:00.000Z", "PT30M", FAIL, (55, "55"), csod(*ABC, "Finance"))),
        # Exempt passes the filter but is not in the result map: delivered as unmapped_value.
        6: ("0041240", body(LO + "5", "2024-04-01T12:00:00.000Z", None, ("unmapped_value", "Exempt"), None, csod("Harassment Prevention for Managers", "Curriculum", "Legal"))),
        # A formula in a passthrough column travels as plain JSON text.
        12: ("0041246", body(LO + "1", "2024-03-05T18:20:00.000Z", "PT1H30M", PASS, (85, "85"), csod(f'=HYPERLINK("{CSOD_LINK}","Code of Conduct 2024")', "Online Course", "Marketing"))),
        # 02:30 on 10 March 2024 does not exist in New York: read with the offset before (EST).
        15: ("0041248", body(LO + "3", "2024-03-10T07:30:00.000Z", "PT2H", PASS, (88.5, "88.5"), csod(*FORK, "Operations"))),
        # 01:30 on 3 November 2024 happens twice: the first one (EDT) counts.
        16: ("0041249", body(LO + "3", "2024-11-03T05:30:00.000Z", "PT15M", PASS, (100, "100"), csod(*FORK, "Operations"))),
        17: ("0041250", body(LO + "1", "2024-06-30T21:59:00.000Z", None, PASS, None, csod(*COC, "Finance"))),
        19: ("0041237", body(LO + "4", "2024-02-09T15:10:00.000Z", "PT30M", PASS, (85, "85"), csod(*ABC, "Finance"))),
        22: ("0041253", body(LO + "1", "2024-07-04T04:00:00.000Z", "PT1H30M", PASS, (87, "87%"), csod(*COC, "Sales"))),
    },
    formula_rows={13: "Training Title"},
)

WD_LINK = "https://wd3.myworkday.com/acme/d/inst/15$123/9905$101.htmld"
PRIVACY, SECURE, RESPECT = ("Data Privacy Essentials", "Digital Course"), ("Secure Coding", "Digital Course"), ("Respect at Work", "Digital Course")
SALES, FIN, ENG, HR = "Sales EMEA (Jordan Blake)", "Finance (Lena Park)", "Engineering (Kim Lau)", "HR (Pat Reyes)"
WORKDAY = Expected(
    source="workday_learning.csv",
    mapping="workday_learning.yaml",
    outcomes={"would_send": 10, "duplicate": 1, "skipped": 3, "invalid": 6},
    reasons={"duplicate_in_file": 1, "future_timestamp": 1, "invalid_duration": 1, "invalid_score": 1,
             "invalid_timestamp": 1, "malformed_row": 1, "missing_required": 1},
    deadletters={8: "missing_required", 9: "invalid_timestamp", 10: "future_timestamp", 11: "invalid_duration",
                 12: "malformed_row", 14: "invalid_score"},
    bodies={
        1: ("21001", body("COURSE-000101", "2024-05-14T16:12:33.000Z", "PT1H30M", PASS, (88, "88"), wd(*PRIVACY, SALES))),
        # Date only: midnight in the tenant's zone (PDT, UTC-7).
        2: ("21002", body("COURSE-000102", "2024-06-03T07:00:00.000Z", "PT45M", PASS, None, wd("Expense Policy Refresher", "Digital Course", FIN))),
        3: ("21003", body("COURSE-000103", "2024-04-22T22:00:00.000Z", "PT2H", ("Fail", "Not Completed"), (40, "40"), wd("Warehouse Fire Safety", "Blended Course", "Operations (Sam Cole)"))),
        6: ("21006", body("COURSE-000105", "2024-03-01T08:00:00.000Z", None, ("unmapped_value", "Waived"), None, wd(*SECURE, ENG))),
        # A bare number is read in the mapping's unit (minutes).
        7: ("21007", body("COURSE-000105", "2024-05-02T10:00:00.000Z", "PT1H30M", PASS, None, wd(*SECURE, ENG))),
        13: ("21013", body("COURSE-000101", "2024-05-20T20:45:00.000Z", "PT1H30M", PASS, (79, "79"), wd(f'=HYPERLINK("{WD_LINK}";"Data Privacy Essentials")', "Digital Course", "Legal (Ira Stone)"))),
        # Status matched case-insensitively, source_value keeps the original; decimal comma.
        16: ("21015", body("COURSE-000109", "2024-07-01T06:30:00.000Z", "PT1H15M", ("Pass", "COMPLETED"), (87.5, "87,5"), wd(*RESPECT, HR))),
        # Naive 01:30 on the fall-back night in Los Angeles: the first occurrence (PDT).
        17: ("21016", body("COURSE-000109", "2024-11-03T08:30:00.000Z", "PT1H15M", PASS, (91, "91"), wd(*RESPECT, HR))),
        19: ("21018", body("COURSE-000104", "2024-08-19T21:05:00.000Z", "PT20M", PASS, None, wd("Negotiation Skills", "Instructor-Led", SALES))),
        # Milliseconds kept; clock H:MM is hours:minutes.
        20: ("21019", body("COURSE-000101", "2024-09-09T16:00:00.250Z", "PT1H30M", PASS, (100, "100"), wd(*PRIVACY, FIN))),
    },
    formula_rows={14: "Learning Content"},
    delimiter=";",
)

SAFETY = "Arbeitsschutz \N{EN DASH} Unterweisung für Büroarbeitsplätze"
DSGVO = "Datenschutz-Grundverordnung (DSGVO) Basis"
FIRE = "Brandschutzhelfer Ausbildung"
SF_LINK = "https://performancemanager5.successfactors.eu/sf/learning?destUrl=item%3D0004713"
COMPLETE = ("Pass", "COMPLETE")
SUCCESSFACTORS = Expected(
    source="successfactors_learning_history.csv",
    mapping="successfactors_learning_history.yaml",
    outcomes={"would_send": 8, "duplicate": 1, "skipped": 3, "invalid": 6},
    reasons={"duplicate_in_file": 1, "future_timestamp": 1, "invalid_duration": 1, "invalid_score": 1,
             "invalid_timestamp": 1, "malformed_row": 1, "missing_required": 1},
    deadletters={7: "missing_required", 8: "invalid_timestamp", 9: "future_timestamp", 10: "invalid_duration",
                 11: "malformed_row", 13: "invalid_score"},
    bodies={
        # The explicit +0100 wins over Europe/Berlin; "1,5" hours; Item ID keeps its zeros.
        1: ("100234", body("0004711", "2024-03-14T09:30:00.000Z", "PT1H30M", COMPLETE, (85, "85"), sf("COURSE", SAFETY, "Bestanden"))),
        2: ("100235", body("ELRN-DSGVO-01", "2024-04-02T14:45:00.000Z", "PT45M", COMPLETE, (92.5, "92,5"), sf("ONLINE", DSGVO, "Bestanden"))),
        3: ("100236", body("0004712", "2024-02-20T12:00:00.000Z", "PT4H", ("Fail", "FAILED"), (45, "45"), sf("COURSE", FIRE, "Nicht bestanden"))),
        6: ("100239", body("0004714", "2024-03-05T08:00:00.000Z", "PT3H", ("unmapped_value", "ATTENDED"), None, sf("COURSE", "Führungskräfte-Workshop Feedback"))),
        12: ("100245", body("0004713", "2024-06-10T13:15:00.000Z", "PT8H", COMPLETE, (98, "98"), sf("COURSE", f'=HYPERLINK("{SF_LINK}","Erste Hilfe Grundkurs")', "Bestanden"))),
        15: ("100247", body("0004712", "2024-10-31T22:30:00.000Z", "PT2H", ("Pass", "COURSE-COMPLETE"), (100, "100"), sf("COURSE", FIRE, "Bestanden"))),
        17: ("100249", body("ELRN-DSGVO-01", "2024-07-01T06:00:00.000Z", "PT15M", ("Pass", "complete"), None, sf("ONLINE", DSGVO))),
        # Leap day; "NULL" hours and a blank score are omitted.
        18: ("100250", body("0004711", "2024-02-29T11:00:00.000Z", None, COMPLETE, None, sf("COURSE", SAFETY))),
    },
    formula_rows={13: "Item Title"},
    encoding="cp1252",
)

BASICS, GDPR = "Workplace Safety Basics", "GDPR for Staff"
FIRE_DRILL = '=HYPERLINK("https://moodle.example.org/mod/scorm/view.php?id=77","Fire Drill 2024")'
MOODLE = Expected(
    source="moodle_scorm_tracks.parquet",
    mapping="moodle_scorm_tracks.yaml",
    outcomes={"would_send": 6, "duplicate": 1, "skipped": 3, "invalid": 6},
    reasons={"duplicate_in_file": 1, "future_timestamp": 1, "invalid_duration": 2, "invalid_score": 1,
             "invalid_user": 1, "missing_required": 1},
    deadletters={7: "missing_required", 8: "future_timestamp", 9: "invalid_duration", 10: "invalid_score",
                 12: "invalid_duration", 14: "invalid_user"},
    bodies={
        # Integer userid leaves as a string; SCORM 1.2 session time; 8.7/10 is 87 %.
        1: ("1042", body("SAF-101", "2024-03-01T10:20:00.000Z", "PT45M30S", ("Pass", "passed"), (87, "8.7/10"), scorm(BASICS, 1))),
        2: ("1043", body("SAF-101", "2024-03-04T14:02:11.000Z", "PT1H5M12.34S", ("Fail", "failed"), (45, "4.5/10"), scorm(BASICS, 1))),
        3: ("1044", body("GDPR-200", "2024-04-15T08:45:00.000Z", "PT20M", ("unmapped_value", "completed"), None, scorm(GDPR, 2))),
        11: ("1052", body("FIRE-110", "2024-05-08T09:30:00.000Z", "PT25M", ("Pass", "passed"), (95, "9.5/10"), scorm(FIRE_DRILL, 1))),
        15: ("1055", body("GDPR-200", "2024-05-11T06:00:00.000Z", "PT12H", ("Pass", "passed"), (100, "10/10"), scorm(GDPR, 1))),
        16: ("1056", body("SAF-101", "2024-05-12T12:00:00.000Z", "PT0S", ("Fail", "failed"), (0, "0/10"), scorm(BASICS, 2))),
    },
    formula_rows={12: "scorm_name"},
)
# fmt: on

ALL = {e.mapping.removesuffix(".yaml"): e for e in (CORNERSTONE, WORKDAY, SUCCESSFACTORS, MOODLE)}


@dataclass(frozen=True)
class Run:
    """One finished CLI invocation and its run folder."""

    expected: Expected
    result: Result
    folder: Path
    source: Path


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """Run ``lms-sync ARGS`` in-process with a controlled environment."""
    return CliRunner().invoke(app, list(args), env={**CLEAN_ENV, **(env or {})})


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """Dry runs of the samples, each run once per module and shared (the tests only read them)."""
    done: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in done:
            expected = ALL[name]
            folder = tmp_path_factory.mktemp(name) / "run"
            source = SAMPLES / expected.source
            result = invoke(
                "run",
                str(source),
                "--mapping",
                str(MAPPINGS / expected.mapping),
                "--dry-run",
                "--out",
                str(folder),
            )
            done[name] = Run(expected, result, folder, source)
        return done[name]

    return get


@pytest.fixture(params=sorted(ALL))
def run(request: pytest.FixtureRequest, dry_runs: Callable[[str], Run]) -> Run:
    """The dry run of each sample in turn."""
    return dry_runs(request.param)


def payloads(run: Run) -> dict[int, dict[str, Any]]:
    """payloads.jsonl parsed, by source row (each line must be one JSON object)."""
    lines = (run.folder / "payloads.jsonl").read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in lines]
    rows = [item["source_row"] for item in parsed]
    assert len(rows) == len(set(rows)), "a source row appears twice in payloads.jsonl"
    return {item["source_row"]: item for item in parsed}


def deadletter_parquet(run: Run) -> dict[int, dict[str, Any]]:
    """deadletter.parquet rows by _dl_source_row."""
    table = pq.read_table(run.folder / "deadletter.parquet")
    return {row["_dl_source_row"]: row for row in table.to_pylist()}


def deadletter_csv(run: Run) -> tuple[list[str], dict[int, dict[str, str]]]:
    """deadletter.csv header and rows by _dl_source_row."""
    with (run.folder / "deadletter.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = {int(row["_dl_source_row"]): row for row in reader}
        return list(reader.fieldnames or []), rows


# --- every sample -----------------------------------------------------------------------------


def test_exit_code_is_1_when_rows_are_dead_lettered(run: Run) -> None:
    """Every sample has invalid rows, so the dry run exits 1 (not 0, not a crash)."""
    assert run.result.exception is None or isinstance(run.result.exception, SystemExit)
    assert run.result.exit_code == 1, run.result.output


def test_report_counts_exactly(run: Run) -> None:
    """report.json counts each outcome and reason exactly, and the outcomes add up to rows read."""
    report = json.loads((run.folder / "report.json").read_text(encoding="utf-8"))
    expected = run.expected
    rows_read = sum(expected.outcomes.values())
    assert report["mode"] == "dry_run"
    assert report["sources"] == [str(run.source)]
    assert report["rows_read"] == rows_read
    assert report["outcomes"] == {name: expected.outcomes.get(name, 0) for name in OUTCOMES}
    assert sum(report["outcomes"].values()) == report["rows_read"]
    assert report["reasons"] == expected.reasons
    assert report["requests"]["sent"] == 0
    assert report["deadletter"] == {
        "csv": str(run.folder / "deadletter.csv"),
        "parquet": str(run.folder / "deadletter.parquet"),
    }


def test_payload_bodies_are_exact(run: Run) -> None:
    """Each would_send row has exactly the expected body (UTC millis, canonical time, omissions)."""
    lines = payloads(run)
    assert sorted(lines) == sorted(run.expected.bodies)
    for row, (user, body) in run.expected.bodies.items():
        line = lines[row]
        assert line["account_id"] == ACCOUNT
        assert line["user_id"] == user
        assert line["source_file"] == str(run.source)
        assert line["body"] == body, f"row {row}"
        assert list(line["body"]) == list(body), f"row {row}: fields out of §3 order"
        score = line["body"].get("score")
        if score is not None:
            assert isinstance(score["percentage"], int | float)


def test_payload_keys_are_the_idempotency_keys(run: Run) -> None:
    """Each payload key is 32 lowercase hex and equals key_of(account, user, lo, completed_at)."""
    for row, line in payloads(run).items():
        body = line["body"]
        key = line["key"]
        assert HEX32.fullmatch(key), f"row {row}: {key!r}"
        assert key == key_of(
            ACCOUNT,
            line["user_id"],
            body["learning_object_external_reference"],
            body.get("completed_at"),
        )


def test_deadletter_parquet_rows(run: Run) -> None:
    """deadletter.parquet: original columns then _dl_*, exact codes at exact rows, stage right."""
    table = pq.read_table(run.folder / "deadletter.parquet")
    assert table.column_names == run.expected.header + [name for name, _ in DL_COLUMNS]
    rows = deadletter_parquet(run)
    assert {row: item["_dl_error_code"] for row, item in rows.items()} == run.expected.deadletters
    for row, item in rows.items():
        malformed = item["_dl_error_code"] == "malformed_row"
        assert item["_dl_stage"] == ("read" if malformed else "validate")
        assert item["_dl_source_file"] == str(run.source)
        assert item["_dl_attempts"] == 0
        assert item["_dl_http_status"] is None
        errors = json.loads(item["_dl_errors"])
        assert errors[0]["code"] == item["_dl_error_code"], f"row {row}"
        assert errors[0]["message"] == item["_dl_error_message"]
        if not malformed:
            assert errors[0]["field"] == item["_dl_error_field"]


def test_deadletter_csv_neutralises_formulas_but_parquet_keeps_them(run: Run) -> None:
    """A formula-looking value gets a leading ' in deadletter.csv and stays as is in Parquet."""
    header, csv_rows = deadletter_csv(run)
    assert header == run.expected.header + [name for name, _ in DL_COLUMNS]
    assert set(csv_rows) == set(run.expected.deadletters)
    parquet_rows = deadletter_parquet(run)
    assert run.expected.formula_rows
    for row, column in run.expected.formula_rows.items():
        raw = parquet_rows[row][column]
        assert raw.startswith("=HYPERLINK(")
        assert csv_rows[row][column] == "'" + raw
    for row, item in csv_rows.items():
        for column, value in item.items():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (row, column, value)


def test_run_files_are_owner_only(run: Run) -> None:
    """The run's files hold personal data: created 0600 (folder 0700)."""
    for name in ("payloads.jsonl", "deadletter.csv", "deadletter.parquet", "report.json"):
        assert stat.S_IMODE((run.folder / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(run.folder.stat().st_mode) == 0o700


# --- sample-specific details ------------------------------------------------------------------


def test_cornerstone_deadletter_keeps_original_values(dry_runs: Callable[[str], Run]) -> None:
    """Dead-letter rows keep the source's text: leading zeros, the bad value, the other columns."""
    rows = deadletter_parquet(dry_runs("cornerstone_transcript"))
    assert rows[7]["User ID"] == "0041241"
    assert rows[7]["LO Object ID"] in ("", None)
    assert rows[8]["Transcript Completed Date"] == "25/03/2024 10:00 AM"
    assert rows[10]["Training Hours"] == "-1.00"
    assert rows[10]["_dl_error_field"] == "time_spent"
    assert rows[23]["User Full Name"] == "Former Employee"
    assert rows[23]["_dl_error_field"] == "user"


def test_cornerstone_row_with_two_problems_lists_both(dry_runs: Callable[[str], Run]) -> None:
    """A bad date and an out-of-range score: the date is reported first, _dl_errors has both."""
    rows = deadletter_parquet(dry_runs("cornerstone_transcript"))
    row = rows[13]
    assert (row["_dl_error_code"], row["_dl_error_field"]) == ("invalid_timestamp", "completed_at")
    assert "TBD" in row["_dl_error_message"]
    errors = json.loads(row["_dl_errors"])
    assert [(e["code"], e["field"]) for e in errors] == [
        ("invalid_timestamp", "completed_at"),
        ("invalid_score", "score"),
    ]
    assert "105" in errors[1]["message"]


def test_malformed_records_are_numbered_by_record_not_line(dry_runs: Callable[[str], Run]) -> None:
    """Ragged records are malformed_row at their record number; the message gives the line."""
    rows = deadletter_parquet(dry_runs("cornerstone_transcript"))
    # Record 11 sits on line 13 (header + a blank line before it); it has one field too many.
    assert rows[11]["_dl_error_message"] == "line 13: expected 11 fields, found 12"
    assert rows[11]["User ID"] == "0041245"
    assert json.loads(rows[11]["_dl_errors"]) == [
        {"code": "malformed_row", "field": None, "message": "line 13: expected 11 fields, found 12"}
    ]
    # The export was cut off mid-record (no final newline): four fields, the rest null.
    assert rows[24]["_dl_error_message"] == "line 26: expected 11 fields, found 4"
    assert rows[24]["User Email"] == "ava.king@example.com"
    assert rows[24]["LO Object ID"] is None


def test_malformed_row_has_no_error_field(dry_runs: Callable[[str], Run]) -> None:
    """A malformed record's _dl_error_field is null, as in its _dl_errors entry."""
    rows = deadletter_parquet(dry_runs("cornerstone_transcript"))
    assert rows[11]["_dl_error_field"] is None
    assert rows[24]["_dl_error_field"] is None


def test_successfactors_cp1252_text_arrives_as_unicode(dry_runs: Callable[[str], Run]) -> None:
    """cp1252 bytes (ü, ß, en dash) are decoded: dead-letter files hold the real characters."""
    _, rows = deadletter_csv(dry_runs("successfactors_learning_history"))
    assert rows[7]["Last Name"] == "Krämer"
    assert rows[9]["Item Title"] == SAFETY
    assert rows[10]["Total Hours"] == "'-0,5"  # a leading minus is neutralised too
    assert rows[13]["Score"] == "'-10"


def test_moodle_deadletter_parquet_keeps_types(dry_runs: Callable[[str], Run]) -> None:
    """The Parquet dead-letter keeps the source's int64 columns (null where the source had null)."""
    table = pq.read_table(dry_runs("moodle_scorm_tracks").folder / "deadletter.parquet")
    assert str(table.schema.field("userid").type) == "int64"
    assert str(table.schema.field("timemodified").type) == "int64"
    rows = {r["_dl_source_row"]: r for r in table.to_pylist()}
    assert rows[14]["userid"] is None
    assert rows[8]["timemodified"] == 1936951200
    assert rows[9]["total_time"] == "-0000:10:00.00"


def test_json_flag_prints_the_report(tmp_path: Path) -> None:
    """--json prints report.json's content to stdout."""
    folder = tmp_path / "run"
    result = invoke(
        "run",
        str(SAMPLES / WORKDAY.source),
        "-m",
        str(MAPPINGS / WORKDAY.mapping),
        "--dry-run",
        "--out",
        str(folder),
        "--json",
    )
    assert result.exit_code == 1
    printed = json.loads(result.stdout)
    written = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert (
        printed["outcomes"]
        == written["outcomes"]
        == {name: WORKDAY.outcomes.get(name, 0) for name in OUTCOMES}
    )
    assert printed["run_id"] == written["run_id"]


def test_clean_dry_run_exits_0(tmp_path: Path) -> None:
    """A file with only good rows exits 0 and still leaves two empty dead-letter files."""
    lines = (SAMPLES / CORNERSTONE.source).read_text(encoding="utf-8").splitlines()
    source = tmp_path / "clean.csv"
    source.write_text("\n".join(lines[:4]) + "\n", encoding="utf-8")
    folder = tmp_path / "run"
    result = invoke(
        "run",
        str(source),
        "-m",
        str(MAPPINGS / CORNERSTONE.mapping),
        "--dry-run",
        "--out",
        str(folder),
    )
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert report["rows_read"] == 3
    assert report["outcomes"]["would_send"] == 3
    assert report["reasons"] == {}
    assert pq.read_table(folder / "deadletter.parquet").num_rows == 0
    header, rows = deadletter_csv(Run(CORNERSTONE, result, folder, source))
    assert header[: len(CORNERSTONE.header)] == CORNERSTONE.header
    assert rows == {}
    assert len((folder / "payloads.jsonl").read_text(encoding="utf-8").splitlines()) == 3


def test_account_from_the_mapping_wins_over_the_environment(tmp_path: Path) -> None:
    """``account: {id: ${VAR}}`` in the mapping is used instead of STACKONE_ACCOUNT_ID."""
    spec = yaml.safe_load((MAPPINGS / WORKDAY.mapping).read_text(encoding="utf-8"))
    spec["account"] = {"id": "${EU_TENANT_ACCOUNT}"}
    mapping = tmp_path / "workday_eu.yaml"
    mapping.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    folder = tmp_path / "run"
    result = invoke(
        "run",
        str(SAMPLES / WORKDAY.source),
        "-m",
        str(mapping),
        "--dry-run",
        "--out",
        str(folder),
        env={"EU_TENANT_ACCOUNT": "acct-eu-0001"},
    )
    assert result.exit_code == 1
    for line in (folder / "payloads.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        assert item["account_id"] == "acct-eu-0001"
        assert item["key"] == key_of(
            "acct-eu-0001",
            item["user_id"],
            item["body"]["learning_object_external_reference"],
            item["body"]["completed_at"],
        )


# --- usage and mapping errors: exit 2, one line, nothing written ------------------------------


def error_lines(result: Result) -> list[str]:
    """The non-blank lines the CLI wrote to stderr."""
    return [line for line in result.stderr.splitlines() if line.strip()]


def edited_mapping(tmp_path: Path, name: str, edit: dict[str, Any]) -> Path:
    """A copy of a shipped mapping with ``fields`` entries replaced or added."""
    spec = yaml.safe_load((MAPPINGS / f"{name}.yaml").read_text(encoding="utf-8"))
    spec["fields"].update(edit)
    path = tmp_path / f"{name}_edited.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def test_unknown_field_exits_2_with_one_line_naming_it(tmp_path: Path) -> None:
    """A misspelt field fails before any row is read: exit 2, one line naming it, no run folder."""
    mapping = edited_mapping(
        tmp_path, "cornerstone_transcript", {"completion_date": {"column": "x"}}
    )
    folder = tmp_path / "run"
    result = invoke(
        "run",
        str(SAMPLES / CORNERSTONE.source),
        "-m",
        str(mapping),
        "--dry-run",
        "--out",
        str(folder),
    )
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert "fields.completion_date" in lines[0]
    assert "unknown key" in lines[0] and "completed_at" in lines[0]
    assert not folder.exists()


def test_missing_column_exits_2_naming_the_column(tmp_path: Path) -> None:
    """A mapping naming a column the export lacks: exit 2 naming the column and the file."""
    mapping = edited_mapping(tmp_path, "cornerstone_transcript", {"score": {"column": "Score"}})
    folder = tmp_path / "run"
    result = invoke(
        "run",
        str(SAMPLES / CORNERSTONE.source),
        "-m",
        str(mapping),
        "--dry-run",
        "--out",
        str(folder),
    )
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert "'Score'" in lines[0] and "fields.score.column" in lines[0]
    assert CORNERSTONE.source in lines[0]
    assert not folder.exists()


def test_delivery_without_api_key_exits_2_before_anything(tmp_path: Path) -> None:
    """A delivering run without STACKONE_API_KEY exits 2 naming it, before any file is written."""
    folder = tmp_path / "run"
    result = invoke(
        "run",
        str(SAMPLES / CORNERSTONE.source),
        "-m",
        str(MAPPINGS / CORNERSTONE.mapping),
        "--out",
        str(folder),
    )
    assert result.exit_code == 2
    assert "STACKONE_API_KEY" in result.stderr
    assert not folder.exists()


def test_no_account_anywhere_exits_2(tmp_path: Path) -> None:
    """Without STACKONE_ACCOUNT_ID and without account: in the mapping the run cannot start."""
    folder = tmp_path / "run"
    result = invoke(
        "run",
        str(SAMPLES / CORNERSTONE.source),
        "-m",
        str(MAPPINGS / CORNERSTONE.mapping),
        "--dry-run",
        "--out",
        str(folder),
        env={"STACKONE_ACCOUNT_ID": None},
    )
    assert result.exit_code == 2
    assert "STACKONE_ACCOUNT_ID" in result.stderr
    assert not folder.exists()


def test_unset_variable_in_mapping_exits_2_naming_it(tmp_path: Path) -> None:
    """``${VAR}`` with VAR unset is a mapping error naming VAR."""
    spec = yaml.safe_load((MAPPINGS / CORNERSTONE.mapping).read_text(encoding="utf-8"))
    spec["account"] = {"id": "${CSOD_ACCOUNT_ID}"}
    mapping = tmp_path / "with_account.yaml"
    mapping.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = invoke(
        "run",
        str(SAMPLES / CORNERSTONE.source),
        "-m",
        str(mapping),
        "--dry-run",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.exit_code == 2
    assert "CSOD_ACCOUNT_ID" in result.stderr and "not set" in result.stderr


def test_wrong_encoding_exits_2_with_a_hint(tmp_path: Path) -> None:
    """Reading the cp1252 SuccessFactors export as UTF-8 fails up front and suggests cp1252."""
    spec = yaml.safe_load((MAPPINGS / SUCCESSFACTORS.mapping).read_text(encoding="utf-8"))
    spec["source"]["encoding"] = "utf-8"
    mapping = tmp_path / "utf8.yaml"
    mapping.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = invoke(
        "run",
        str(SAMPLES / SUCCESSFACTORS.source),
        "-m",
        str(mapping),
        "--dry-run",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.exit_code == 2
    assert "cp1252" in result.stderr
    assert SUCCESSFACTORS.source in result.stderr


def test_missing_source_exits_2(tmp_path: Path) -> None:
    """A source path that does not exist is a usage error naming it."""
    missing = tmp_path / "nope.csv"
    result = invoke(
        "run",
        str(missing),
        "-m",
        str(MAPPINGS / CORNERSTONE.mapping),
        "--dry-run",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.exit_code == 2
    assert "nope.csv" in result.stderr


# --- check-mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL))
def test_check_mapping_ok_against_its_sample(name: str) -> None:
    """Each shipped mapping checks out alone and against its own sample's header."""
    expected = ALL[name]
    mapping = str(MAPPINGS / expected.mapping)
    alone = invoke("check-mapping", mapping)
    assert alone.exit_code == 0, alone.output
    assert "ok" in alone.stderr
    against = invoke("check-mapping", mapping, str(SAMPLES / expected.source))
    assert against.exit_code == 0, against.output
    assert "against 1 source(s)" in " ".join(against.stderr.split())


def test_check_mapping_against_the_wrong_export_names_the_column() -> None:
    """The Workday mapping against the Cornerstone export: exit 2 naming the first missing column."""
    result = invoke(
        "check-mapping", str(MAPPINGS / WORKDAY.mapping), str(SAMPLES / CORNERSTONE.source)
    )
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert "user.column" in lines[0] and "'Employee ID'" in lines[0]


def test_check_mapping_rejects_a_bad_mapping(tmp_path: Path) -> None:
    """check-mapping reports an unknown unit with the allowed ones and exits 2."""
    mapping = edited_mapping(
        tmp_path, "workday_learning", {"time_spent": {"column": "Duration", "unit": "mins"}}
    )
    result = invoke("check-mapping", str(mapping))
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert "fields.time_spent.unit" in lines[0]
    assert "seconds, minutes, hours, excel_days" in lines[0]


def test_check_mapping_needs_no_account() -> None:
    """Checking a mapping against a header does not need STACKONE_ACCOUNT_ID."""
    result = invoke(
        "check-mapping",
        str(MAPPINGS / MOODLE.mapping),
        str(SAMPLES / MOODLE.source),
        env={"STACKONE_ACCOUNT_ID": None},
    )
    assert result.exit_code == 0, result.output
