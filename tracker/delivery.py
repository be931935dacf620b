"""Delivery: build each subscriber's due digest from the outbox, send pending messages, and
raise operator alerts for sources that broke or recovered.

Order of work for a subscriber: first retry what is already pending (an older message is
never overtaken); only when nothing is pending is a new digest built, from every change
queued since, one per cadence window. A backlog therefore goes out as one digest.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr

import sqlite_utils

from alerts.channels import Channel, DeliveryError, FileChannel, SmtpChannel, WebhookChannel
from alerts.digest import Digest
from alerts.subscribers import EVERYONE, Subscriber
from storage.db import write_transaction
from storage.outbox import (
    last_message_at,
    last_operator_alert,
    mark_failed,
    mark_sent,
    pending_messages,
    store_message,
    unhealthy_streak,
    unsent_changes,
)
from tracker.config import Config

logger = logging.getLogger(__name__)
LATE = timedelta(hours=1)  # a digest with changes queued longer ago than this says so


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    built: int = 0


def subscribers_of(config: Config) -> tuple[Subscriber, ...]:
    return config.subscribers or (EVERYONE,)


def channels_of(config: Config) -> dict[str, Channel]:
    return {
        "file": FileChannel(config.digest_folder),
        "smtp": SmtpChannel(config.smtp),
        "webhook": WebhookChannel(timeout=config.smtp["timeout"]),
    }


def _domain(config: Config) -> str:
    address = parseaddr(config.smtp["from"])[1]
    return address.rsplit("@", 1)[-1] if "@" in address else "hkma-tracker.local"


def build_digest(
    db: sqlite_utils.Database, config: Config, subscriber: Subscriber, now: datetime
) -> int | None:
    """Store the subscriber's next digest if its cadence allows and changes wait; its id."""
    if pending_messages(db, subscriber=subscriber.name):
        return None  # the pending one goes first; later changes wait for the next digest
    if not subscriber.cadence.due(last_message_at(db, subscriber.name, "digest"), now):
        return None
    changes = unsent_changes(db, subscriber.name)
    if not changes:
        return None
    oldest = datetime.fromisoformat(min(c["queued_at"] for c in changes))
    note = ""
    if now - oldest > LATE:
        note = (
            f"Delayed: these changes were detected from {oldest:%Y-%m-%d %H:%M} UTC on; "
            "an earlier delivery failed or was not yet due."
        )
    digest = Digest.of_changes(now, changes, note)
    message_id = make_msgid(idstring=subscriber.name, domain=_domain(config))
    if subscriber.webhook:
        channel, recipients = "webhook", [subscriber.webhook]
    else:
        channel = "smtp" if config.smtp_configured else "file"
        recipients = list(subscriber.emails)
    email = digest.to_email(config.smtp["from"], recipients, message_id)
    return store_message(
        db,
        kind="digest",
        subscriber=subscriber.name,
        channel=channel,
        message_id=message_id,
        subject=digest.subject,
        recipients=recipients,
        eml=email.as_bytes(policy=SMTP),  # CRLF line ends, as SMTP wants them
        payload=digest.payload(subscriber.webhook_format),
        change_ids=[c["id"] for c in changes],
    )


def operator_message(
    config: Config, kind: str, source: str, reason: str, runs: int
) -> EmailMessage:
    subject = {
        "source-broken": f"HKMA tracker: source {source} is broken",
        "source-recovered": f"HKMA tracker: source {source} recovered",
        "test": "HKMA tracker: test message",
    }[kind]
    body = {
        "source-broken": f"The source {source} was unhealthy in the last {runs} runs.\n\n"
        f"Latest reason: {reason}\n\nIts documents are left untouched until it recovers. "
        "`hkma-tracker status` shows every source.",
        "source-recovered": f"The source {source} is healthy again.",
        "test": "This is a test message from hkma-tracker: the channel works.",
    }[kind]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config.smtp["from"]
    message["To"] = ", ".join(config.operator["emails"]) or "operator"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring=kind, domain=_domain(config))
    message.set_content(body)
    return message


