"""The five newer flavours (Docebo, TalentLMS, Absorb, LinkedIn Learning, xAPI) end to end.

Each sample (data/samples/, described row by row in its README) gets the same checks as the first
four in test_cli_dry_run: exact outcome counts, request bodies, dead-letter rows, formula
neutralising; and ``inspect`` on each of the nine samples proposes that sample's own mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import tests.pipelines.cli.test_cli_dry_run as dry
from pipelines.cli.app import app
from tests.pipelines.cli.test_cli_dry_run import (
    ACCOUNT,
    HEX32,
    MAPPINGS,
    SAMPLES,
    Expected,
    Run,
    body,
)
from transforms.keys import key_of

# The tables below are read row by row against data/samples/README.md: one row per line.
# fmt: off
PASSED = ("Pass", "Completed")


def docebo(name: str, kind: str, branch: str) -> dict[str, str]:
    """Docebo passthrough."""
    return {"Course Name": name, "Course Type": kind, "Branch": branch}


SAFETY, GDPR, LEAD = ("Workplace Safety Basics", "E-Learning"), ("GDPR for Staff", "E-Learning"), ("Leading Hybrid Teams", "Classroom")
DOCEBO_LINK = '=HYPERLINK("https://acme.docebosaas.com/learn/course/412/workplace-safety-basics","Workplace Safety Basics")'
DOCEBO = Expected(
    source="docebo_course_completion.csv",
    mapping="docebo_course_completion.yaml",
    outcomes={"would_send": 6, "duplicate": 1, "skipped": 4, "invalid": 7},
    reasons={"duplicate_in_file": 1, "future_timestamp": 1, "invalid_duration": 1, "invalid_score": 1,
             "invalid_timestamp": 1, "invalid_user": 1, "malformed_row": 1, "missing_required": 1},
    deadletters={6: "missing_required", 7: "invalid_timestamp", 8: "future_timestamp", 9: "invalid_duration",
                 10: "malformed_row", 12: "invalid_score", 15: "invalid_user"},
    bodies={
        # Rome wall time: CET (UTC+1) in January, CEST (UTC+2) from the end of March.
        1: ("ana.silva", body("SAF-101", "2024-03-14T13:05:33.000Z", "PT1H25M30S", PASSED, (92, "92"), docebo(*SAFETY, "Lisbon"))),
        2: ("ben.okafor", body("GDPR-200", "2024-01-08T08:30:00.000Z", "PT45M12S", PASSED, None, docebo(*GDPR, "Lagos"))),
        5: ("elena.bianchi", body("LEAD-300", "2024-04-02T14:00:00.000Z", "PT3H", PASSED, (78, "78"), docebo(*LEAD, "Milan"))),
        11: ("karin.vogel", body("SAF-101", "2024-03-05T12:20:00.000Z", "PT1H10M", PASSED, (85, "85"), docebo(DOCEBO_LINK, "E-Learning", "Berlin"))),
        # 02:30 on 31 March 2024 does not exist in Rome: read with the offset before (CET).
        16: ("nico.rossi", body("SAF-101", "2024-03-31T01:30:00.000Z", "PT55M", PASSED, (90, "90"), docebo(*SAFETY, "Rome"))),
        17: ("olga.petrova", body("LEAD-300", "2024-06-18T15:45:00.000Z", "PT12H30M", PASSED, (87.5, "87.50"), docebo(*LEAD, "Rome"))),
    },
    formula_rows={12: "Course Name"},
)


def talent(course: str, category: str, branch: str) -> dict[str, str]:
    """TalentLMS passthrough."""
    return {"Course": course, "Category": category, "Branch": branch}


FIRE, AML = ("Fire Safety Essentials", "Compliance"), ("Anti-Money Laundering", "Compliance")
TALENT_LINK = '=HYPERLINK("https://acme.talentlms.com/course/index/id:147","Fire Safety Essentials")'
TALENTLMS = Expected(
    source="talentlms_course_progress.csv",
    mapping="talentlms_course_progress.yaml",
    outcomes={"would_send": 6, "duplicate": 1, "skipped": 2, "invalid": 7},
    reasons={"duplicate_in_file": 1, "future_timestamp": 1, "invalid_duration": 1, "invalid_score": 1,
             "invalid_timestamp": 1, "invalid_user": 1, "malformed_row": 1, "missing_required": 1},
    deadletters={6: "missing_required", 7: "invalid_timestamp", 8: "future_timestamp", 9: "invalid_duration",
                 10: "malformed_row", 12: "invalid_score", 15: "invalid_user"},
    bodies={
        # "DD/MM/YYYY, HH:MM:SS" in Athens (EET, UTC+2); "1h 25m 30s"; "92%".
        1: ("1042", body("147", "2024-03-14T12:05:12.000Z", "PT1H25M30S", PASSED, (92, "92%"), talent(*FIRE, "Athens"))),
        2: ("1043", body("152", "2024-02-02T14:45:00.000Z", "PT45M10S", ("Fail", "Failed"), (55, "55%"), talent(*AML, "Athens"))),
        5: ("1046", body("160", "2024-04-05T06:10:00.000Z", "PT30M", PASSED, None, talent("Customer Service Basics", "Soft skills", "London"))),
        11: ("1052", body("147", "2024-03-05T11:20:00.000Z", "PT1H5M", PASSED, (85, "85%"), talent(TALENT_LINK, "Compliance", "Athens"))),
        # 03:30 on 27 October 2024 happens twice in Athens: the first one (EEST, UTC+3) counts.
        14: ("1054", body("147", "2024-10-27T00:30:00.000Z", "PT55M", PASSED, (100, "100%"), talent(*FIRE, "Athens"))),
        16: ("1055", body("152", "2024-02-29T21:59:59.000Z", "PT2H", PASSED, (100, "100%"), talent(*AML, "London"))),
    },
    formula_rows={12: "Course"},
)


def absorb(name: str, kind: str, department: str) -> dict[str, str]:
    """Absorb passthrough."""
    return {"Course Name": name, "Course Type": kind, "Department": department}


HAZCOM, LOTO = ("Hazard Communication", "Online Course"), ("Lockout Tagout", "Online Course")
ABSORB_LINK = '=HYPERLINK("https://acme.myabsorb.com/#/online-courses/6f1c2a7e-0d4b-4c1e-9a55-3f0e8b7d2c11","Hazard Communication")'
ABSORB = Expected(
    source="absorb_course_activity.csv",
    mapping="absorb_course_activity.yaml",
    outcomes={"would_send": 5, "duplicate": 1, "skipped": 3, "invalid": 8},
    reasons={"duplicate_in_file": 1, "future_timestamp": 1, "invalid_duration": 1, "invalid_score": 1,
             "invalid_timestamp": 1, "invalid_user": 2, "malformed_row": 1, "missing_required": 1},
    deadletters={6: "missing_required", 7: "invalid_timestamp", 8: "future_timestamp", 9: "invalid_duration",
                 10: "malformed_row", 12: "invalid_score", 14: "invalid_user", 15: "invalid_user"},
    bodies={
        # Users by e-mail (lower-cased); US wall time in Edmonton (MST UTC-7, MDT UTC-6).
        1: ("alice.wong@example.com", body("EHS-HAZCOM", "2024-03-14T20:05:00.000Z", "PT45M12S", ("Pass", "Complete"), (92, "92.00"), absorb(*HAZCOM, "Calgary Plant"))),
        2: ("bal.singh@example.com", body("EHS-LOTO", "2024-02-02T23:45:00.000Z", "PT1H10M", ("Fail", "Failed"), (60, "60.00"), absorb(*LOTO, "Calgary Plant"))),
        11: ("kate.macdonald@example.com", body("EHS-HAZCOM", "2024-03-05T20:20:00.000Z", "PT40M", ("Pass", "Complete"), (85, "85.00"), absorb(ABSORB_LINK, "Online Course", "Calgary Plant"))),
        # 2:30 AM on 10 March 2024 does not exist in Edmonton: read with the offset before (MST).
        16: ("owen.clark@example.com", body("EHS-LOTO", "2024-03-10T09:30:00.000Z", "PT58M30S", ("Pass", "Complete"), (100, "100.00"), absorb(*LOTO, "Calgary Plant"))),
        17: ("paula.white@example.com", body("EHS-WHMIS", "2024-06-03T23:00:00.000Z", "PT12H", ("Pass", "Complete"), None, absorb("WHMIS Refresher", "Curriculum", "Vancouver DC"))),
    },
    formula_rows={12: "Course Name"},
)


def linkedin(title: str, kind: str, provider: str = "LinkedIn") -> dict[str, str]:
    """LinkedIn Learning passthrough."""
    return {"Content Title": title, "Content Type": kind, "Content Provider": provider}


EXCEL = "Excel Essential Training (Microsoft 365)"
LINKEDIN_LINK = '=HYPERLINK("https://www.linkedin.com/learning/excel-essential-training-microsoft-365","Excel Essential Training (Microsoft 365)")'
LINKEDIN = Expected(
    source="linkedin_learning_activity.csv",
    mapping="linkedin_learning_activity.yaml",
    outcomes={"would_send": 6, "duplicate": 1, "skipped": 2, "invalid": 7},
    reasons={"duplicate_in_file": 1, "future_timestamp": 1, "invalid_duration": 2, "invalid_timestamp": 1,
             "invalid_user": 1, "malformed_row": 1, "missing_required": 1},
    deadletters={6: "missing_required", 7: "invalid_timestamp", 8: "future_timestamp", 9: "invalid_duration",
                 10: "malformed_row", 12: "invalid_duration", 14: "invalid_user"},
    bodies={
        # Dates only: midnight in Los Angeles (PST UTC-8 / PDT UTC-7); a constant "Completed" result.
        1: ("E10231", body("urn:li:lyndaCourse:2824089", "2024-03-14T07:00:00.000Z", "PT1H25M30S", PASSED, None, linkedin(EXCEL, "Course"))),
        2: ("E10232", body("urn:li:lyndaVideo:4450123", "2024-02-20T08:00:00.000Z", "PT4M30S", PASSED, None, linkedin("Git Essential Training", "Video"))),
        5: ("E10235", body("urn:li:lyndaLearningPath:5c86ea2b498e8b2e6e3fe6d4", "2024-05-02T07:00:00.000Z", "PT12H5M", PASSED, None, linkedin("Become a Data Analyst", "Learning Path"))),
        11: ("E10241", body("urn:li:lyndaCourse:2824089", "2024-03-05T08:00:00.000Z", "PT1H28M", PASSED, None, linkedin(LINKEDIN_LINK, "Course"))),
        # A book counts no hours viewed: time_spent left out.
        15: ("E10243", body("urn:li:lyndaBook:9781491959213", "2024-06-07T07:00:00.000Z", None, PASSED, None, linkedin("The Six Morning Habits of High Performers", "Book"))),
        16: ("E10244", body("urn:li:lyndaCourse:2480011", "2024-11-03T07:00:00.000Z", "PT1H2M40S", PASSED, None, linkedin("Negotiation Skills", "Course"))),
    },
    formula_rows={12: "Content Title"},
)


def statement(number: int, name: str) -> dict[str, str]:
    """xAPI passthrough: the statement id and the activity's name."""
    return {"id": f"6f9b3a2e-1c4d-4e8f-9a0b-{number:012x}", "object.definition.name.en-US": name}


