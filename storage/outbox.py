"""The outbox: which changes wait for which subscriber, and the messages built from them.

A message is stored whole (its bytes, its Message-ID) before the first attempt, so every retry
sends exactly the same message; only a digest surely never accepted is replaced, its changes
going into the next one. A message is marked sent only after the channel took it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from storage.db import utc_now
from storage.history import change_record

# Retries: the next run after a few minutes, then doubling, but never more than the gap between
# two hourly runs (a mail server's own queue retries about that often): 5, 10, 20, 40, 50 min.
FIRST_RETRY = timedelta(minutes=5)
LONGEST_WAIT = timedelta(minutes=50)


# Per change (with its document's tags and extra): each subscriber it goes to, and why.
Router = Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]]]]


def queue_changes(db: sqlite_utils.Database, run_id: int, routes_of: Router) -> int:
    """Queue this run's change events for the subscribers `routes_of` names for each, with
    why each goes there. Call in the transaction that recorded them, so that no change is
    ever stored without being queued."""
    changes = [
        change_record(row)
        for row in db.query(
            "SELECT c.*, d.functions, d.products, d.entity_types, "
            "d.extra AS document_extra, d.listing AS document_listing FROM changes c "
            "JOIN documents d ON d.id = c.document_id WHERE c.run_id = ? "
            "AND NOT EXISTS (SELECT 1 FROM outbox_items o WHERE o.change_id = c.id)",
            [run_id],
        )
    ]
    now = utc_now()
    return queue_routes(db, [(c["id"], *route) for c in changes for route in routes_of(c)], now)


def queue_routes(
    db: sqlite_utils.Database, routes: list[tuple[int, str, dict[str, Any]]], now: str
) -> int:
    """Queue changes (id, subscriber, why) not yet queued for that subscriber; how many were.
    A change is queued once per subscriber, whatever asks again."""
    rows = [
        {
            "change_id": change_id,
            "subscriber": name,
            "queued_at": now,
            "message": None,
            "route": json.dumps(route, ensure_ascii=False),
        }
        for change_id, name, route in routes
    ]
    before = db.execute("SELECT total_changes()").fetchone()[0]
    db.table("outbox_items").insert_all(rows, batch_size=1000, ignore=True)
    return int(db.execute("SELECT total_changes()").fetchone()[0] - before)


def routes_of_change(db: sqlite_utils.Database, change_id: int) -> list[dict[str, Any]]:
    """Each subscriber a change was queued for: when, why, and the message it went in."""
    return list(
        db.query(
            "SELECT o.subscriber, o.queued_at, o.route, o.message, m.status AS message_status, "
            "m.sent_at FROM outbox_items o LEFT JOIN messages m ON m.id = o.message "
            "WHERE o.change_id = ? ORDER BY o.subscriber",
            [change_id],
        )
    )


def unsent_changes(db: sqlite_utils.Database, subscriber: str) -> list[dict[str, Any]]:
    """Changes queued for `subscriber` and not yet in a message, with what a digest shows."""
    return [
        change_record(row)
        for row in db.query(
            "SELECT c.*, d.functions, d.products, d.entity_types, d.extra AS document_extra, "
            "d.corrections, d.listing AS document_listing, "
            "d.last_seen_at AS document_last_seen, p.title AS listing_title, "
            "t.document_content, t.text AS listing_text, o.queued_at, o.route "
            "FROM outbox_items o "
            "JOIN changes c ON c.id = o.change_id JOIN documents d ON d.id = c.document_id "
            "JOIN texts t ON t.id = d.text_id "
            # The listing's own document, where the listing is a page (topic pages).
            "LEFT JOIN documents p ON p.id = d.source || ':' || d.listing "
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


def mark_failed(
    db: sqlite_utils.Database,
    message: int,
    error: str,
    now: datetime,
    maybe_delivered: bool = False,
) -> None:
    """Record a failed attempt (and whether it may have delivered the message after all); the
    next one waits FIRST_RETRY, doubling to at most LONGEST_WAIT."""
    attempts = db.execute("SELECT attempts FROM messages WHERE id = ?", [message]).fetchone()[0]
    wait = min(FIRST_RETRY * 2**attempts, LONGEST_WAIT)
    db.execute(
        "UPDATE messages SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
        "first_failed_at = coalesce(first_failed_at, ?), "
        "maybe_delivered = max(maybe_delivered, ?) WHERE id = ?",
        [
            error,
            (now + wait).replace(microsecond=0).isoformat(),
            now.replace(microsecond=0).isoformat(),
            int(maybe_delivered),
            message,
        ],
    )


def replace_message(db: sqlite_utils.Database, message: int) -> None:
    """Retire a pending message that was surely never delivered: its changes wait again, to go
    into the next message with those queued after it. Call in a transaction."""
    db.execute("UPDATE messages SET status = 'replaced' WHERE id = ?", [message])
    db.execute("UPDATE outbox_items SET message = NULL WHERE message = ?", [message])


def inherit_failure(db: sqlite_utils.Database, message: int, replaced: int) -> None:
    """A rebuilt message keeps the time its predecessor's failures began: delivery to that
    subscriber has been failing since then, whatever was rebuilt in between."""
    db.execute(
        "UPDATE messages SET first_failed_at = "
        "(SELECT first_failed_at FROM messages WHERE id = ?) WHERE id = ?",
        [replaced, message],
    )


def failing_deliveries(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Per recipient (subscriber or operator) whose pending messages have failed (or replace
    one that failed): since when, attempts of the pending ones, the last error seen."""
    return list(
        db.query(
            "SELECT subscriber, min(first_failed_at) AS failing_since, "
            "sum(attempts) AS attempts, "
            "(SELECT last_error FROM messages l WHERE l.subscriber = m.subscriber "
            " AND l.last_error IS NOT NULL AND l.status != 'sent' ORDER BY l.id DESC LIMIT 1) "
            "AS last_error "
            "FROM messages m WHERE status = 'pending' AND first_failed_at IS NOT NULL "
            "GROUP BY subscriber ORDER BY subscriber"
        )
    )