def queue_operator_message(
    db: sqlite_utils.Database,
    config: Config,
    kind: str,
    source: str = "",
    reason: str = "",
    runs: int = 0,
) -> int:
    message = operator_message(config, kind, source, reason, runs)
    return store_message(
        db,
        kind=kind,
        subscriber="operator",
        channel="smtp" if config.smtp_configured else "file",
        message_id=str(message["Message-ID"]),
        subject=str(message["Subject"]),
        recipients=list(config.operator["emails"]),
        eml=message.as_bytes(policy=SMTP),
        payload={"source": source, "reason": reason, "runs": runs},
    )


def raise_operator_alerts(
    db: sqlite_utils.Database,
    config: Config,
    sources: list[str],
    stale: dict[str, str] | None = None,
) -> None:
    """One 'broken' message when a source reaches N unhealthy runs in a row (or, given
    `stale`, has had no healthy run for too long), one 'recovered' message when it is healthy
    again; nothing in between. Call in a transaction."""
    threshold = config.operator["unhealthy_runs"]
    for source in sources:
        streak, reason = unhealthy_streak(db, source)
        last = last_operator_alert(db, source)
        if (streak >= threshold or source in (stale or {})) and last != "source-broken":
            reason = (stale or {}).get(source) or reason
            queue_operator_message(db, config, "source-broken", source, reason, streak)
        elif streak == 0 and source not in (stale or {}) and last == "source-broken":
            queue_operator_message(db, config, "source-recovered", source)


def _describe(error: Exception) -> str:
    """An unexpected error in one line. An encoding error quotes the text it failed on (a
    password, say): only its kind is kept."""
    if isinstance(error, UnicodeError):
        return f"{type(error).__name__}: text that could not be encoded"
    return f"{type(error).__name__}: {error}"[:300]


def deliver(
    db: sqlite_utils.Database,
    config: Config,
    now: datetime | None = None,
    force: bool = False,
    only: str | None = None,
) -> DeliveryReport:
    """Build due digests and send pending messages (all of them with `force`, else those whose
    backoff has passed). A message is marked sent only once its channel took it."""
    now = now or datetime.now(UTC)
    report = DeliveryReport()
    for subscriber in subscribers_of(config):
        if only is not None and subscriber.name != only:
            continue
        try:  # one transaction each: a digest that cannot be built keeps its changes queued
            with write_transaction(db):
                report.built += build_digest(db, config, subscriber, now) is not None
        except sqlite3.Error:
            raise  # the database failed, not this digest: the caller reports that
        except Exception as failure:
            logger.exception("digest for %s could not be built", subscriber.name)
            report.failed.append(f"digest for {subscriber.name}: not built: {_describe(failure)}")
    channels = channels_of(config)
    due = pending_messages(db, None if force else now.replace(microsecond=0).isoformat(), only)
    for message in due:
        label = f"{message['kind']} #{message['id']} for {message['subscriber']}"
        if (
            message["subscriber"] == "operator"
            and not config.operator["emails"]
            and message["channel"] == "smtp"
        ):
            error = "operator.emails is empty"
        else:
            try:
                where = channels[message["channel"]].send(message)
            except DeliveryError as failure:
                error = str(failure)
            except Exception as failure:  # whatever a channel raises, it is not delivered
                error = f"{message['channel']}: {_describe(failure)}"
            else:
                with write_transaction(db):
                    mark_sent(db, message["id"])
                logger.info("sent %s: %s", label, where)
                report.sent.append(where)
                continue
        with write_transaction(db):
            mark_failed(db, message["id"], error, now)
        logger.error("not delivered: %s: %s (kept, retried later)", label, error)
        report.failed.append(f"{label}: {error}")
    return report