XAPI_LINK = '=HYPERLINK("https://acme.example/courses/FIRE-110","Fire Drill 2024")'
XAPI = Expected(
    source="xapi_statements.parquet",
    mapping="xapi_statements.yaml",
    outcomes={"would_send": 5, "duplicate": 1, "skipped": 3, "invalid": 8},
    reasons={"duplicate_in_file": 1, "future_timestamp": 1, "invalid_duration": 1, "invalid_score": 2,
             "invalid_timestamp": 1, "invalid_user": 2, "missing_required": 1},
    deadletters={7: "missing_required", 8: "invalid_timestamp", 9: "future_timestamp", 10: "invalid_duration",
                 11: "invalid_score", 13: "invalid_score", 15: "invalid_user", 16: "invalid_user"},
    bodies={
        # mailto: cut off; course code taken from the activity IRI; the verb is the result; scaled score.
        1: ("ana.silva@example.com", body("SAF-101", "2024-03-01T10:20:00.000Z", "PT45M30S", ("Pass", "passed"), (87, "0.87"), statement(1, "Workplace Safety Basics"))),
        2: ("ben.okafor@example.com", body("SAF-101", "2024-03-04T14:02:11.000Z", "PT1H5M12.34S", ("Fail", "failed"), (45, "0.45"), statement(2, "Workplace Safety Basics"))),
        3: ("carla.mendes@example.com", body("GDPR-200", "2024-04-15T08:45:00.123Z", "PT20M", ("unmapped_value", "completed"), None, statement(3, "GDPR for Staff"))),
        12: ("luca.ferri@example.com", body("FIRE-110", "2024-05-08T09:30:00.000Z", "PT25M", ("Pass", "passed"), (95, "0.95"), statement(12, XAPI_LINK))),
        17: ("bo.chen@example.com", body("SAF-101", "2024-05-12T12:00:00.000Z", "PT0S", ("Fail", "failed"), (0, "0"), statement(17, "Workplace Safety Basics"))),
    },
    formula_rows={13: "object.definition.name.en-US"},
)
# fmt: on

