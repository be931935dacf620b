"""Exit statuses of `hkma-tracker`, in one place: the command line returns them, its help and
the README list them from here."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    SOURCE_UNHEALTHY = 3
    DELIVERY_FAILED = 4
    LOCKED = 75  # EX_TEMPFAIL: try again later
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return MEANINGS[self]


MEANINGS = {
    ExitStatus.OK: "every source healthy (with or without changes)",
    ExitStatus.ERROR: "unexpected error (a bug: the traceback is on stderr)",
    ExitStatus.USAGE: "bad command line or config (the message names the key, file or value)",
    ExitStatus.SOURCE_UNHEALTHY: "a source was unhealthy (failed, empty, sharp drop, deadline), "
    "or the deadline left work for the next run; the rest was processed",
    ExitStatus.DELIVERY_FAILED: "a message is pending after a failed delivery; it is retried "
    "(4 wins over 3)",
    ExitStatus.LOCKED: "another run holds the lock, or another process kept the database "
    "locked: try again later",
    ExitStatus.INTERRUPTED: "interrupted (Ctrl-C)",
}
