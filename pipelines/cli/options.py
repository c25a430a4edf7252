"""Command-line options shared by the commands that run a plan (run, replay, jobs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MappingOpt = Annotated[
    Path, typer.Option("--mapping", "-m", help="Mapping YAML (config/mappings/).")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Validate and write payloads; send nothing.")
]
OutOpt = Annotated[
    str | None,
    typer.Option(help="Run folder (default data/runs/<run-id>/), or its s3://, gs://, az:// URL."),
]
BaseUrlOpt = Annotated[str | None, typer.Option(help="StackOne base URL (env STACKONE_BASE_URL).")]
RateLimitOpt = Annotated[
    str | None, typer.Option(help="N/Ss, e.g. 950/60s (env LMS_SYNC_RATE_LIMIT).")
]
ConcurrencyOpt = Annotated[int | None, typer.Option(help="Requests in flight at once.")]
LedgerOpt = Annotated[
    Path | None,
    typer.Option(
        help="SQLite state file (default data/state/ledger.sqlite); a state URL instead: "
        "env LMS_SYNC_STATE_URL (sqlite:///PATH or postgresql://…) or --state-block."
    ),
]
StateBlockOpt = Annotated[
    str | None, typer.Option(help="Prefect Secret block holding the state URL (runs as a flow).")
]
PrefectOpt = Annotated[
    bool, typer.Option("--prefect", help="Run as a Prefect flow even without PREFECT_API_URL.")
]
MaxInvalidPctOpt = Annotated[
    float | None,
    typer.Option(help="Exit 1 (a failed flow run) only above P % invalid + failed rows."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print report.json to stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]
KeepRunsOpt = Annotated[
    int | None,
    typer.Option(min=1, help="Then delete all but the N newest run folders in data/runs/."),
]
