"""One run at a time per database: an advisory lock on `<db>.lock`, released when the process
ends (even if it is killed), so a crashed run never leaves a stale lock behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

# Lock handles this process holds. A forked child gets a copy of every descriptor, and a copy
# of a lock's descriptor keeps the lock held for as long as the child lives, even after the
# run that took it was killed: children close theirs at once.
_held: set[TextIO] = set()


def _close_in_child() -> None:
    for handle in _held:
        handle.close()  # only this process's descriptor: the parent keeps its lock
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


class RunLocked(Exception):
    """Another run holds the lock; the message says which process and since when."""


@contextlib.contextmanager
def run_lock(db_path: str | Path) -> Iterator[None]:
    path = Path(f"{db_path}.lock")
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLocked(f"another run is in progress ({holder}); try again later") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
        _held.add(handle)
        yield
    finally:
        _held.discard(handle)
        handle.close()  # closing releases the lock
