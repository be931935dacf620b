"""Routing: which subscriber gets which change and why, in words an officer reads; the
changes an officer's tag correction brings to subscribers who did not get them before; and
`route`, the answer to "why did I (not) get this?"."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from alerts.digest import hong_kong_day
from alerts.subscribers import EVERYONE, Exclusion, Route, Subscriber
from storage.db import utc_now
from storage.history import latest_substantive_change
from storage.outbox import Router, queue_routes, routes_of_change
from storage.tags import machine_tags
from tracker.config import Config
from tracker.sources import binding


def subscribers_of(config: Config) -> tuple[Subscriber, ...]:
    return config.subscribers or (EVERYONE,)


def routed(change: dict[str, Any]) -> dict[str, Any]:
    """A change as subscribers' filters read it: with `binding` (a binding instrument or
    consultation, whose untagged changes filtered subscribers still get)."""
    extra = json_dict(change.get("document_extra"))
    listing = str(change.get("document_listing") or "")
    return {**change, "binding": binding(change["source"], extra, listing)}


def routes_of(subscribers: tuple[Subscriber, ...]) -> Router:
    def route(change: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        change = routed(change)
        return [
            (s.name, found.as_dict())
            for s in subscribers
            if isinstance(found := s.route(change), Route)
        ]

    return route


KIND_WORDS = {"functions": "function", "products": "product", "entity_types": "entity type"}


def _or(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def untagged_why(change: dict[str, Any], kinds: list[str]) -> str:
    """Why a binding instrument has no tag of `kinds`, in an officer's words: what the rules
    read of it and found nothing in."""
    extra = json_dict(change.get("document_extra"))
    document = json_dict(change.get("document_content"))
    read = ["title"]
    if change.get("listing_text") or document.get("text"):
        read.append("text")
    if topics := extra.get("topics"):
        read.append(f"BRDR topics ({', '.join(map(str, topics))})")
    return f"No {' or '.join(KIND_WORDS[k] for k in kinds)} tag: no rule matched its {_or(read)}"


def tagged_by(change: dict[str, Any], matched: dict[str, list[str]] | None = None) -> str:
    """Which of the tags a change matched on (all its tags, without `matched`) a person set:
    "Tagged AML/CFT by J. Chan on 2026-12-02" ("" when none)."""
    corrections = json_dict(change.get("corrections"))
    found = [
        f"Tagged {name} by {c['by']} on {hong_kong_day(c['at'])}"
        for kind, named in corrections.items()
        for name, c in named.items()
        if c["action"] == "add" and (matched is None or name in matched.get(kind, []))
    ]
    return "; ".join(found)


def explain(subscriber: Subscriber, change: dict[str, Any]) -> tuple[str, bool]:
    """Why a queued change is in a subscriber's digest (words, "" where its tags say it), and
    whether it goes in the untagged section. Decided again with the document's tags as they
    are now (its text may have been read since it was queued, or an officer tagged it); a
    change the filters now exclude keeps the reason it was queued for."""
    now = subscriber.route(routed(change))
    if isinstance(now, Route):
        via, matched, kinds = now.via, now.matched, list(now.untagged)
    else:
        queued = json_dict(change.get("route"))
        via, matched, kinds = queued.get("via", ""), queued.get("matched", {}), []
        if via == "untagged":
            words = " or ".join(KIND_WORDS[k] for k in queued["untagged"])
            return f"Queued while it had no {words} tag", True
    if via == "untagged":
        return untagged_why(change, kinds), True
    return tagged_by(change, None if via == "everything" else matched), False


def json_dict(value: Any) -> dict[str, Any]:
    """A stored JSON column (or its already-loaded value) as a dict; {} for anything else."""
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, dict) else {}


def queue_correction(
    db: sqlite_utils.Database,
    config: Config,
    document_id: str,
    before: dict[str, list[str]],
    correction: dict[str, Any],
) -> tuple[int | None, list[str]]:
    """After an officer's correction moved a document's tags from `before` to its tags in
    force now: queue the document's latest substantive change, once, for every subscriber it
    matches now and did not before. The change and the subscribers it was queued for. Call in
    the transaction that recorded the correction."""
    change = latest_substantive_change(db, document_id)
    if change is None:
        return None, []
    now = routed(change)
    earlier = {**now, **before}
    already = {r["subscriber"] for r in routes_of_change(db, change["id"])}
    queued = []
    for subscriber in subscribers_of(config):
        found = subscriber.route(now)
        if (
            isinstance(found, Route)
            and not isinstance(subscriber.route(earlier), Route)
            and subscriber.name not in already
        ):
            reason = {**found.as_dict(), "via": "correction", "correction": correction}
            queued.append((change["id"], subscriber.name, reason))
    queue_routes(db, queued, utc_now())
    return change["id"], [name for _, name, _ in queued]


def route_report(
    db: sqlite_utils.Database, config: Config, change: dict[str, Any], only: str | None = None
) -> list[dict[str, Any]]:
    """For each subscriber (or `only`), whether a change was or would be delivered and why:
    queued or sent (with the message), through which filter and tag (with the tag's evidence,
    or the officer who set it), as untagged, or which filter excludes it."""
    queued = {r["subscriber"]: r for r in routes_of_change(db, change["id"])}
    evidence = machine_tags(db, change["document_id"])
    corrections = json_dict(change.get("corrections"))
    answers = []
    for subscriber in subscribers_of(config):
        if only not in (None, subscriber.name):
            continue
        found = subscriber.route(routed(change))
        answer: dict[str, Any] = {"subscriber": subscriber.name}
        if isinstance(found, Route):
            answer |= {"would_go": True, **found.as_dict()}
            answer["why"], _ = explain(subscriber, change)
            answer["evidence"] = {
                f"{kind}: {name}": _tag_evidence(evidence, corrections, kind, name)
                for kind, names in found.matched.items()
                if kind in evidence
                for name in names
            }
        else:
            answer |= {
                "would_go": False,
                "excluded_by": found.filter,
                "wanted": list(found.wanted),
                "had": list(found.had),
                "why": _excluded(found, corrections),
            }
        if (item := queued.get(subscriber.name)) is not None:
            answer["queued"] = {
                "at": item["queued_at"],
                "route": json_dict(item["route"]),
                "message": item["message"],
                "message_status": item["message_status"],
                "sent_at": item["sent_at"],
            }
        answers.append(answer)
    return answers


def _tag_evidence(
    evidence: dict[str, dict[str, Any]], corrections: dict[str, Any], kind: str, name: str
) -> list[str]:
    correction = corrections.get(kind, {}).get(name)
    if correction and correction["action"] == "add":
        note = f": {correction['note']}" if correction.get("note") else ""
        return [f"set by {correction['by']} on {hong_kong_day(correction['at'])}{note}"]
    return [f"{e['rule']} in the {e['where']}" for e in evidence.get(kind, {}).get(name, [])]


def _excluded(found: Exclusion, corrections: dict[str, Any]) -> str:
    if not found.wanted:
        return found.reason[:1].upper() + found.reason[1:]
    removed = [
        f"{name} removed by {c['by']} on {hong_kong_day(c['at'])}"
        for name, c in corrections.get(found.filter, {}).items()
        if c["action"] == "remove" and name in found.wanted
    ]
    had = f" ({', '.join(found.had)})" if found.had else ""
    return (
        f"The {found.filter.replace('_', ' ')} filter wants {', '.join(found.wanted)}; "
        f"the change {found.reason}{had}" + (f"; {'; '.join(removed)}" if removed else "")
    )