def outbox_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Messages pending, and how many of them after a failed attempt."""
    pending, failed = db.execute(
        "SELECT count(*), coalesce(sum(attempts > 0), 0) FROM messages WHERE status = 'pending'"
    ).fetchone()
    return {"pending": pending, "failed_attempts": failed}


def last_sent_at(db: sqlite_utils.Database, subscriber: str, kind: str = "digest") -> str | None:
    row = db.execute(
        "SELECT max(sent_at) FROM messages WHERE subscriber = ? AND kind = ? AND status = 'sent'",
        [subscriber, kind],
    ).fetchone()
    return row[0] if row else None


def last_message_at(db: sqlite_utils.Database, subscriber: str, kind: str) -> datetime | None:
    row = db.execute(
        "SELECT max(created_at) FROM messages WHERE subscriber = ? AND kind = ?", [subscriber, kind]
    ).fetchone()
    return datetime.fromisoformat(row[0]) if row and row[0] else None


def outbox_status(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Messages waiting to be sent; per subscriber, how many changes wait for a message; and
    each waiting change with why it was queued for that subscriber (its route)."""
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
    rows += [
        {"type": "queued_change", **row, "route": json.loads(row["route"] or "null")}
        for row in db.query(
            "SELECT o.subscriber, o.change_id, c.title, o.queued_at, o.route FROM outbox_items o "
            "JOIN changes c ON c.id = o.change_id WHERE o.message IS NULL "
            "ORDER BY o.subscriber, o.change_id"
        )
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


def last_delivery_alert(db: sqlite_utils.Database) -> str | None:
    """The kind of the latest delivery-stuck / delivery-recovered operator message."""
    row = db.execute(
        "SELECT kind FROM messages WHERE subscriber = 'operator' AND kind LIKE 'delivery-%' "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def last_operator_alert(db: sqlite_utils.Database, source: str) -> str | None:
    row = db.execute(
        "SELECT kind FROM messages WHERE subscriber = 'operator' AND kind LIKE 'source-%' "
        "AND json_extract(payload, '$.source') = ? ORDER BY id DESC LIMIT 1",
        [source],
    ).fetchone()
    return row[0] if row else None


def last_alert_reason(db: sqlite_utils.Database, kind: str, source: str) -> str | None:
    """The reason given by the latest operator message of `kind` about `source`, if any."""
    row = db.execute(
        "SELECT json_extract(payload, '$.reason') FROM messages WHERE subscriber = 'operator' "
        "AND kind = ? AND json_extract(payload, '$.source') = ? ORDER BY id DESC LIMIT 1",
        [kind, source],
    ).fetchone()
    return row[0] if row else None


def last_unbuilt_alert(db: sqlite_utils.Database, subscriber: str) -> dict[str, Any] | None:
    """The operator alert that `subscriber`'s digest cannot be built, if none of its digests
    has been built since (when, and why)."""
    rows = list(
        db.query(
            "SELECT created_at, json_extract(payload, '$.reason') AS reason FROM messages "
            "WHERE subscriber = 'operator' AND kind = 'digest-unbuilt' "
            "AND json_extract(payload, '$.source') = ? AND id > coalesce("
            "(SELECT max(id) FROM messages WHERE subscriber = ? AND kind = 'digest'), 0) "
            "ORDER BY id LIMIT 1",
            [subscriber, subscriber],
        )
    )
    return rows[0] if rows else None
