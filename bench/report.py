"""Benchmark: does the attestation report cost what happened, not the period's length?

Builds a history of a year of runs on the default schedule (every source checked at :15 of each
working hour and in the nightly full sweep; one unhealthy check in fifty; a week with no run at
all), then times `attestation_report`
for periods of one, ten and thirty years ending today. Goal: a ten-year report under 2 s.
Run: `python bench/report.py`.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.db import open_db
from tracker.compliance import attestation_report
from tracker.config import load_config
from tracker.schedule import DEFAULT_SCHEDULE, Job, Watch

SOURCES = ("rss", "pages", "brdr", "press_releases")


def build(path: Path, now: datetime) -> int:
    db = open_db(path)
    watch = Watch(
        (
            Job("crawl:all", "crawl", DEFAULT_SCHEDULE["all"], ()),
            Job("sweep:full", "sweep", DEFAULT_SCHEDULE["full_sweep"], ()),
        )
    )
    when, runs, sources = watch.next_after(now - timedelta(days=365)), [], []
    quiet = (now - timedelta(days=120), now - timedelta(days=113))
    while when is not None and when < now - timedelta(hours=1):
        if not quiet[0] <= when < quiet[1]:
            finished = (when + timedelta(minutes=5)).astimezone(UTC).isoformat()
            run_id = len(runs) + 1
            runs.append((run_id, "run", finished, finished, "ok"))
            sources += [
                (run_id, source, int((run_id + n) % 50 != 0), "", 10, 0, 0, 0, 1, 1, "{}", finished)
                for n, source in enumerate(SOURCES)
            ]
        when = watch.next_after(when)
    with db.conn:
        db.conn.executemany(
            "INSERT INTO runs (id, command, started_at, finished_at, status) VALUES (?,?,?,?,?)",
            runs,
        )
        db.conn.executemany(
            "INSERT INTO source_runs (run_id, source, healthy, reason, items, new, changed, "
            "removed, requests, bytes, stats, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            sources,
        )
    db.close()
    return len(runs)


def main() -> None:
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.db"
        runs = build(path, now)
        db, config = open_db(path), load_config(None)
        print(f"history: {runs} runs of {len(SOURCES)} sources over a year (default schedule)")
        timings = {}
        for years in (1, 10, 30):
            start = now - timedelta(days=365 * years)
            began = time.perf_counter()
            report = attestation_report(db, config, start, now + timedelta(days=1), now=now)
            timings[years] = time.perf_counter() - began
            totals = report["totals"]
            print(
                f"{years:>2}-year report: {timings[years]:.2f} s ({totals['checks']} checks, "
                f"{totals['unhealthy_checks']} unhealthy, {totals['gaps']} gaps)"
            )
        print(
            f"ten years / one year: {timings[10] / timings[1]:.2f}x; goal: ten years < 2 s:",
            "met" if timings[10] < 2 else "NOT met",
        )


if __name__ == "__main__":
    main()
