"""What the command line prints: every line goes through `echo` (text) or `emit` (one JSON
object per line), which make stored text safe for a terminal. Data in, lines out."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from spiders.normalize import UNPRINTABLE
from tracker.run import RunReport

logger = logging.getLogger("hkma-tracker")


def terminal_safe(text: str) -> str:
    """Control and bidi-override characters as visible escapes (`\\u001b`): stored text
    never moves the cursor, clears the screen or reorders a line. Inside a JSON string the
    escape is the JSON escape of the same character."""
    return UNPRINTABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def echo(message: str = "", err: bool = False) -> None:
    """The one way text reaches the terminal."""
    click.echo(terminal_safe(message), err=err)


def emit(record: dict[str, Any]) -> None:
    echo(json.dumps(record, ensure_ascii=False, default=str))


def run_report(report: RunReport, as_json: bool, show_events: bool) -> None:
    for plan in report.plans:
        summary = {
            "source": plan.source,
            "healthy": plan.healthy,
            "reason": plan.reason,
            "items": len(plan.seen),
            "new": plan.count("new"),
            "changed": plan.count("changed"),
            "removed": plan.count("removed"),
        }
        if plan.sweep:
            summary.update(sweep=plan.sweep, sweep_reason=plan.sweep_reason)
        if as_json:
            emit(summary)
        else:
            if plan.sweep:
                echo(f"{plan.source}: {plan.sweep_reason}")
            echo(
                f"{plan.source}: {'healthy' if plan.healthy else 'UNHEALTHY'}; "
                f"{summary['items']} items, {summary['new']} new, "
                f"{summary['changed']} changed, {summary['removed']} removed"
            )
            for verdict in plan.verdicts:
                if not verdict.healthy:
                    echo(f"  {verdict.url}: {verdict.reason}")
    if show_events:
        for event in report.events:
            record = {
                "kind": event.kind,
                "document_id": event.document_id,
                "title": event.snapshot.title,
                "url": event.snapshot.url,
                "fields": event.fields,
            }
            if as_json:
                emit(record)
            else:
                echo(f"  {event.kind:8} {event.snapshot.title}  <{event.snapshot.url}>")
    if report.documents and report.documents.counts:
        counts = report.documents.counts
        if as_json:
            emit({"documents": counts})
        else:
            echo("documents: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    for line in report.unfinished:
        if as_json:
            emit({"unfinished": line})
        else:
            echo(f"unfinished, left for the next run: {line}")
    if report.digest and not as_json:
        echo(f"digest: {report.digest}")
    if report.delivery_error:
        logger.error("digest NOT delivered: %s", report.delivery_error)


def changes(rows: list[dict[str, Any]], as_json: bool) -> None:
    for change in rows:
        if as_json:
            emit(change)
        else:
            fields = f" [{', '.join(change['fields'])}]" if change["fields"] else ""
            tags = ", ".join(change["functions"] + change["products"])
            echo(
                f"{change['id']:>6} {change['detected_at']} {change['kind']:8} "
                f"{change['source']:6} {change['title']}{fields}\n       {change['document_id']}"
                + (f"\n       tags: {tags}" if tags else "")
            )


def status(report: dict[str, Any], as_json: bool) -> None:
    if not report["sources"]:
        echo("no runs recorded yet", err=True)
    if as_json:
        for row in report["sources"]:
            emit({"type": "source", **row})
        emit({"type": "outbox", **report["outbox"]})
        for failing in report["delivery_failing"]:
            emit({"type": "delivery", **failing})
        emit({"type": "linked_documents", **report["linked_documents"]})
        for name, sent in report["last_digest"].items():
            emit({"type": "subscriber", "name": name, "last_digest_sent_at": sent})
        return
    for row in report["sources"]:
        state = "healthy" if row["healthy"] else f"UNHEALTHY: {row['reason']}"
        echo(
            f"{row['source']}: {state}; last run {row['last_run_id']} at {row['last_run_at']}, "
            f"last healthy run {row['last_healthy_run_id']}, {row['documents']} active "
            f"documents, next run {row['next_scheduled_run']}"
            + (f"; OVERDUE: {row['overdue']}" if row["overdue"] else "")
        )
    outbox = report["outbox"]
    pending, failed = outbox["pending"], outbox["failed_attempts"]
    echo(f"outbox: {pending} messages pending ({failed} after a failure)")
    for failing in report["delivery_failing"]:
        echo(
            f"delivery to {failing['subscriber']} failing since {failing['failing_since']} UTC "
            f"({failing['attempts']} attempts): {failing['last_error']}"
        )
    linked = ", ".join(f"{n} {state}" for state, n in sorted(report["linked_documents"].items()))
    echo(f"linked documents: {linked or 'none'}")
    for name, sent in report["last_digest"].items():
        echo(f"subscriber {name}: last digest sent {sent or 'never'}")


def runs(rows: list[dict[str, Any]], as_json: bool) -> None:
    for run_row in rows:
        if as_json:
            emit(run_row)
            continue
        echo(
            f"run {run_row['id']} {run_row['command']} {run_row['started_at']} -> "
            f"{run_row['status']} (exit {run_row['exit_code']})"
        )
        if run_row["unfinished"]:
            echo(f"  unfinished: {run_row['unfinished']}")
        for s in run_row["sources"]:
            state = "healthy" if s["healthy"] else f"UNHEALTHY: {s['reason']}"
            echo(
                f"  {s['source']}: {state}; {s['items']} items, {s['new']} new, {s['changed']} "
                f"changed, {s['removed']} removed, {s['requests']} requests, {s['bytes']} bytes, "
                f"{s['duration_s']} s" + (f", {s['sweep']} sweep" if s["sweep"] else "")
            )
