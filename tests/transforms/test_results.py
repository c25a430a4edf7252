"""Result mapping of DESIGN §5: case- and space-insensitive, unknown statuses unmapped_value."""

from __future__ import annotations

import pyarrow as pa

from transforms.results import map_results


def test_maps_case_and_space_insensitively() -> None:
    """Statuses match the map whatever their case and inner or outer white space."""
    mapped = map_results(
        pa.array(["Passed", "passed", " PASSED ", "Completed  Successfully", "failed"]),
        {"Passed": "Pass", "completed successfully": "Pass", "Failed": "Fail"},
    )
    assert mapped.to_pylist() == ["Pass", "Pass", "Pass", "Pass", "Fail"]


def test_unknown_status_is_unmapped_and_blank_is_null() -> None:
    """A non-blank status outside the map is unmapped_value; a blank one omits the result."""
    mapped = map_results(pa.array(["Incomplete", None]), {"Passed": "Pass"})
    assert mapped.to_pylist() == ["unmapped_value", None]


def test_empty_map_marks_everything_unmapped() -> None:
    """With no map every status is delivered as unmapped_value."""
    assert map_results(pa.array(["x"]), {}).to_pylist() == ["unmapped_value"]
