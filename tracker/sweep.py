"""Full sweep or incremental read: per listing of a source with an incremental mode (BRDR, the
press-release API), whether this run must read it whole, and why. Pure functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from spiders.normalize import HONG_KONG

# BRDR `issueDateGrp` values an incremental run may ask for, each with the first Hong Kong
# date a query made at a given moment covers. "ALL" makes every run a full sweep.
DATE_GROUP_WINDOWS: dict[str, Callable[[datetime], date | None]] = {
    "THIS_YEAR": lambda moment: date(moment.astimezone(HONG_KONG).year, 1, 1),
    "ALL": lambda moment: None,
}


@dataclass(frozen=True)
class Sweep:
    """How one listing is read this run."""

    full: bool
    reason: str = ""  # why it is read whole; empty for an incremental read
    # First full read after incremental ones: items first seen and dated before this lay
    # outside every earlier read's window. They complete the baseline; they are not news.
    baseline_before: str | None = None


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def choose_sweep(
    state: dict[str, str | int | None] | None,
    now: datetime,
    requested: bool,
    date_group: str | None = None,
) -> Sweep:
    """Whether a listing is read whole: when asked (`--full-sweep`), when it has never been
    read whole while healthy (a first run, a new BRDR document type, a database from before the
    source existed), and when its last healthy run lies before the window an incremental query
    covers now (`date_group`, e.g. THIS_YEAR after New Year)."""
    state = state or {}
    last_healthy = state.get("last_healthy_at")
    window = DATE_GROUP_WINDOWS[date_group] if date_group else None
    baseline_before = None
    if not state.get("last_full_at") and isinstance(last_healthy, str) and window:
        start = window(_moment(last_healthy))
        baseline_before = start.isoformat() if start else None
    if requested:
        return Sweep(True, "requested", baseline_before)
    if not state.get("last_full_at"):
        return Sweep(True, "no baseline yet", baseline_before)
    if window and isinstance(last_healthy, str):
        start = window(now)
        last = _moment(last_healthy).astimezone(HONG_KONG).date()
        if start and last < start:
            return Sweep(
                True, f"last healthy run {last.isoformat()} is before the {date_group} window"
            )
    return Sweep(False)


def describe(sweeps: dict[str, Sweep], names: dict[str, str]) -> tuple[str, str]:
    """("full" | "incremental" | "mixed", a line for the run's output) for one source's
    listings; `names` maps a listing id to its short name (BRDR: the document type)."""
    full = {url: s for url, s in sweeps.items() if s.full}
    if not full:
        return "incremental", "incremental"
    reasons = sorted({s.reason for s in full.values()})
    if len(full) == len(sweeps):
        return "full", f"full sweep ({'; '.join(reasons)})"
    which = ", ".join(names.get(url, url) for url in full)
    return "mixed", f"full sweep of {which} ({'; '.join(reasons)}), incremental otherwise"
