"""From alert to auditable decision: the deadlines calendar and the attestation report.

Storage keeps the facts (`deadlines`, `version_deadlines`, the `reviews` log, every check in
`source_runs`); this module decides what they mean for a compliance team: which calendar events
stand, moved or were cancelled, and which stretches of a period went without the healthy checks
the schedule promised."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

import sqlite_utils

from alerts.calendar import CalendarEntry
from storage.compliance import (
    deadline_histories,
    deadlines,
    last_healthy_before,
    review_status,
    source_runs_between,
    untagged_changes,
)
from storage.history import find_document
from storage.rule_records import publications_of_documents
from tracker.config import Config
from tracker.schedule import job_deadline, jobs_of, watch_for
from tracker.sources import SOURCES, binding_sql

logger = logging.getLogger(__name__)

KIND_TITLES = {
    "takes effect": "Takes effect",
    "consultation closes": "Consultation closes",
    "consultation opens": "Consultation opens",
}


def event_uid(document_id: str, kind: str, ordinal: int) -> str:
    """A deadline's calendar UID: the same for the same document's same deadline in every
    export, wherever it is made."""
    digest = hashlib.sha256(f"{document_id}|{kind}|{ordinal}".encode()).hexdigest()[:32]
    return f"{digest}@hkma-tracker"


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def calendar_entries(
    db: sqlite_utils.Database, tags: dict[str, list[str]] | None = None
) -> list[CalendarEntry]:
    """One entry per deadline any version of a publication stated: standing, moved (its
    SEQUENCE counts the moves) or cancelled (the document superseded, withdrawn or removed, or
    the date no longer stated). The listings of one publication (a circular's RSS item and its
    BRDR record) stating one date are one event: the standing one, else the first by id."""
    publication = publications_of_documents(db)
    chosen: dict[tuple[str, str, int, date], tuple[tuple[bool, str], CalendarEntry]] = {}
    current = {
        (row["document_id"], row["kind"], row["ordinal"]): row
        for row in deadlines(db, tags=tags, current_only=False)
    }
    for (document_id, kind, ordinal), dates in sorted(deadline_histories(db, tags).items()):
        stated = [d for d in dates if d]
        moves = sum(1 for a, b in pairwise(stated) if a != b)
        row = current.get((document_id, kind, ordinal))
        document = row or find_document(db, document_id) or {}
        standing_now = bool(
            row and row["status"] == "active" and row["standing"] == "current" and dates[-1]
        )
        day = _day(stated[-1])
        if day is None:
            logger.warning("calendar: %s: %s date %r unreadable", document_id, kind, stated[-1])
            continue
        title = str(document.get("title") or document_id)
        why = "" if standing_now else _why_cancelled(row, dates[-1])
        evidence = (row or {}).get("evidence") or ""
        entry = CalendarEntry(
            uid=event_uid(document_id, kind, ordinal),
            day=day,
            summary=f"{KIND_TITLES.get(kind, kind)}: {title}",
            description="\n".join(
                part
                for part in (
                    why,
                    f"“{evidence}”" if evidence else "",
                    f"{document.get('url', '')}",
                    f"{document.get('regulator') or 'HKMA'} document {document_id} (hkma-tracker)",
                )
                if part
            ),
            url=str(document.get("url") or ""),
            sequence=moves + (0 if standing_now else 1),
            cancelled=not standing_now,
            regulator=str(document.get("regulator") or "HKMA"),
        )
        key = (publication.get(document_id, document_id), kind, ordinal, day)
        rank = (not standing_now, document_id)
        if key not in chosen or rank < chosen[key][0]:
            chosen[key] = (rank, entry)
    return [entry for _, entry in chosen.values()]


def _why_cancelled(row: dict[str, Any] | None, latest: str | None) -> str:
    if row is None or not latest:
        return "Cancelled: the document no longer states this date."
    if row["status"] != "active":
        return "Cancelled: the document is no longer listed."
    return f"Cancelled: the document is {row['standing']}."


@dataclass
class SourceChecks:
    """A source's checks in a period: how many, which were unhealthy, and the stretches in
    which a scheduled check brought no healthy result."""

    source: str
    title: str
    regulator: str
    checks: int = 0
    healthy: int = 0
    unhealthy: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)


def _parse(moment: str) -> datetime:
    parsed = datetime.fromisoformat(moment)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def source_checks(
    db: sqlite_utils.Database,
    config: Config,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    regulators: list[str] | None = None,
) -> list[SourceChecks]:
    """Every check of every enabled source in [start, end), and the gaps: stretches between
    healthy checks in which at least one scheduled check (given the run deadline to finish)
    brought no healthy result. Only checks due before `now` count: a period not yet over has
    no missed checks after it. The cost is the runs', not the period's length. `regulators`:
    only the sources of these."""
    until = min(end, now or datetime.now(UTC))
    jobs = jobs_of(config)
    grace = timedelta(seconds=job_deadline(config))
    runs = source_runs_between(db, start.isoformat(), until.isoformat())
    report = []
    for source in config.enabled_sources():
        described = SOURCES[source]
        if regulators and described.regulator not in regulators:
            continue
        checks = SourceChecks(source, described.title, described.regulator)
        healthy_at = []
        for run in (r for r in runs if r["source"] == source):
            checks.checks += 1
            if run["healthy"]:
                checks.healthy += 1
                healthy_at.append(_parse(run["finished_at"]))
            else:
                checks.unhealthy.append(run)
        watch = watch_for(jobs, source)
        before = last_healthy_before(db, source, start.isoformat())
        previous = max(_parse(before), start) if before else start
        for moment in [*healthy_at, until]:
            # Checks due in (previous, moment] that had the deadline to finish before it.
            missed = watch.count(previous, min(moment, until) - grace)
            if missed:
                checks.gaps.append(
                    {
                        "from": previous.isoformat(),
                        "to": moment.isoformat() if moment < until else None,
                        "missed": missed,
                        "first_missed": _iso(watch.next_after(previous)),
                    }
                )
            previous = moment
        report.append(checks)
    return report


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def attestation_report(
    db: sqlite_utils.Database,
    config: Config,
    start: datetime,
    end: datetime,
    tags: dict[str, list[str]] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """What an auditor asks of [start, end): every check per source with its gaps, every
    substantive change with its review, the deadlines from the period's start on, and what the
    tracker covers."""
    now = now or datetime.now(UTC)
    period = start.isoformat(), end.isoformat()
    changes = list(review_status(db, tags=tags, since=period[0], until=period[1]))
    upcoming = deadlines(db, since=start.date().isoformat(), tags=tags)
    regulators = (tags or {}).get("regulators")
    checks = source_checks(db, config, start, end, now, regulators)
    until = min(end, now)
    untagged = untagged_changes(db, binding_sql("d"), *period, regulators)
    return {
        # A period not yet over is reported up to the moment the report is made.
        "period": {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "checked_until": until.isoformat(),
            "over": end <= now,
        },
        "generated_at": now.isoformat(),
        "filters": {kind: wanted for kind, wanted in (tags or {}).items() if wanted},
        "coverage": coverage(config),
        "sources": [dataclasses.asdict(c) for c in checks],
        "changes": changes,
        "deadlines": upcoming,
        "untagged": untagged,
        "totals": {
            "untagged": len(untagged),
            "checks": sum(c.checks for c in checks),
            "unhealthy_checks": sum(len(c.unhealthy) for c in checks),
            "gaps": sum(len(c.gaps) for c in checks),
            "changes": len(changes),
            "open": sum(1 for c in changes if c["state"] in ("open", "in review")),
        },
    }


def coverage(config: Config) -> dict[str, list[str]]:
    """What the tracker watches with this config, and what it does not."""
    watched = [
        f"{SOURCES[name].title}: {', '.join(config.listings(name))}"
        for name in config.enabled_sources()
    ]
    return {
        "watched": watched,
        "not_watched": [
            "Sources not listed above (other regulators, HKMA pages not configured, "
            "Chinese-only publications).",
            "Changes that appear and are undone between two checks.",
            "Text in images or scanned PDFs, and attachments other than PDF and HTML.",
            "Whether a change applies to your institution: that is each review's decision.",
        ],
    }
