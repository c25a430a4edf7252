"""lms-sync: LMS completion exports mapped, checked and delivered to StackOne."""

from pipelines.core.settings import choose_allocator

choose_allocator()  # before pyarrow allocates anything
