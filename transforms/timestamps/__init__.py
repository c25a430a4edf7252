"""The ``completed_at`` timestamp converter: format and zone checks plus whole-column conversion."""

from transforms.timestamps.convert import to_utc_millis
from transforms.timestamps.formats import SPECIAL_FORMATS, check_format
from transforms.timestamps.millis import Ints, Mask
from transforms.timestamps.zones import check_timezone

__all__ = ["SPECIAL_FORMATS", "Ints", "Mask", "check_format", "check_timezone", "to_utc_millis"]
