"""Which version is in force: supersessions announced by any record of a crawl, and documents
gone from BRDR's current register. Pure functions over a source's plan and stored documents.

A document's standing lives in its `extra`: `status` (current, superseded, withdrawn),
`superseded_by` ({id, doc_id, title, url}), `supersession_date`, `left_register_on`. A change of
standing is a `changed` event like any other, never a removal. Superseded is final: a later
listing of the same record that does not say so keeps it. Withdrawn is not: a document listed
again among the current records is current again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from spiders.normalize import BRDR, base_id
from storage.records import Head, Snapshot, SourcePlan, StoredDocument
from tracker.detect import changed_event
from tracker.results import CrawlResult

STANDING_KEYS = ("status", "superseded_by", "supersession_date", "left_register_on")
# Landing-page relations that may name a later document: a supersession or a newer version.
SUCCESSOR_RELATIONS = ("superseded doc", "version hist doc")


def is_superseded(extra: dict[str, Any]) -> bool:
    return extra.get("status") == "superseded"


def carry_standing(
    result: CrawlResult | None, stored: Mapping[str, StoredDocument], source: str
) -> CrawlResult | None:
    """`result` with every item of a document held as superseded still superseded (with its
    successor and dates), whatever the record says of itself."""
    if not result:
        return result
    items = []
    for item in result.get("items", []):
        old = stored.get(f"{source}:{item['key']}")
        if old is not None and is_superseded(old.head.extra):
            extra = {**item["extra"], "status": "superseded"}
            for key in STANDING_KEYS:
                if key not in extra and key in old.head.extra:
                    extra[key] = old.head.extra[key]
            item = {**item, "extra": extra}
        items.append(item)
    carried: CrawlResult = {**result, "items": items}
    return carried


def _superseded(
    snapshot: Snapshot, successor: dict[str, Any], date: str | None, left_on: str | None = None
) -> Snapshot:
    extra = {**snapshot.extra, "status": "superseded", "superseded_by": successor}
    if date and not extra.get("supersession_date"):  # the record's own date wins
        extra["supersession_date"] = date
    if left_on:
        extra["left_register_on"] = left_on
    return dataclasses.replace(snapshot, extra=extra)


def _withdrawn(snapshot: Snapshot, left_on: str) -> Snapshot:
    return dataclasses.replace(
        snapshot, extra={**snapshot.extra, "status": "withdrawn", "left_register_on": left_on}
    )


def _successor(doc_id: str, head: Head) -> dict[str, Any]:
    return {
        "id": doc_id,
        "doc_id": head.extra.get("doc_id"),
        "title": head.title,
        "url": head.url,
    }


def _restate(
    plan: SourcePlan, stored: Mapping[str, StoredDocument], doc_id: str, new: Snapshot
) -> None:
    """Make `new` the document's state this run, with the one event that makes."""
    earlier = [e for e in plan.events if e.document_id == doc_id]
    plan.events = [e for e in plan.events if e.document_id != doc_id]
    plan.refreshed.discard(doc_id)
    old = stored.get(doc_id)
    if doc_id in plan.seen:
        plan.seen[doc_id] = (plan.seen[doc_id][0], new)
        plan.unchanged.discard(doc_id)
    elif old is not None and old.status == "active":
        plan.restated[doc_id] = (old.listing, new)
    else:
        return
    if earlier and earlier[0].kind == "new":  # first seen already superseded: still new
        plan.events.append(dataclasses.replace(earlier[0], snapshot=new))
    elif old is not None and old.content_hash != new.content_hash():
        plan.events.append(changed_event(doc_id, old.snapshot, new))
    elif old is not None and old.listing_hash != new.listing_hash():
        plan.refreshed.add(doc_id)
    else:
        plan.restated.pop(doc_id, None)


def _held(plan: SourcePlan, stored: Mapping[str, StoredDocument]) -> dict[str, Head]:
    """Every document's short facts as this run knows them: listed now, else as stored
    (active). Reads every stored document's head, no text."""
    held = {d.id: d.head for d in stored.values() if d.status == "active"}
    held.update({doc_id: snap.head for doc_id, (_, snap) in plan.seen.items()})
    held.update({doc_id: snap.head for doc_id, (_, snap) in plan.restated.items()})
    return held


def _current(plan: SourcePlan, stored: Mapping[str, StoredDocument], doc_id: str) -> Snapshot:
    """A held document's whole state this run (its text read from the store if need be)."""
    if doc_id in plan.restated:
        return plan.restated[doc_id][1]
    if doc_id in plan.seen and doc_id not in plan.unchanged:
        return plan.seen[doc_id][1]
    return stored[doc_id].snapshot


def _by_base(held: dict[str, Head]) -> dict[str, str]:
    """BRDR document id without language (the current version's) -> the tracker's id."""
    return {
        base_id(str(s.extra["doc_id"])): doc_id
        for doc_id, s in held.items()
        if s.extra.get("doc_id")
    }


