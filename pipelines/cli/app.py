"""The ``lms-sync`` command line: the edge where flags and environment become settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from pipelines.cli.console import (
    EXIT_ABORTED,
    EXIT_OK,
    console,
    fail,
    print_summary,
)
from pipelines.cli.execution import run_request
from pipelines.cli.inspect_command import inspect_command
from pipelines.cli.jobs_command import (
    backfill_command,
    import_command,
    nightly_command,
    serve_command,
)
from pipelines.cli.ledger_command import ledger_command
from pipelines.cli.replay_command import replay_command
from pipelines.cli.run_command import run_command
from pipelines.cli.state_command import state_app
from pipelines.core.rate_limit import parse_rate_limit
from pipelines.core.settings import (
    environment,
    scoped_environment,
)
from pipelines.run.plan import load_mapping, plan_run
from pipelines.run.request import RunRequest
from pipelines.source.source_files import expand_sources
from transforms.errors import LmsSyncError

app = typer.Typer(
    name="lms-sync",
    help="Sync LMS course completions from CSV/Parquet exports to StackOne.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CONFIG = Path(__file__).resolve().parents[2] / "config" / "mappings"
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
DEMO_RUNS = [
    (CONFIG / "cornerstone_transcript.yaml", SAMPLES / "cornerstone_transcript.csv"),
    (CONFIG / "workday_learning.yaml", SAMPLES / "workday_learning.csv"),
    (
        CONFIG / "successfactors_learning_history.yaml",
        SAMPLES / "successfactors_learning_history.csv",
    ),
    (CONFIG / "moodle_scorm_tracks.yaml", SAMPLES / "moodle_scorm_tracks.parquet"),
]


run = run_command(
    replay=False,
    sources_help="Export files, directories or globs.",
    mapping_help="Mapping YAML (config/mappings/).",
    doc="""Read, convert and validate exports, then deliver the valid rows (or, with --dry-run, write them).

    Examples:

      lms-sync run data/samples/cornerstone_transcript.csv -m config/mappings/cornerstone_transcript.yaml --dry-run

      STACKONE_API_KEY=… STACKONE_ACCOUNT_ID=… lms-sync run exports/ -m config/mappings/workday_learning.yaml
    """,
)
app.command("run")(run)


@app.command("check-mapping")
def check_mapping(
    mapping: Annotated[Path, typer.Argument(help="Mapping YAML to check.")],
    sources: Annotated[
        list[str] | None, typer.Argument(help="Exports whose headers to check against.")
    ] = None,
) -> None:
    """Check a mapping file (and, given exports, that every column it names exists).

    Example: lms-sync check-mapping config/mappings/workday.yaml data/samples/workday_learning.csv
    """
    env = environment()
    try:
        spec = load_mapping(mapping, env)
        if sources:
            plan_run(sources, spec, env.get("STACKONE_ACCOUNT_ID") or "check-only")
            checked = f" against {len(expand_sources(sources))} source(s)"
        else:
            checked = ""
    except LmsSyncError as exc:
        fail(str(exc), exc.exit_code)
    console.print(f"[green]ok[/green] {mapping}{checked}")


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
    rate_limit: Annotated[str, typer.Option(help="Per-key limit, N/Ss.")] = "1000/60s",
    latency_ms: Annotated[str, typer.Option(help="MEDIAN,P99 response latency in ms.")] = "0,0",
    fault_rate: Annotated[
        float, typer.Option(help="Share of requests answered with a fault.")
    ] = 0.0,
    users: Annotated[
        Path | None, typer.Option(help="JSON list of users {id, email, external_reference}.")
    ] = None,
    db: Annotated[
        Path | None, typer.Option(help="SQLite file for stored completions (default in memory).")
    ] = None,
    store_repeats: Annotated[
        bool, typer.Option(help="Store an exact repeat as a new record instead of answering 409.")
    ] = False,
    account: Annotated[
        list[str] | None,
        typer.Option(help="An account the key reaches (repeat for several); others get 403."),
    ] = None,
) -> None:
    """Serve the local StackOne sandbox API (key sandbox-key, account sandbox-account).

    Example: lms-sync sandbox --port 8080 --rate-limit 300/10s --latency-ms 300,3000 --fault-rate 0.02
    Several accounts: lms-sync sandbox --account tenant-a --account tenant-b
    """
    # lazy: the sandbox pulls in FastAPI and uvicorn, which other commands should not pay for
    from pipelines.sandbox import DEFAULT_ACCOUNT_ID, SandboxConfig, parse_latency, serve_forever

    try:
        config = SandboxConfig(
            account_ids=set(account or [DEFAULT_ACCOUNT_ID]),
            rate_limit=parse_rate_limit(rate_limit),
            latency=parse_latency(latency_ms),
            fault_rate=fault_rate,
            users=orjson.loads(users.read_bytes()) if users else None,
            db_path=db,
            store_repeats=store_repeats,
        )
    except (ValueError, OSError) as exc:
        fail(str(exc))
    serve_forever(config, "127.0.0.1", port)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's run folders.")] = Path(
        "data/runs/demo"
    ),
    prefect: Annotated[
        bool, typer.Option(help="Record the runs in Prefect's temporary local server.")
    ] = True,
) -> None:
    """Start the sandbox, deliver every sample export to it, print what happened, stop it.

    Example: lms-sync demo --no-prefect
    """
    from pipelines.sandbox import DEFAULT_ACCOUNT_ID, DEFAULT_API_KEY, Sandbox  # lazy: start-up

    with (
        Sandbox() as running,
        scoped_environment(
            {
                "STACKONE_BASE_URL": running.base_url,
                "STACKONE_API_KEY": DEFAULT_API_KEY,
                "STACKONE_ACCOUNT_ID": DEFAULT_ACCOUNT_ID,
            }
        ),
    ):
        console.print(f"sandbox API at {running.base_url}", highlight=False)
        aborted = False
        for mapping, sample in DEMO_RUNS:
            console.rule(f"{sample.name}  ({mapping.name})")
            request = RunRequest(
                [str(sample)],
                str(mapping),
                out=str(out / sample.stem),
                ledger=str(out / "ledger.sqlite"),
            )
            try:
                report = run_request(request, prefect=prefect)
            except LmsSyncError as exc:
                fail(str(exc), exc.exit_code)
            print_summary(report.as_dict(), report.folder, json_output=False)
            aborted = aborted or bool(report.aborted)
        stored = len(running.completions())
    console.print(
        f"[bold]demo done:[/bold] the sandbox stored {stored} completions; "
        f"dead-letter files and report.json of each run are under {out}/",
        highlight=False,
    )
    raise typer.Exit(EXIT_ABORTED if aborted else EXIT_OK)


app.command("replay")(replay_command)
app.command("ledger")(ledger_command)
app.command("inspect")(inspect_command)
app.command("nightly")(nightly_command)
app.command("backfill")(backfill_command)
app.command("import")(import_command)
app.command("serve")(serve_command)
app.add_typer(state_app, name="state")


def main() -> None:
    """Console-script entry point."""
    app()
