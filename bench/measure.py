"""What the benchmarks share: how a process's own memory is measured."""

from __future__ import annotations

import re
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak RSS since its exec. (ru_maxrss would also count what its forking
    parent held at the fork: a child of a large bench process would report the parent's.)"""
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found, "no VmHWM in /proc/self/status (these benchmarks measure on Linux)"
    return int(found.group(1)) / 1024