FLAVOURS = {e.mapping.removesuffix(".yaml"): e for e in (DOCEBO, TALENTLMS, ABSORB, LINKEDIN, XAPI)}
BY_EMAIL = {"absorb_course_activity", "xapi_statements"}  # mappings with user.resolve_by: email
EVERY_SAMPLE = {**dry.ALL, **FLAVOURS}


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """Dry runs of the new samples, each run once per module and shared (the tests only read them)."""
    done: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in done:
            expected = FLAVOURS[name]
            folder = tmp_path_factory.mktemp(name) / "run"
            source = SAMPLES / expected.source
            mapping = str(MAPPINGS / expected.mapping)
            result = dry.invoke("run", str(source), "-m", mapping, "--dry-run", "--out", str(folder))
            done[name] = Run(expected, result, folder, source)
        return done[name]

    return get


@pytest.fixture(params=sorted(FLAVOURS))
def run(request: pytest.FixtureRequest, dry_runs: Callable[[str], Run]) -> Run:
    """The dry run of each new sample in turn."""
    return dry_runs(request.param)


# --- the same checks as the first four samples ------------------------------------------------


def test_exit_code_is_1_when_rows_are_dead_lettered(run: Run) -> None:
    """Every sample has invalid rows, so the dry run exits 1."""
    dry.test_exit_code_is_1_when_rows_are_dead_lettered(run)


