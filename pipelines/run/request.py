"""One run in plain, JSON-ready values: what a flow takes as parameters and how it becomes a plan."""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.core.settings import (
    DEFAULT_LEDGER,
    RunOptions,
    Settings,
    environment,
    load_settings,
)
from pipelines.core.state_location import StateLocation, resolve_state
from pipelines.run.plan import DEFAULT_BATCH_ROWS, RunPlan, load_mapping, plan_run
from pipelines.source.deadletter_source import check_deadletter
from pipelines.source.object_store import is_url
from pipelines.source.source_files import expand_sources
from transforms.mapping import MappingSpec

DEADLETTER_NAME = "deadletter.parquet"


@dataclass(frozen=True)
class RunRequest:
    """Sources, mapping and options of one run; every field is a path, a flag or a number.

    ``base_url``, ``rate_limit`` and ``concurrency`` override the environment when given; the API
    key never travels in a request (environment or a Prefect Secret block), nor does a state URL
    (``LMS_SYNC_STATE_URL``, or the Secret block named by ``state_block``); ``ledger`` is the
    path of an SQLite state, the default when no state URL is set.
    """

    sources: list[str]
    mapping: str
    replay: bool = False  # sources are dead-letter files (or the run folders holding them)
    out: str | None = None
    dry_run: bool = False
    ledger: str | None = None
    max_invalid_pct: float | None = None
    check_remote: bool = False
    base_url: str | None = None
    rate_limit: str | None = None
    concurrency: int | None = None
    resend_in_doubt: bool = False  # keys in doubt the API cannot list are sent anyway
    state_block: str | None = None  # a Prefect Secret block holding the state URL

    def parameters(self) -> dict[str, Any]:
        """The request as flow parameters."""
        return dataclasses.asdict(self)

    def settings(self) -> Settings:
        """Settings from the environment with this request's overrides on top."""
        return load_settings(
            base_url=self.base_url, rate_limit=self.rate_limit, concurrency=self.concurrency
        )

    def options(self, settings: Settings) -> RunOptions:
        """How to run the plan (``settings`` carries the state URL, if any)."""
        if self.out and is_url(self.out):  # written locally, then copied to the bucket
            staging = Path(tempfile.mkdtemp(prefix="lms-sync-out-"))
            return dataclasses.replace(self._options(settings, staging), remote_out=self.out)
        return self._options(settings, Path(self.out) if self.out else None)

    def _options(self, settings: Settings, out: Path | None) -> RunOptions:
        return RunOptions(
            out,
            self.dry_run,
            self.state(settings),
            self.max_invalid_pct,
            self.check_remote and self.dry_run,
            self.resend_in_doubt,
        )

    def state(self, settings: Settings) -> StateLocation:
        """The state store: the state URL, else the ``ledger`` file; both is a usage error."""
        return resolve_state(
            self.ledger, settings.state_url, DEFAULT_LEDGER, block=bool(self.state_block)
        )

    def spec(self) -> MappingSpec:
        """The mapping file, read and checked (``${VAR}`` expanded from the environment)."""
        return load_mapping(Path(self.mapping), environment())

    def plan(self, settings: Settings) -> RunPlan:
        """Read the mapping, expand the sources, check every header (errors before any row)."""
        spec = self.spec()
        if self.replay:
            plan = plan_replay(self.sources, spec, settings.account_id)
        else:
            plan = plan_run(self.sources, spec, settings.account_id)
        return dataclasses.replace(plan, mapping_path=Path(self.mapping))

    def for_file(self, path: Path, options: RunOptions) -> RunRequest:
        """The request of one file of a job, with that file's run options."""
        return dataclasses.replace(
            self,
            sources=[str(path)],
            out=_file_out(options),
            dry_run=options.dry_run,
            max_invalid_pct=options.max_invalid_pct,
        )


def _file_out(options: RunOptions) -> str | None:
    """A job file's run folder: under the job's ``--out``, local or in a bucket."""
    if options.out is None:
        return None
    if options.remote_out:
        return f"{options.remote_out.rstrip('/')}/{options.out.name}"
    return str(options.out)


def plan_replay(
    deadletters: list[str],
    spec: MappingSpec,
    account_id: str | None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> RunPlan:
    """Plan a run over dead-letter files (or run folders): read as Parquet, rows keep their origin."""
    paths = [_deadletter_of(pattern) for pattern in deadletters]
    for path in expand_sources(paths):
        check_deadletter(path)
    as_parquet = spec.model_copy(
        update={"source": spec.source.model_copy(update={"format": "parquet"})}
    )
    return dataclasses.replace(plan_run(paths, as_parquet, account_id, batch_rows), replay=True)


def _deadletter_of(pattern: str) -> str:
    """A run folder (local, or in a bucket) stands for its deadletter.parquet."""
    if is_url(pattern):  # a bucket has no folders: a name without .parquet is a run folder
        named = pattern.lower().endswith(".parquet") or any(c in pattern for c in "*?[")
        return pattern if named else f"{pattern.rstrip('/')}/{DEADLETTER_NAME}"
    return str(Path(pattern) / DEADLETTER_NAME) if Path(pattern).is_dir() else pattern
