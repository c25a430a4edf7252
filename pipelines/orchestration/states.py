"""Final states of flow runs: what a run or a job ended as, and the result a state carries."""

from __future__ import annotations

from typing import Any, TypeVar

from prefect.states import Completed, Failed, State

from pipelines.core.outcomes import RunStatus
from pipelines.output.report import RunReport
from pipelines.run.jobs import JobSummary
from pipelines.run.run_log import deadletter_line

Result = TypeVar("Result")


DEADLETTERED = "Completed with dead-letters"  # the state name Prefect shows for such a run


def run_state(report: RunReport) -> State:
    """Failed when the run crashed or was aborted, or its invalid + failed share exceeds
    ``max_invalid_pct``; ``Completed with dead-letters`` (saying how many and why) when rows were
    dead-lettered within it (or none was given); else Completed."""
    if report.status is RunStatus.CRASHED:
        return Failed(
            message=f"run crashed: {report.error} (traceback: {report.traceback_path})",
            data=report,
        )
    if report.aborted:
        return Failed(message=f"run stopped early: {report.aborted}", data=report)
    if report.max_invalid_pct is not None and report.exit_code():
        share = report.problem_share() * 100
        return Failed(
            message=f"{share:.2f}% of rows invalid or failed > {report.max_invalid_pct}%",
            data=report,
        )
    deadlettered = deadletter_line(report)
    if deadlettered is not None:
        return Completed(message=deadlettered, name=DEADLETTERED, data=report)
    return Completed(data=report)


def job_state(summary: JobSummary) -> State:
    """Failed when a file's run stopped early or rows were dead-lettered beyond the threshold."""
    code = summary.exit_code()
    if code == 3:
        return Failed(message="a run was stopped early; rerun to resume", data=summary)
    if code == 1:
        return Failed(message="rows were dead-lettered (see the run summaries)", data=summary)
    return Completed(data=summary)


async def result_of(state: Any, kind: type[Result]) -> Result:
    """The report or summary a flow run left in its (Completed or Failed) state; re-raise a crash."""
    result = await state.aresult(raise_on_failure=False)
    if isinstance(result, kind):
        return result
    if isinstance(result, BaseException):
        raise result
    raise RuntimeError(f"flow run ended {state.type.value} without a result: {state.message}")