def test_report_counts_exactly(run: Run) -> None:
    """report.json counts each outcome and reason exactly (the README's outcome table)."""
    dry.test_report_counts_exactly(run)


def test_payload_bodies_are_exact(run: Run) -> None:
    """Each would_send row has exactly the expected body and user."""
    dry.test_payload_bodies_are_exact(run)


def test_deadletter_parquet_rows(run: Run) -> None:
    """deadletter.parquet: original columns then _dl_*, exact codes at exact rows."""
    dry.test_deadletter_parquet_rows(run)


def test_deadletter_csv_neutralises_formulas_but_parquet_keeps_them(run: Run) -> None:
    """A formula-looking value gets a leading ' in deadletter.csv and stays as is in Parquet."""
    dry.test_deadletter_csv_neutralises_formulas_but_parquet_keeps_them(run)


def test_run_files_are_owner_only(run: Run) -> None:
    """The run's files are created 0600 (folder 0700)."""
    dry.test_run_files_are_owner_only(run)


def test_payload_keys_are_the_idempotency_keys(run: Run) -> None:
    """Each key is key_of(account, user as mapped, lo, completed_at); by e-mail it is ``email:…``."""
    name = run.expected.mapping.removesuffix(".yaml")
    for row, line in dry.payloads(run).items():
        user = ("email:" if name in BY_EMAIL else "") + line["user_id"]
        assert HEX32.fullmatch(line["key"]), f"row {row}"
        body_ = line["body"]
        expected = key_of(ACCOUNT, user, body_["learning_object_external_reference"], body_["completed_at"])
        assert line["key"] == expected, f"row {row}"


@pytest.mark.parametrize("name", sorted(FLAVOURS))
def test_check_mapping_ok_against_its_sample(name: str) -> None:
    """Each new mapping checks out against its own sample's header."""
    expected = FLAVOURS[name]
    result = dry.invoke("check-mapping", str(MAPPINGS / expected.mapping), str(SAMPLES / expected.source))
    assert result.exit_code == 0, result.output


def test_at_least_nine_flavours_ship() -> None:
    """config/mappings holds the nine flavours, each with its sample."""
    shipped = {path.stem for path in MAPPINGS.glob("*.yaml")}
    assert set(EVERY_SAMPLE) <= shipped
    assert len(shipped) >= 9
    for expected in EVERY_SAMPLE.values():
        assert (SAMPLES / expected.source).is_file(), expected.source


# --- what the extraction rows say -------------------------------------------------------------


