"""Exit statuses of `hkma-tracker`, in one place (documented in the README and in --help)."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0  # every source healthy (with or without changes)
    ERROR = 1  # unexpected error
    USAGE = 2  # bad command line or config
    SOURCE_UNHEALTHY = 3  # a source failed, or the deadline left work; the rest was processed
    DELIVERY_FAILED = 4  # a digest could not be delivered; it stays pending
    LOCKED = 75  # another run holds the lock, or the database stayed busy (EX_TEMPFAIL)
    INTERRUPTED = 130  # Ctrl-C
