"""lms-sync: LMS completion exports mapped, checked and delivered to StackOne."""

from pipelines.core.settings import keep_freed_memory

keep_freed_memory()  # before anything loads pyarrow