def test_xapi_rows_without_a_part_to_take_say_so(dry_runs: Callable[[str], Run]) -> None:
    """No mailto: prefix, no mbox at all, a module IRI: blank for the field, and the message says
    the value may also have missed the mapping's prefix/extract."""
    rows = dry.deadletter_parquet(dry_runs("xapi_statements"))
    assert rows[16]["actor.mbox"] == "olga.petrova@example.com"
    assert rows[15]["actor.mbox"] is None
    for row in (15, 16):
        assert rows[row]["_dl_error_message"] == "user is blank or has no part matching its prefix/extract"
    assert rows[7]["object.id"].endswith("/activities/module/SAF-101-m2")
    assert rows[7]["_dl_error_field"] == "learning_object_external_reference"


def test_xapi_deadletter_parquet_keeps_types(dry_runs: Callable[[str], Run]) -> None:
    """The Parquet dead-letter keeps the statement's typed columns: double, bool, timestamp."""
    table = pq.read_table(dry_runs("xapi_statements").folder / "deadletter.parquet")
    assert str(table.schema.field("result.score.scaled").type) == "double"
    assert str(table.schema.field("result.success").type) == "bool"
    assert str(table.schema.field("stored").type) == "timestamp[ms, tz=UTC]"
    rows = {r["_dl_source_row"]: r for r in table.to_pylist()}
    assert rows[11]["result.score.scaled"] == -0.25
    assert rows[10]["result.duration"] == "P12M"


def test_absorb_user_is_checked_as_an_email(dry_runs: Callable[[str], Run]) -> None:
    """resolve_by: email: a blank address and a bare user name are both invalid_user."""
    rows = dry.deadletter_parquet(dry_runs("absorb_course_activity"))
    assert rows[14]["_dl_error_message"] == "user is blank"
    assert rows[15]["_dl_error_message"] == "'nora.brown' is not an email"


# --- inspect recognises every shipped flavour -------------------------------------------------


def inspect(path: Path) -> tuple[int, str, str]:
    """``lms-sync inspect PATH``: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, ["inspect", str(path)], env=dry.CLEAN_ENV)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", sorted(EVERY_SAMPLE))
def test_inspect_proposes_the_samples_own_mapping(name: str) -> None:
    """Every column of the sample's mapping is in its header, so inspect names that flavour and
    prints the shipped mapping as the proposal, without warnings."""
    expected = EVERY_SAMPLE[name]
    code, out, err = inspect(SAMPLES / expected.source)
    assert code == 0, err
    assert err == ""
    assert f"# Recognised flavour {name} (" in out
    assert (MAPPINGS / expected.mapping).read_text(encoding="utf-8") in out
    assert "# Proposed" not in out


def test_inspect_writes_the_recognised_mapping(tmp_path: Path) -> None:
    """--write saves the recognised flavour's mapping as shipped."""
    target = tmp_path / "mine.yaml"
    result = CliRunner().invoke(app, ["inspect", str(SAMPLES / XAPI.source), "--write", str(target)])
    assert result.exit_code == 0, result.stderr
    assert target.read_text(encoding="utf-8") == (MAPPINGS / XAPI.mapping).read_text(encoding="utf-8")


def test_inspect_names_close_flavours_and_falls_back_to_the_profile(tmp_path: Path) -> None:
    """A Docebo export without its score column matches no flavour fully: the closest is named
    with what it misses, and the proposal is drawn from the profile."""
    lines = (SAMPLES / DOCEBO.source).read_text(encoding="utf-8").splitlines()
    path = tmp_path / "docebo_no_score.csv"
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines[:6]) + "\n", encoding="utf-8")
    code, out, err = inspect(path)
    assert code == 0, err
    assert "# No shipped flavour has all its columns" in out
    closest = next(line for line in out.splitlines() if "closest: docebo_course_completion" in line)
    assert "has 8 of 9" in closest and "missing Final Score;" in closest
    assert "# Proposed" in out


def test_inspect_header_match_ignores_case_and_spaces(tmp_path: Path) -> None:
    """Header names are compared trimmed and case-insensitively."""
    lines = (SAMPLES / TALENTLMS.source).read_text(encoding="utf-8").splitlines()
    header = ",".join(f" {name.upper()} " for name in lines[0].split(","))
    path = tmp_path / "shouting.csv"
    path.write_text("\n".join([header, *lines[1:3]]) + "\n", encoding="utf-8")
    _, out, _ = inspect(path)
    assert "# Recognised flavour talentlms_course_progress (" in out
