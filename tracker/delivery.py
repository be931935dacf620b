"""Delivery: build each subscriber's due digest from the outbox, send pending messages, and
raise operator alerts for sources that broke or recovered.

Order of work for a subscriber: first retry what is already pending (an older message is
never overtaken); only when nothing is pending is a new digest built, from every change
queued since, one per cadence window, and sent in the same call. A pending digest that was
surely never accepted is rebuilt with the changes queued behind it; one that may have arrived
is resent byte for byte. A backlog therefore goes out as one digest (two after an ambiguous
failure), never one per run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr
from types import FrameType
from typing import Any

import sqlite_utils

from alerts.calendar import calendar_bytes, calendar_name
from alerts.channels import Channel, DeliveryError, FileChannel, SmtpChannel, WebhookChannel
from alerts.digest import UNTAGGED, UNTAGGED_TITLE, Digest, notice_payload
from alerts.subscribers import EVERYONE, Subscriber
from spiders.normalize import is_loopback_host
from storage.compliance import OPEN_COUNT_CAP, open_reviews
from storage.db import write_transaction
from storage.outbox import (
    failing_deliveries,
    inherit_failure,
    last_alert_reason,
    last_delivery_alert,
    last_message_at,
    last_operator_alert,
    last_unbuilt_alert,
    mark_failed,
    mark_sent,
    pending_messages,
    queue_changes,
    replace_message,
    store_message,
    unhealthy_streak,
    unsent_changes,
)
from storage.records import SourcePlan
from tracker.compliance import calendar_entries
from tracker.config import Config
from tracker.extract import from_subject
from tracker.routing import explain, json_dict, routes_of, subscribers_of
from tracker.rule_records import record_context
from tracker.sources import DIGEST_GROUPS, digest_group, listed_in, source_titles

logger = logging.getLogger(__name__)
LATE = timedelta(hours=1)  # a digest with changes queued longer ago than this says so


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    built: int = 0


@dataclass(frozen=True)
class Preview:
    """A message as it would go out now: for whom, its subject, and its text if it is new."""

    subscriber: str
    subject: str
    text: str | None  # None for a message already pending (shown by subject)


def preview_digests(
    db: sqlite_utils.Database, config: Config, only: str | None = None
) -> list[Preview]:
    """What `digest --send` would send now, built in a transaction that is rolled back:
    nothing is stored, nothing is sent."""
    previews = []
    with write_transaction(db, commit=False):
        for subscriber in subscribers_of(config):
            if only not in (None, subscriber.name):
                continue
            built = build_digest(db, config, subscriber, datetime.now(UTC))
            for message in pending_messages(db, subscriber=subscriber.name):
                new = message["id"] == built
                text = _text_part(message["eml"]) if new else None
                previews.append(Preview(subscriber.name, message["subject"], text))
    return previews


def _text_part(eml: bytes) -> str:
    message = message_from_bytes(bytes(eml), policy=policy.default)
    body = message.get_body(("plain",))
    return str(body.get_content()) if body is not None else ""


def queue_for_subscribers(db: sqlite_utils.Database, config: Config, run_id: int) -> int:
    """Queue a run's changes for each subscriber whose filters they match, with why."""
    return queue_changes(db, run_id, routes_of(subscribers_of(config)))


def channels_of(config: Config) -> dict[str, Channel]:
    return {
        "file": FileChannel(config.digest_folder),
        "smtp": SmtpChannel(config.smtp, is_local=is_loopback_host),
        "webhook": WebhookChannel(timeout=config.smtp.timeout),
    }


def _domain(config: Config) -> str:
    address = parseaddr(config.smtp.sender)[1]
    return address.rsplit("@", 1)[-1] if "@" in address else "hkma-tracker.local"


