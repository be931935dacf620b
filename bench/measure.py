"""What the benchmarks share: how a process's own memory is measured, and which sources they
leave off."""

from __future__ import annotations

import re
from pathlib import Path

from tracker.sources import SOURCES

# The benchmarks serve the HKMA's hosts only: the other regulators' sources (on by default)
# would fail to reach theirs and make every measured run unhealthy.
OTHER_REGULATORS_OFF = "".join(
    f"[sources.{name}]\nenabled = false\n"
    for name, source in SOURCES.items()
    if source.regulator != "HKMA"
)


def peak_rss_mb() -> float:
    """This process's peak RSS since its exec. (ru_maxrss would also count what its forking
    parent held at the fork: a child of a large bench process would report the parent's.)"""
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found, "no VmHWM in /proc/self/status (these benchmarks measure on Linux)"
    return int(found.group(1)) / 1024