def announce_supersessions(plan: SourcePlan, stored: Mapping[str, StoredDocument]) -> None:
    """Mark the held documents that a record of this crawl supersedes (`supersedes`) or lists
    as an earlier version of itself (`version_history`, when it is dated later)."""
    if not any(
        record.extra.get("supersedes") or record.extra.get("version_history")
        for _, record in plan.seen.values()
    ):
        return  # nothing names another document: no need to read what is held
    held = _held(plan, stored)
    by_base = _by_base(held)
    claims: dict[str, tuple[str, Snapshot]] = {}
    for doc_id, (_, record) in sorted(plan.seen.items(), key=lambda e: e[1][1].date or ""):
        named = [(x, True) for x in record.extra.get("supersedes", [])]
        named += [(x, False) for x in record.extra.get("version_history", [])]
        for other, explicit in named:
            target = by_base.get(base_id(str(other)))
            if target is None or target == doc_id or target in claims:
                continue
            old = held[target]
            if not explicit and not (record.date and old.date and record.date > old.date):
                continue  # an older record's history names newer versions: not a supersession
            if is_superseded(old.extra) and old.extra.get("superseded_by"):
                continue  # superseded is final: the first successor recorded stays
            claims[target] = (doc_id, record)
    for target, (doc_id, record) in claims.items():
        successor = _successor(doc_id, record.head)
        _restate(
            plan,
            stored,
            target,
            _superseded(_current(plan, stored, target), successor, record.date),
        )


def left_register(plan: SourcePlan, stored: Mapping[str, StoredDocument]) -> list[StoredDocument]:
    """Held current documents that a healthy full sweep of a register (BRDR) no longer lists.

    Only a sweep in which every listing was read whole and healthy counts: a document that
    moved to another document type is missing from its old listing, and shows up in its new
    one only if that one was read whole too."""
    if not plan.verdicts:
        return []
    if not all(v.healthy and v.complete for v in plan.verdicts):
        return []
    swept = {v.url for v in plan.verdicts}
    return [
        doc
        for doc in stored.values()
        if doc.status == "active"
        and doc.listing in swept
        and doc.id not in plan.seen
        and doc.id not in plan.restated
        and doc.head.extra.get("status", "current") == "current"
    ]


def _lookup_successor(
    snapshot: Head, related: Iterable[dict[str, Any]], held: dict[str, Head]
) -> tuple[dict[str, Any], str | None] | None:
    """The document in force after `snapshot`'s, from what its landing page relates: a later
    supersession or version, the one marked current first, else the newest."""
    own_base = base_id(str(snapshot.extra.get("doc_id", "")))
    later = [
        r
        for r in related
        if str(r.get("relation", "")).casefold() in SUCCESSOR_RELATIONS
        and base_id(str(r.get("doc_id", ""))) != own_base
        and snapshot.date
        and r.get("issue_date")
        and r["issue_date"] > snapshot.date
    ]
    if not later:
        return None
    best = max(
        later, key=lambda r: (str(r.get("version", "")).casefold() == "current", r["issue_date"])
    )
    by_base = _by_base(held)
    held_id = by_base.get(base_id(best["doc_id"]))
    if held_id:
        return _successor(held_id, held[held_id]), best["issue_date"]
    successor = {
        "doc_id": best["doc_id"],
        "title": best.get("title") or "",
        "url": f"{BRDR}/eng/doc-ldg/docId/{best['doc_id']}",
    }
    return successor, best["issue_date"]


def settle_departures(
    plan: SourcePlan,
    stored: Mapping[str, StoredDocument],
    departed: list[StoredDocument],
    lookups: dict[str, dict[str, Any]],
    today: str,
    max_withdrawals: int = -1,
) -> None:
    """Record what each departed document became: superseded (successor and date where its
    landing page names them) or withdrawn from the current register. One not looked up this
    run (the lookup crawl died, or the per-run cap) waits for the next full sweep.

    More than `max_withdrawals` withdrawals (-1: no limit) are held, not marked: the plan
    carries them and says why. Supersessions are evidence and are marked all the same."""
    held = _held(plan, stored)
    withdrawals = []
    for doc in departed:
        found = lookups.get(doc.id)
        if found is None:
            continue
        successor = _lookup_successor(doc.head, found["related"], held) if found["ok"] else None
        if successor:
            new = _superseded(doc.snapshot, successor[0], successor[1], left_on=today)
            _restate(plan, stored, doc.id, new)
        else:
            withdrawals.append(doc)
    if 0 <= max_withdrawals < len(withdrawals):
        plan.held = withdrawals
        plan.held_reason = (
            f"{len(withdrawals)} current documents left the register in one sweep with nothing "
            f"naming a successor (more than [health] max_withdrawals_per_sweep = "
            f"{max_withdrawals}); none is marked withdrawn. If the register did withdraw them, "
            "run `hkma-tracker run --full-sweep --accept-withdrawals`"
        )
        return
    for doc in withdrawals:
        _restate(plan, stored, doc.id, _withdrawn(doc.snapshot, today))