def build_digest(
    db: sqlite_utils.Database,
    config: Config,
    subscriber: Subscriber,
    now: datetime,
    replacing: bool = False,
) -> int | None:
    """Store the subscriber's next digest if its cadence allows and changes wait; its id.
    `replacing`: it takes the place of a due digest that was never accepted (no cadence
    check: that one was due)."""
    if pending_messages(db, subscriber=subscriber.name):
        return None  # the pending one goes first; later changes wait for the next digest
    last = last_message_at(db, subscriber.name, "digest")
    if not replacing and not subscriber.cadence.due(last, now):
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
    for change in changes:  # its section of the digest, and where it is listed: the source
        extra = json.loads(change.get("document_extra") or "{}")
        change["digest_group"] = digest_group(
            change["source"], extra, str(change.get("document_listing") or "")
        )
        change["listed_in"] = listed_in(change["source"], extra, change.get("listing_title"))
        text = json_dict(change.get("document_content")).get("text")
        change["excerpt_from"] = from_subject(str(text or ""))
        change["why"], untagged = explain(subscriber, change)
        if untagged:
            change["digest_group"] = UNTAGGED
        change.update(record_context(db, change["document_id"]))
    digest = Digest.of_changes(
        now,
        changes,
        note,
        source_titles(),
        {**DIGEST_GROUPS, UNTAGGED: UNTAGGED_TITLE},
        "" if subscriber is EVERYONE else subscriber.describe(),
        open_reviews(db, subscriber.name),
    )
    if digest.open_reviews >= OPEN_COUNT_CAP:  # counted no further
        digest = dataclasses.replace(digest, open_reviews_at_least=True)
    if subscriber.calendar and digest.deadlines_changed:
        tags = {
            "functions": list(subscriber.functions),
            "products": list(subscriber.products),
            "regulators": list(subscriber.regulators),
        }
        ics = calendar_bytes(calendar_entries(db, tags), calendar_name(tags), now)
        digest = dataclasses.replace(digest, calendar=ics)
    message_id = make_msgid(idstring=subscriber.name, domain=_domain(config))
    if subscriber.webhook:
        channel, recipients = "webhook", [subscriber.webhook]
    else:
        channel = "smtp" if config.smtp_configured else "file"
        recipients = list(subscriber.emails)
    email = digest.to_email(config.smtp.sender, recipients, message_id)
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
        "delivery-stuck": "HKMA tracker: digests are not being delivered",
        "delivery-recovered": "HKMA tracker: digest delivery recovered",
        "digest-unbuilt": f"HKMA tracker: the digest for {source} cannot be built",
        "withdrawals-held": f"HKMA tracker: {source}: {runs} withdrawals held for you",
        "test": "HKMA tracker: test message",
    }[kind]
    body = {
        "source-broken": (
            f"The source {source} was unhealthy in the last {runs} runs."
            if runs
            else f"The source {source} is overdue: its scheduled checks brought no healthy run."
        )
        + f"\n\nLatest reason: {reason}\n\nIts documents are left untouched until it recovers. "
        "`hkma-tracker status` shows every source.",
        "source-recovered": f"The source {source} is healthy again.",
        "delivery-stuck": f"Delivery keeps failing:\n\n{reason}\n\nThe messages stay in the "
        "outbox and are retried; `hkma-tracker outbox` lists them, `hkma-tracker digest "
        "--send` tries them now.",
        "delivery-recovered": "Every message that was failing has been delivered.",
        "digest-unbuilt": f"The digest for {source} cannot be built:\n\n{reason}\n\nIts "
        "changes stay queued and every run tries again; `hkma-tracker status` shows it "
        "until a digest for it is built.",
        "withdrawals-held": f"A full sweep of {source} no longer lists {runs} current "
        f"documents, and nothing names a successor:\n\n{reason}\n\nSo many at once is more "
        "often a register serving too little than a wave of withdrawals, so none is marked "
        "withdrawn and every full sweep holds them again. Check a few on the register; if they "
        "were withdrawn, `hkma-tracker run --full-sweep --accept-withdrawals` marks them.",
        "test": "This is a test message from hkma-tracker: the channel works.",
    }[kind]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config.smtp.sender
    message["To"] = ", ".join(config.operator.emails) or "operator"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring=kind, domain=_domain(config))
    message.set_content(body)
    return message


def send_test_alert(
    db: sqlite_utils.Database, config: Config, by_file: bool = False
) -> tuple[int, DeliveryReport]:
    """Queue a test message to the operator and deliver it now (`by_file`: into the digest
    folder even where SMTP is set up). The message id and the delivery report."""
    if by_file:
        config = dataclasses.replace(config, smtp=dataclasses.replace(config.smtp, host=""))
    with write_transaction(db):
        message = queue_operator_message(db, config, "test")
    return message, deliver(db, config, force=True, only="operator")


def queue_operator_message(
    db: sqlite_utils.Database,
    config: Config,
    kind: str,
    source: str = "",
    reason: str = "",
    runs: int = 0,
) -> int:
    """Queue an operator message on every operator channel: the addresses (by SMTP, or into
    the digest folder without SMTP or addresses) and the webhook if one is set, so that an
    alert about one channel can travel by another. The id of the first."""
    message = operator_message(config, kind, source, reason, runs)
    subject, eml = str(message["Subject"]), message.as_bytes(policy=SMTP)

    def store(channel: str, recipients: list[str], payload: dict[str, Any]) -> int:
        return store_message(
            db,
            kind=kind,
            subscriber="operator",
            channel=channel,
            message_id=str(message["Message-ID"]),
            subject=subject,
            recipients=recipients,
            eml=eml,
            payload=payload,
        )

    by_mail = config.smtp_configured and config.operator.emails
    first = store(
        "smtp" if by_mail else "file",
        list(config.operator.emails),
        {"source": source, "reason": reason, "runs": runs},
    )
    if config.operator.webhook:
        text = str(message.get_content()).strip()
        fmt = config.operator.webhook_format
        store("webhook", [config.operator.webhook], notice_payload(fmt, subject, text))
    return first


