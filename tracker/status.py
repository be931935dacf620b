"""What an operator asks: per source its last and last healthy run, health, next scheduled run
and whether it is overdue (the dead-man check); the outbox; the last digest per subscriber."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from storage.compliance import untagged_change_ids
from storage.db import write_transaction
from storage.history import (
    last_healthy_run_at,
    linked_document_states,
    listing_states,
    source_status,
)
from storage.outbox import failing_deliveries, last_sent_at, last_unbuilt_alert, outbox_counts
from storage.tags import taxonomies_in_use
from tracker.config import Config
from tracker.delivery import DeliveryReport, deliver, raise_operator_alerts
from tracker.routing import subscribers_of
from tracker.schedule import Watch, job_deadline, jobs_of, watch_for
from tracker.scrapyd import node_states
from tracker.sources import SOURCES, binding_sql

# A source is overdue once this many of its scheduled checks after its last healthy one have
# had their run deadline to finish: one missed check may be a slow run, two are a silence.
MISSED_CHECKS = 2


def _overdue(
    watch: Watch,
    last: datetime | None,
    watched_since: datetime | None,
    grace: timedelta,
    now: datetime,
) -> datetime | None:
    """When a source became overdue (None: it is not): the `MISSED_CHECKS`-th scheduled check
    after its last healthy one, or (never healthy) the first check after it was first
    watched, plus the run deadline."""
    due = (
        watch.nth_after(last, MISSED_CHECKS)
        if last
        else watch.next_after(watched_since)
        if watched_since
        else None
    )
    return due if due is not None and due + grace <= now else None


def stale_sources(db: sqlite_utils.Database, config: Config, now: datetime) -> dict[str, str]:
    """Sources whose scheduled checks brought no healthy run for `MISSED_CHECKS` checks in a
    row (a never healthy one: since its first check was due), and sources whose full sweeps
    are overdue (`stale_sweeps`), and why."""
    jobs, stale = jobs_of(config), {}
    grace = timedelta(seconds=job_deadline(config))
    watched_since = _first_run_at(db)
    for source in config.enabled_sources():
        watch = watch_for(jobs, source)
        last = _last_healthy_run(db, source)
        if _overdue(watch, last, watched_since, grace, now):
            when = f"since {last:%Y-%m-%d %H:%M} UTC" if last else "ever"
            stale[source] = f"no healthy run {when} (scheduled {watch.describe()})"
    return stale_sweeps(db, config, now) | stale


def stale_sweeps(db: sqlite_utils.Database, config: Config, now: datetime) -> dict[str, str]:
    """Sources with an incremental mode that have had healthy runs but no healthy full sweep
    for `MISSED_CHECKS` sweeps in a row: healthy incremental runs would hide a sweep that
    always fails, and with it every document gone from the register."""
    sweep = next((j for j in jobs_of(config) if j.kind == "sweep"), None)
    if sweep is None:
        return {}
    watch, grace = Watch((sweep,)), timedelta(seconds=job_deadline(config))
    stale = {}
    for source in config.enabled_sources():
        if not SOURCES[source].incremental:
            continue
        if _last_healthy_run(db, source) is None:
            continue  # never healthy at all: the dead-man check's to report
        states = listing_states(db, source)
        swept = {
            name: states.get(url, {}).get("last_full_at")
            for name, url in config.listings(source).items()
        }
        name, last = min(swept.items(), key=lambda entry: entry[1] or "")
        since = datetime.fromisoformat(last) if last else _first_run_at(db)
        if _overdue(watch, since, None, grace, now):
            when = f"since {since:%Y-%m-%d %H:%M} UTC" if last else "ever"
            stale[source] = f"no healthy full sweep of {name} {when} (scheduled {watch.describe()})"
    return stale


def _first_run_at(db: sqlite_utils.Database) -> datetime | None:
    """When the tracker first ran on this database: from then on every source is watched."""
    row = db.execute("SELECT min(started_at) FROM runs").fetchone()
    return datetime.fromisoformat(row[0]) if row and row[0] else None


def _last_healthy_run(db: sqlite_utils.Database, source: str) -> datetime | None:
    last = last_healthy_run_at(db, source)
    return datetime.fromisoformat(last) if last else None


UNTAGGED_WINDOW = timedelta(days=30)  # what `status` counts of untagged instruments


NEVER_RUN = {
    "last_run_id": None, "last_run_at": None, "healthy": False, "reason": "never run",
    "items": 0, "new": 0, "changed": 0, "removed": 0, "last_healthy_run_id": None,
    "documents": 0,
}  # fmt: skip


def status_report(db: sqlite_utils.Database, config: Config) -> dict[str, Any]:
    now = datetime.now(UTC)
    since = (now - UNTAGGED_WINDOW).replace(microsecond=0).isoformat()
    jobs, stale = jobs_of(config), stale_sources(db, config, now)
    sources = []
    rows = {row["source"]: row for row in source_status(db)}
    for source in config.enabled_sources():  # watched, but not yet run: it says so
        rows.setdefault(source, {**NEVER_RUN, "source": source})
    for row in sorted(rows.values(), key=lambda r: r["source"]):
        next_run = watch_for(jobs, row["source"]).next_after(now)
        row["healthy"] = bool(row["healthy"])
        row["next_scheduled_run"] = next_run.isoformat() if next_run else None
        row["overdue"] = stale.get(row["source"], "")
        sources.append(row)
    engine = config.crawl.engine
    return {
        "sources": sources,
        "engine": engine,
        "nodes": node_states(config.scrapyd) if engine == "scrapyd" else [],
        "delivery_failing": failing_deliveries(db),
        "linked_documents": linked_document_states(db),
        "documents_read": config.documents.enabled,
        "outbox": outbox_counts(db),
        "untagged_instruments": len(untagged_change_ids(db, binding_sql("d"), since=since)),
        "untagged_since": since,
        "tags": {
            "taxonomy": config.taxonomy.version,
            # After an upgrade that changed the taxonomy, until `retag`.
            "other_taxonomies": sorted(taxonomies_in_use(db) - {config.taxonomy.version}),
        },
        "last_digest": {s.name: last_sent_at(db, s.name) for s in subscribers_of(config)},
        "unbuilt_digests": {
            s.name: alert
            for s in subscribers_of(config)
            if (alert := last_unbuilt_alert(db, s.name)) is not None
        },
    }


def dead_man_check(
    db: sqlite_utils.Database, config: Config, now: datetime
) -> tuple[dict[str, str], DeliveryReport]:
    """Alert the operator about sources overdue for a healthy run (or a healthy full sweep),
    then send pending operator messages. The overdue sources (with why) and the report."""
    stale = stale_sources(db, config, now)
    with write_transaction(db):
        raise_operator_alerts(db, config, config.enabled_sources(), stale)
    return stale, deliver(db, config, only="operator")
