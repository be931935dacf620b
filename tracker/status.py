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
from storage.outbox import failing_deliveries, last_sent_at, outbox_counts
from tracker.config import Config
from tracker.delivery import DeliveryReport, deliver, raise_operator_alerts
from tracker.routing import subscribers_of
from tracker.schedule import job_for_source, jobs_of
from tracker.sources import SOURCES, binding_sql


def stale_sources(db: sqlite_utils.Database, config: Config, now: datetime) -> dict[str, str]:
    """Sources with no healthy run within twice their scheduled interval, and sources whose full
    sweeps are overdue (`stale_sweeps`), and why."""
    jobs, stale = jobs_of(config), {}
    for source in config.enabled_sources():
        job = job_for_source(jobs, source)
        interval = job.interval(now) if job else None
        if interval is None:
            continue
        last = _last_healthy_run(db, source)
        if last is None or now - last > 2 * interval:
            when = f"since {last:%Y-%m-%d %H:%M} UTC" if last else "ever"
            stale[source] = f"no healthy run {when} (scheduled every {interval})"
    return stale_sweeps(db, config, now) | stale


def stale_sweeps(db: sqlite_utils.Database, config: Config, now: datetime) -> dict[str, str]:
    """Sources with an incremental mode that have had healthy runs but no healthy full sweep
    within twice the sweep job's interval: healthy incremental runs would hide a sweep that
    always fails, and with it every document gone from the register."""
    sweep = next((j for j in jobs_of(config) if j.kind == "sweep"), None)
    every = sweep.interval(now) if sweep else None
    stale = {}
    for source in config.enabled_sources():
        if every is None or not SOURCES[source].incremental:
            continue
        if _last_healthy_run(db, source) is None:
            continue  # never healthy at all: the dead-man check's to report
        states = listing_states(db, source)
        swept = {
            name: states.get(url, {}).get("last_full_at")
            for name, url in config.listings(source).items()
        }
        name, last = min(swept.items(), key=lambda entry: entry[1] or "")
        if not last or now - datetime.fromisoformat(last) > 2 * every:
            when = f"since {datetime.fromisoformat(last):%Y-%m-%d %H:%M} UTC" if last else "ever"
            stale[source] = f"no healthy full sweep of {name} {when} (scheduled every {every})"
    return stale


def _last_healthy_run(db: sqlite_utils.Database, source: str) -> datetime | None:
    last = last_healthy_run_at(db, source)
    return datetime.fromisoformat(last) if last else None


UNTAGGED_WINDOW = timedelta(days=30)  # what `status` counts of untagged instruments


def status_report(db: sqlite_utils.Database, config: Config) -> dict[str, Any]:
    now = datetime.now(UTC)
    since = (now - UNTAGGED_WINDOW).replace(microsecond=0).isoformat()
    jobs, stale = jobs_of(config), stale_sources(db, config, now)
    sources = []
    for row in source_status(db):
        job = job_for_source(jobs, row["source"])
        next_run = job.next_run(now) if job else None
        row["healthy"] = bool(row["healthy"])
        row["next_scheduled_run"] = next_run.isoformat() if next_run else None
        row["overdue"] = stale.get(row["source"], "")
        sources.append(row)
    return {
        "sources": sources,
        "delivery_failing": failing_deliveries(db),
        "linked_documents": linked_document_states(db),
        "documents_read": config.documents.enabled,
        "outbox": outbox_counts(db),
        "untagged_instruments": len(
            untagged_change_ids(db, binding_sql("d.source", "d.extra"), since=since)
        ),
        "untagged_since": since,
        "last_digest": {s.name: last_sent_at(db, s.name) for s in subscribers_of(config)},
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
