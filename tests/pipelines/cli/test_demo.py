"""The README's first command: ``lms-sync demo`` delivers every sample to its own sandbox."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pipelines.cli.app import DEMO_RUNS, app


def test_demo_without_prefect_delivers_every_sample(tmp_path: Path) -> None:
    """``demo --no-prefect`` runs all four samples end to end and stores what they deliver."""
    result = CliRunner().invoke(
        app,
        ["demo", "--no-prefect", "--out", str(tmp_path)],
        env={"STACKONE_API_KEY": None, "STACKONE_ACCOUNT_ID": None, "PREFECT_API_URL": None},
    )
    assert result.exit_code == 0, result.output
    assert "demo done: the sandbox stored 34 completions" in result.output
    for _, sample in DEMO_RUNS:
        report = json.loads((tmp_path / sample.stem / "report.json").read_text())
        assert sum(report["outcomes"].values()) == report["rows_read"] > 0
