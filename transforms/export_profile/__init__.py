"""Profile an export's columns (kind, blanks, samples) and propose a starting mapping file."""

from transforms.export_profile.profiles import ISO, ColumnProfile, Kind, Profile
from transforms.export_profile.profiling import profile_column, profile_table
from transforms.export_profile.proposal import propose_mapping
from transforms.export_profile.timestamp_formats import TIMESTAMP_FORMATS

__all__ = [
    "ISO",
    "TIMESTAMP_FORMATS",
    "ColumnProfile",
    "Kind",
    "Profile",
    "profile_column",
    "profile_table",
    "propose_mapping",
]
