"""The outbox: which changes wait for which subscriber, and the messages built from them.

A message is stored whole (its bytes, its Message-ID) before the first attempt, so every retry
sends exactly the same message. It is marked sent only after the channel took it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from alerts.subscribers import Subscriber
from storage.db import utc_now
from storage.history import change_record

FIRST_RETRY = timedelta(minutes=5)
LONGEST_WAIT = timedelta(hours=6)


def queue_changes(db: sqlite_utils.Database, run_id: int, subscribers: Iterable[Subscriber]) -> int:
    """Queue this run's change events for every subscriber they match. Call in the transaction
    that recorded them, so that no change is ever stored without being queued."""
    changes = [
        change_record(row)
        for row in db.query(
            "SELECT c.*, d.functions, d.products, d.entity_types FROM changes c "
            "JOIN documents d ON d.id = c.document_id WHERE c.run_id = ? "
            "AND NOT EXISTS (SELECT 1 FROM outbox_items o WHERE o.change_id = c.id)",
            [run_id],
        )
    ]
    now = utc_now()
    rows = [
        {"change_id": c["id"], "subscriber": s.name, "queued_at": now, "message": None}
        for c in changes
        for s in subscribers
        if s.matches(c)
    ]
    db.table("outbox_items").insert_all(rows, batch_size=1000, ignore=True)
    return len(rows)


def unsent_changes(db: sqlite_utils.Database, subscriber: str) -> list[dict[str, Any]]:
    """Changes queued for `subscriber` and not yet in a message, with what a digest shows."""
    return [
        change_record(row)
        for row in db.query(
            "SELECT c.*, d.functions, d.products, d.entity_types, d.extra AS document_extra, "
            "d.document_content, o.queued_at FROM outbox_items o "
            "JOIN changes c ON c.id = o.change_id JOIN documents d ON d.id = c.document_id "
            "WHERE o.subscriber = ? AND o.message IS NULL ORDER BY c.id",
            [subscriber],
        )
    ]


def store_message(
    db: sqlite_utils.Database,
    *,
    kind: str,
    subscriber: str,
    channel: str,
    message_id: str,
    subject: str,
    recipients: list[str],
    eml: bytes,
    payload: dict[str, Any],
    change_ids: Iterable[int] = (),
) -> int:
    """Keep a built message as pending and assign its changes to it. Call in a transaction."""
    now = utc_now()
    row = db.table("messages").insert(
        {
            "kind": kind,
            "subscriber": subscriber,
            "channel": channel,
            "created_at": now,
            "message_id": message_id,
            "subject": subject,
            "recipients": json.dumps(recipients),
            "eml": eml,
            "payload": json.dumps(payload, ensure_ascii=False),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": None,  # due at once (a timestamp could be a second "late")
        }
    )
    message = int(row.last_rowid or 0)
    ids = list(change_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        db.execute(
            f"UPDATE outbox_items SET message = ? WHERE subscriber = ? "  # noqa: S608
            f"AND change_id IN ({','.join('?' * len(chunk))})",
            [message, subscriber, *chunk],
        )
    return message


def pending_messages(
    db: sqlite_utils.Database, now: str | None = None, subscriber: str | None = None
) -> list[dict[str, Any]]:
    """Messages not yet sent (due by `now` when given), oldest first."""
    sql, params = "SELECT * FROM messages WHERE status = 'pending'", []
    if now is not None:
        sql += " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        params.append(now)
    if subscriber is not None:
        sql += " AND subscriber = ?"
        params.append(subscriber)
    return list(db.query(sql + " ORDER BY id", params))


def mark_sent(db: sqlite_utils.Database, message: int) -> None:
    db.execute(
        "UPDATE messages SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
        "last_error = NULL, next_attempt_at = NULL WHERE id = ?",
        [utc_now(), message],
    )


def mark_failed(db: sqlite_utils.Database, message: int, error: str, now: datetime) -> None:
    """Record a failed attempt; the next one waits 5 min, doubling to at most 6 h."""
    attempts = db.execute("SELECT attempts FROM messages WHERE id = ?", [message]).fetchone()[0]
    wait = min(FIRST_RETRY * 2**attempts, LONGEST_WAIT)
    db.execute(
        "UPDATE messages SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
        "WHERE id = ?",
        [error, (now + wait).replace(microsecond=0).isoformat(), message],
    )


def last_message_at(db: sqlite_utils.Database, subscriber: str, kind: str) -> datetime | None:
    row = db.execute(
        "SELECT max(created_at) FROM messages WHERE subscriber = ? AND kind = ?", [subscriber, kind]
    ).fetchone()
    return datetime.fromisoformat(row[0]) if row and row[0] else None


def outbox_status(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Per subscriber: changes waiting for a message, and messages waiting to be sent."""
    waiting = dict(
        db.execute(
            "SELECT subscriber, count(*) FROM outbox_items WHERE message IS NULL GROUP BY 1"
        ).fetchall()
    )
    rows = [
        {
            "type": "message",
            "id": m["id"],
            "kind": m["kind"],
            "subscriber": m["subscriber"],
            "channel": m["channel"],
            "subject": m["subject"],
            "created_at": m["created_at"],
            "attempts": m["attempts"],
            "last_error": m["last_error"],
            "next_attempt_at": m["next_attempt_at"],
        }
        for m in pending_messages(db)
    ]
    rows += [
        {"type": "queued", "subscriber": name, "changes": count} for name, count in waiting.items()
    ]
    return rows


def unhealthy_streak(db: sqlite_utils.Database, source: str) -> tuple[int, str]:
    """How many of the source's latest runs in a row were unhealthy, and the latest reason."""
    streak, reason = 0, ""
    for row in db.query(
        "SELECT healthy, reason FROM source_runs WHERE source = ? ORDER BY run_id DESC LIMIT 1000",
        [source],
    ):
        if row["healthy"]:
            break
        streak += 1
        reason = reason or row["reason"]
    return streak, reason


def last_operator_alert(db: sqlite_utils.Database, source: str) -> str | None:
    row = db.execute(
        "SELECT kind FROM messages WHERE subscriber = 'operator' AND kind LIKE 'source-%' "
        "AND json_extract(payload, '$.source') = ? ORDER BY id DESC LIMIT 1",
        [source],
    ).fetchone()
    return row[0] if row else None
