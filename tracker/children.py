"""Helper processes that cannot outlive the run that started them (Linux: the kernel's parent
death signal; elsewhere nothing is set and the run's own cleanup is all there is)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In a freshly started child: be killed when `parent` dies. Call first thing, before any
    work; if the parent is already gone (it died before this ran), exit at once."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
