"""Row validation of a whole batch: per row either a body and key, or why not (DESIGN §5, §6)."""

from transforms.validation.check import check_rows
from transforms.validation.checked_rows import INVALID, SKIPPED, VALID, CheckedRows
from transforms.validation.dto_fields import DEPRECATED

__all__ = [
    "DEPRECATED",
    "INVALID",
    "SKIPPED",
    "VALID",
    "CheckedRows",
    "check_rows",
]