def raise_operator_alerts(
    db: sqlite_utils.Database,
    config: Config,
    sources: list[str],
    stale: dict[str, str] | None = None,
) -> None:
    """One 'broken' message when a source reaches N unhealthy runs in a row (or, given
    `stale`, has had no healthy run for too long), one 'recovered' message when it is healthy
    again; nothing in between. Call in a transaction."""
    threshold = config.operator.unhealthy_runs
    for source in sources:
        streak, reason = unhealthy_streak(db, source)
        last = last_operator_alert(db, source)
        if (streak >= threshold or source in (stale or {})) and last != "source-broken":
            reason = (stale or {}).get(source) or reason
            queue_operator_message(db, config, "source-broken", source, reason, streak)
        elif streak == 0 and source not in (stale or {}) and last == "source-broken":
            queue_operator_message(db, config, "source-recovered", source)


def raise_withdrawal_alert(db: sqlite_utils.Database, config: Config, plan: SourcePlan) -> None:
    """Tell the operator which withdrawals a sweep held, once for each set of documents (every
    full sweep holds them again until someone decides). Call in a transaction."""
    if not plan.held:
        return
    lines = "\n".join(
        f"- {doc.head.extra.get('doc_id') or doc.id}: {doc.head.title} ({doc.head.url})"
        for doc in sorted(plan.held, key=lambda d: d.id)
    )
    kind = "withdrawals-held"
    if last_alert_reason(db, kind, plan.source) != lines:
        queue_operator_message(db, config, kind, plan.source, lines, len(plan.held))


def _describe(error: Exception) -> str:
    """An unexpected error in one line. An encoding error quotes the text it failed on (a
    password, say): only its kind is kept."""
    if isinstance(error, UnicodeError):
        return f"{type(error).__name__}: text that could not be encoded"
    return f"{type(error).__name__}: {error}"[:300]


def raise_delivery_alerts(db: sqlite_utils.Database, config: Config, now: datetime) -> None:
    """One 'delivery stuck' operator message once a subscriber's message has been failing for
    longer than `[operator] delivery_stuck_after`, one 'delivery recovered' when nothing fails
    any more; nothing in between. Call in a transaction."""
    failing = [f for f in failing_deliveries(db) if f["subscriber"] != "operator"]
    for subscriber in subscribers_of(config):  # a digest not built is not delivered either
        if alert := last_unbuilt_alert(db, subscriber.name):
            failing.append(
                {
                    "subscriber": subscriber.name,
                    "failing_since": alert["created_at"],
                    "attempts": None,
                    "last_error": f"digest not built: {alert['reason']}",
                }
            )
    threshold = timedelta(seconds=config.operator.delivery_stuck_after)
    stuck = [f for f in failing if now - datetime.fromisoformat(f["failing_since"]) >= threshold]
    last = last_delivery_alert(db)
    if stuck and last != "delivery-stuck":
        lines = "\n".join(
            f"- {f['subscriber']}: failing since {f['failing_since']} UTC"
            + (f" ({f['attempts']} attempts)" if f["attempts"] is not None else "")
            + f": {f['last_error']}"
            for f in stuck
        )
        queue_operator_message(db, config, "delivery-stuck", reason=lines)
    elif not failing and last == "delivery-stuck":
        queue_operator_message(db, config, "delivery-recovered")


def stuck_deliveries(db: sqlite_utils.Database) -> str | None:
    """What is pending after a failed attempt, in one line (None when nothing is)."""
    failing = failing_deliveries(db)
    if not failing:
        return None
    return "; ".join(
        f"{f['subscriber']}: failing since {f['failing_since']} UTC: {f['last_error']}"
        for f in failing
    )


MAX_PASSES = 10  # a call sends each message once; passes end when one makes no progress


class OutOfTime(Exception):
    """The time given to delivery ran out in the middle of a send."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise OutOfTime in whatever the block waits on once `seconds` have passed: one timer
    for a whole send (connect, greeting, each command, the body), which a server trickling a
    byte at a time cannot stretch as it stretches a per-read timeout. Only the main thread
    receives the signal; elsewhere the channels' own timeouts apply."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise OutOfTime()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def deliver(
    db: sqlite_utils.Database,
    config: Config,
    now: datetime | None = None,
    force: bool = False,
    only: str | None = None,
    time_left: Callable[[], float] | None = None,
) -> DeliveryReport:
    """Send what is due (everything pending with `force`), and keep going while that makes
    progress: once a subscriber has nothing pending, its next due digest is built from
    everything queued and sent in the same call. A digest that was surely never accepted is
    rebuilt with the changes queued after it, so a backlog is one digest; one that may have
    arrived is resent as it is. An older message is never overtaken. Each message is tried
    at most once a call; a message is marked sent only once its channel took it.
    `time_left` (the run's deadline): no send outlasts it; what is left stays pending."""
    now = now or datetime.now(UTC)
    due_by = None if force else now.replace(microsecond=0).isoformat()
    report = DeliveryReport()
    channels = channels_of(config)
    tried: set[int] = set()
    for _ in range(MAX_PASSES):
        _build_digests(db, config, now, due_by, only, report)
        if only in (None, "operator"):
            with write_transaction(db):
                raise_delivery_alerts(db, config, now)
        due = [m for m in pending_messages(db, due_by, only) if m["id"] not in tried]
        if not due:
            break
        for message in due:
            if time_left is not None and time_left() <= 0:
                left = len([m for m in due if m["id"] not in tried])
                report.failed.append(f"{left} message(s) left pending at the run deadline")
                return report
            tried.add(message["id"])
            _send(db, config, channels, message, now, report, time_left)
    return report


def _build_digests(
    db: sqlite_utils.Database,
    config: Config,
    now: datetime,
    due_by: str | None,
    only: str | None,
    report: DeliveryReport,
) -> None:
    for subscriber in subscribers_of(config):
        if only is not None and subscriber.name != only:
            continue
        try:  # one transaction each: a digest that cannot be built keeps its changes queued
            with write_transaction(db):
                pending = pending_messages(db, subscriber=subscriber.name)
                replacing = bool(pending) and _replaceable(db, pending, due_by)
                if replacing:
                    replace_message(db, pending[0]["id"])
                if replacing or not pending:
                    built = build_digest(db, config, subscriber, now, replacing=replacing)
                    report.built += built is not None
                    if built is not None and replacing:
                        inherit_failure(db, built, pending[0]["id"])
        except sqlite3.Error:
            raise  # the database failed, not this digest: the caller reports that
        except Exception as failure:
            logger.exception("digest for %s could not be built", subscriber.name)
            why = _describe(failure)
            report.failed.append(f"digest for {subscriber.name}: not built: {why}")
            with write_transaction(db):  # its changes stay queued; the operator hears once
                if last_unbuilt_alert(db, subscriber.name) is None:
                    queue_operator_message(db, config, "digest-unbuilt", subscriber.name, why)


def _replaceable(
    db: sqlite_utils.Database, pending: list[dict[str, Any]], due_by: str | None
) -> bool:
    """Whether a subscriber's one pending message may be rebuilt with what was queued since:
    a digest that failed, surely never accepted, due for its retry, with changes waiting."""
    (message,) = pending if len(pending) == 1 else (None,)
    return bool(
        message
        and message["kind"] == "digest"
        and message["attempts"] > 0
        and not message["maybe_delivered"]
        and (
            due_by is None or not message["next_attempt_at"] or message["next_attempt_at"] <= due_by
        )
        and unsent_changes(db, message["subscriber"])
    )


def _send(
    db: sqlite_utils.Database,
    config: Config,
    channels: dict[str, Channel],
    message: dict[str, Any],
    now: datetime,
    report: DeliveryReport,
    time_left: Callable[[], float] | None = None,
) -> None:
    label = f"{message['kind']} #{message['id']} for {message['subscriber']}"
    channel = message["channel"]
    if message["subscriber"] == "operator" and channel == "smtp" and not config.operator.emails:
        channel = "file"  # queued before the addresses were removed: kept on disk instead
    try:
        with time_limit(time_left() if time_left else None):
            where = channels[channel].send(message)
    except OutOfTime:  # it may have arrived (the body may have gone): resent as it is
        error, maybe_delivered = f"{channel}: stopped at the run deadline", True
    except DeliveryError as failure:
        error, maybe_delivered = str(failure), failure.maybe_delivered
    except Exception as failure:  # whatever a channel raises, it is not surely delivered
        error, maybe_delivered = f"{channel}: {_describe(failure)}", True
    else:
        with write_transaction(db):
            mark_sent(db, message["id"])
        logger.info("sent %s: %s", label, where)
        report.sent.append(where)
        return
    with write_transaction(db):
        mark_failed(db, message["id"], error, now, maybe_delivered)
    logger.error("not delivered: %s: %s (kept, retried later)", label, error)
    report.failed.append(f"{label}: {error}")
