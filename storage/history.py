"""Reads and writes of the tracked history: documents, versions, change events, runs, listings."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import sqlite_utils

from storage.db import FETCH_DUE, FETCH_REVALIDATED, LINKED, utc_now
from storage.links import refresh_links
from storage.records import (
    KINDS,
    ChangeEvent,
    DocumentPlan,
    FetchCandidate,
    FetchState,
    Head,
    LinksOf,
    Snapshot,
    SourcePlan,
    StoredDocument,
    StoredDocuments,
    Tagger,
    text_key,
)
from storage.search import cjk_terms
from storage.tags import store_tags


def start_run(db: sqlite_utils.Database, command: str) -> int:
    db.execute(
        "INSERT INTO runs (command, started_at, status) VALUES (?, ?, 'running')",
        [command, utc_now()],
    )
    db.commit()
    return int(db.execute("SELECT last_insert_rowid()").fetchone()[0])


def close_interrupted_runs(
    db: sqlite_utils.Database,
    why: str = "interrupted: its process ended before the run finished",
    exit_code: int | None = None,
) -> int:
    """Close as failed the runs left 'running' by a process that died (killed, out of memory,
    the machine stopped); call while holding the run lock. How many there were."""
    cursor = db.execute(
        "UPDATE runs SET status = 'failed', finished_at = ?, unfinished = ?, "
        "exit_code = coalesce(?, exit_code) WHERE status = 'running'",
        [utc_now(), why, exit_code],
    )
    db.commit()
    return cursor.rowcount


def finish_run(
    db: sqlite_utils.Database, run_id: int, status: str, exit_code: int, unfinished: str = ""
) -> None:
    db.execute(
        "UPDATE runs SET finished_at = ?, status = ?, exit_code = ?, unfinished = ? WHERE id = ?",
        [utc_now(), status, exit_code, unfinished or None, run_id],
    )
    db.commit()


# What is read of every stored document a run considers: no text (see StoredDocument).
_HEAD_COLUMNS = "id, listing, status, content_hash, listing_hash, title, url, date, extra"


def _full_snapshot(db: sqlite_utils.Database, doc_id: str) -> Snapshot:
    row = next(
        db.query(
            "SELECT d.title, d.url, d.date, t.text, d.extra, t.document_content "
            "FROM documents d JOIN texts t ON t.id = d.text_id WHERE d.id = ?",
            [doc_id],
        )
    )
    return Snapshot.from_row(row)


def _stored_document(db: sqlite_utils.Database, row: tuple[Any, ...]) -> StoredDocument:
    return StoredDocument(
        row[0],
        row[1],
        row[2],
        row[3],
        known_head=Head(row[5], row[6], row[7], json.loads(row[8])),
        known_listing_hash=row[4],
        load=functools.partial(_full_snapshot, db, row[0]),
    )


def load_stored(db: sqlite_utils.Database, source: str) -> StoredDocuments:
    """`source`'s stored documents, read when asked for: by id in batches, or those active in
    some listings; texts only for the documents whose full snapshot is used."""

    def select(where: str, params: list[Any]) -> list[StoredDocument]:
        sql = f"SELECT {_HEAD_COLUMNS} FROM documents WHERE {where}"  # noqa: S608
        return [_stored_document(db, row) for row in db.execute(sql, params)]

    def by_ids(ids: Collection[str]) -> dict[str, StoredDocument]:
        found = {}
        for chunk in _chunks(list(ids), 500):
            marks = ",".join("?" * len(chunk))
            # By id alone (`+source` keeps the planner off the source index, which would
            # read every document of the source: seconds at a million versions).
            where = f"+source = ? AND id IN ({marks})"
            found.update({d.id: d for d in select(where, [source, *chunk])})
        return found

    def active_in(listings: Collection[str]) -> list[StoredDocument]:
        marks = ",".join("?" * len(listings))
        where = f"source = ? AND status = 'active' AND listing IN ({marks})"
        return select(where, [source, *listings])

    every = functools.partial(select, "source = ?", [source])
    return StoredDocuments(by_ids=by_ids, every=every, active_in=active_in)


def _load_json(value: str | None) -> Any:
    return json.loads(value) if value is not None else None


def _dump_json(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if value is not None else None


def fetch_candidates(
    db: sqlite_utils.Database,
    sources: list[str],
    stale_before: str,
    max_unparsable_attempts: int,
    limit: int,
) -> dict[str, FetchCandidate]:
    """Active documents of `sources` that link a document and are due for a fetch, the `limit`
    most urgent: never fetched or the link moved; the last fetch failed, or gave no text
    fewer than `max_unparsable_attempts` times; the listing moved since; validators older
    than `stale_before`. Chosen by the database, so that the documents fetched and settled
    cost nothing (tracker.documents.select_fetches makes the requests, in the same order)."""
    marks = ",".join("?" * len(sources))
    columns = (
        f"{_HEAD_COLUMNS}, source, fetch_url, fetch_status, fetch_reason, fetch_etag, "
        "fetch_last_modified, fetch_listing_hash, fetched_at, fetch_attempts"
    )
    # Each part reads one partial index (storage.db FETCH_DUE, FETCH_REVALIDATED); the order
    # is tracker.documents.select_fetches's: never fetched or moved link, failed, listing
    # moved, validators to re-check.
    sql = f"""
        SELECT * FROM (
            SELECT {columns},
                   CASE
                       WHEN fetch_status IS NULL
                            OR fetch_url IS NOT json_extract(extra, '$.document_url') THEN 0
                       WHEN fetch_status = 'failed' THEN 1
                       WHEN fetch_status = 'unparsable' THEN
                            CASE WHEN fetch_attempts < ? THEN 1 END
                       ELSE 2
                   END AS urgency
            FROM documents WHERE source IN ({marks}) AND {FETCH_DUE}
            UNION ALL
            SELECT {columns}, 3 FROM documents
            WHERE source IN ({marks}) AND {FETCH_REVALIDATED} AND fetched_at < ?
              AND NOT ({FETCH_DUE})
        ) WHERE urgency IS NOT NULL ORDER BY urgency, id LIMIT ?
    """  # noqa: S608 - only placeholders and our own conditions are formatted in
    params = [max_unparsable_attempts, *sources, *sources, stale_before, limit]
    return {
        row[0]: FetchCandidate(_stored_document(db, row), row[9], FetchState(*row[10:18]))
        for row in db.execute(sql, params)
    }


def mark_unfetchable(db: sqlite_utils.Database, reasons: dict[str, str], now: str) -> None:
    """Record that these documents' links cannot be fetched (id -> reason), with the link as
    it stands, so that the same link is not asked for again. Call inside `write_transaction`."""
    for doc_id, reason in reasons.items():
        db.execute(
            "UPDATE documents SET fetch_url = json_extract(extra, '$.document_url'), "
            "fetch_status = 'not-fetchable', fetch_reason = ?, fetched_at = ? WHERE id = ?",
            [reason, now, doc_id],
        )


def apply_document_plan(
    db: sqlite_utils.Database,
    plan: DocumentPlan,
    run_id: int,
    candidates: dict[str, FetchCandidate],
    tagger: Tagger,
    links_of: LinksOf,
) -> None:
    """Write fetch results, and the links of every document whose text they bring (a first
    text has no change event, so the run's link update would not see it). Call inside
    `write_transaction`."""
    now = utc_now()
    changed = {e.document_id for e in plan.events}
    texts = record_versions(
        db, [(e, candidates[e.document_id].source) for e in plan.versions], run_id, now, tagger
    )
    for doc_id, update in plan.updates.items():
        columns = {k: v for k, v in update.items() if k != "document_content"}
        if doc_id in texts:  # its document's content moved: the new version's text row
            columns["text_id"] = texts[doc_id]
        if doc_id in changed:
            columns["last_changed_at"] = now
        db.table("documents").update(doc_id, columns)
    regulators = _regulators(db, [e.document_id for e in plan.events])
    db.table("changes").insert_all(
        (
            _change_row(e, candidates[e.document_id].source, regulators[e.document_id], run_id, now)
            for e in plan.events
        ),
        batch_size=1000,
    )
    refresh_links(db, links_of, sorted(texts))


def listing_states(db: sqlite_utils.Database, source: str) -> dict[str, dict[str, Any]]:
    """Per listing URL of `source`: its last healthy run and its last healthy full read
    (`last_healthy_at`, `last_healthy_items`, `last_full_at`, `last_full_items`)."""
    return {
        row["url"]: row
        for row in db.query(
            "SELECT url, last_healthy_at, last_healthy_items, last_full_at, last_full_items "
            "FROM listings WHERE source = ?",
            [source],
        )
    }


def text_id(db: sqlite_utils.Database, snap: Snapshot) -> int:
    """The `texts` row of a snapshot's text and document content, added if new."""
    content = _dump_json(snap.document)
    key = text_key(snap.text, content)
    row = db.execute("SELECT id FROM texts WHERE hash = ?", [key]).fetchone()
    if row:
        return int(row[0])
    cursor = db.execute(
        "INSERT INTO texts (hash, text, document_content, cjk) VALUES (?, ?, ?, ?)",
        [key, snap.text, content, cjk_terms(snap.text, content)],
    )
    return int(cursor.lastrowid or 0)


def _regulators(db: sqlite_utils.Database, doc_ids: list[str]) -> dict[str, str]:
    """The regulator of each of these stored documents."""
    found: dict[str, str] = {}
    for chunk in _chunks(sorted(set(doc_ids)), 500):
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT id, regulator FROM documents WHERE id IN ({marks})"  # noqa: S608
        found.update(db.execute(sql, chunk).fetchall())
    return found


def _document_row(
    db: sqlite_utils.Database, doc_id: str, plan: SourcePlan, listing: str, snap: Snapshot, now: str
) -> dict:
    return {
        "id": doc_id,
        "source": plan.source,
        "regulator": plan.regulator,
        "listing": listing,
        "status": "active",
        "content_hash": snap.content_hash(),
        "listing_hash": snap.listing_hash(),
        "title": snap.title,
        "url": snap.url,
        "date": snap.date,
        "first_seen_at": now,
        "last_seen_at": now,
        "last_changed_at": now,
        "removed_at": None,
        "extra": _dump_json(snap.extra),
        "cjk_title": cjk_terms(snap.title),
        "text_id": text_id(db, snap),
    }


def apply_plan(
    db: sqlite_utils.Database,
    plan: SourcePlan,
    run_id: int,
    crawl: dict[str, Any],  # the crawl's `stats` and `finish_reason`, kept with the run
    tagger: Tagger,
) -> None:
    """Write one source's plan. Call inside `write_transaction`: all of it lands or none."""
    now = utc_now()
    by_id = {e.document_id: e for e in plan.events}
    inserts = [
        _document_row(db, doc_id, plan, listing, snapshot, now)
        for doc_id, (listing, snapshot) in plan.seen.items()
        if doc_id in plan.first_seen
    ]
    db.table("documents").insert_all(inserts, batch_size=1000)

    for event in plan.events:
        if event.document_id in plan.first_seen:
            continue
        if event.kind == "removed":
            db.execute(
                "UPDATE documents SET status = 'removed', removed_at = ?, last_changed_at = ? "
                "WHERE id = ?",
                [now, now, event.document_id],
            )
        else:  # changed, or listed again after removal
            listing, _ = plan.seen.get(event.document_id) or plan.restated[event.document_id]
            row = _document_row(db, event.document_id, plan, listing, event.snapshot, now)
            del row["first_seen_at"]
            if event.document_id in plan.restated:  # not listed this run: not seen either
                del row["last_seen_at"]
            db.table("documents").update(event.document_id, row)

    for doc_id in plan.refreshed:  # sign fields only: keep them current, no version, no event
        _, snapshot = plan.seen[doc_id]
        db.table("documents").update(
            doc_id,
            {
                "extra": _dump_json(snapshot.extra),
                "listing_hash": snapshot.listing_hash(),
                "last_seen_at": now,
            },
        )
    unchanged = [
        doc_id for doc_id in plan.seen if doc_id not in by_id and doc_id not in plan.refreshed
    ]
    for chunk in _chunks(unchanged, 500):
        marks = ",".join("?" * len(chunk))
        db.execute(f"UPDATE documents SET last_seen_at = ? WHERE id IN ({marks})", [now, *chunk])  # noqa: S608

    kept = [(e, plan.source) for e in plan.events if e.kind != "removed"]
    record_versions(db, kept, run_id, now, tagger)
    db.table("changes").insert_all(
        (_change_row(e, plan.source, plan.regulator, run_id, now) for e in plan.events),
        batch_size=1000,
    )
    _record_listings(db, plan, run_id, now)
    stats = crawl.get("stats", {})
    db.table("source_runs").insert(
        {
            "run_id": run_id,
            "source": plan.source,
            "healthy": int(plan.healthy),
            "reason": plan.reason,
            "items": len(plan.seen),
            "new": plan.count("new"),
            "changed": plan.count("changed"),
            "removed": plan.count("removed"),
            "requests": int(stats.get("downloader/request_count", 0)),
            "bytes": int(stats.get("downloader/response_bytes", 0)),
            "finish_reason": crawl.get("finish_reason"),
            "stats": json.dumps(stats, default=str, sort_keys=True),
            "finished_at": now,
            "sweep": plan.sweep,
        }
    )


def record_versions(
    db: sqlite_utils.Database,
    events: list[tuple[ChangeEvent, str]],
    run_id: int,
    now: str,
    tagger: Tagger,
) -> dict[str, int]:
    """Append the snapshots of (event, source) pairs to the versions table, tagged; the
    `texts` row of each document's new version."""
    versions = db.table("versions")
    tagged, texts = [], {}
    for event, source in events:
        snap = event.snapshot
        texts[event.document_id] = text_id(db, snap)
        version_id = versions.insert(
            {
                "document_id": event.document_id,
                "run_id": run_id,
                "fetched_at": now,
                "content_hash": snap.content_hash(),
                "title": snap.title,
                "url": snap.url,
                "date": snap.date,
                "extra": _dump_json(snap.extra),
                "text_id": texts[event.document_id],
            }
        ).last_rowid
        assert version_id is not None
        tagged.append((version_id, event.document_id, source, snap))
    store_tags(db, tagged, tagger)
    return texts


def _change_row(event: ChangeEvent, source: str, regulator: str, run_id: int, now: str) -> dict:
    return {
        "run_id": run_id,
        "document_id": event.document_id,
        "source": source,
        "regulator": regulator,
        "kind": event.kind,
        "title": event.snapshot.title,
        "url": event.snapshot.url,
        "date": event.snapshot.date,
        "fields": json.dumps(event.fields),
        "diff": event.diff,
        "changed": json.dumps(event.changed, ensure_ascii=False, default=str),
        "detected_at": now,
        "baseline": int(event.baseline),
        "significance": event.significance,
        "significance_reason": event.significance_reason,
    }


def _record_listings(db: sqlite_utils.Database, plan: SourcePlan, run_id: int, now: str) -> None:
    for v in plan.verdicts:
        db.execute(
            """
            INSERT INTO listings (source, url, healthy, reason, items, last_run_id,
                                  last_healthy_run_id, last_healthy_items, last_healthy_at,
                                  last_full_at, last_full_items)
            VALUES (:source, :url, :healthy, :reason, :items, :run,
                    CASE WHEN :healthy THEN :run END, CASE WHEN :healthy THEN :items END,
                    CASE WHEN :healthy THEN :now END,
                    CASE WHEN :full THEN :now END, CASE WHEN :full THEN :items END)
            ON CONFLICT (source, url) DO UPDATE SET
                healthy = excluded.healthy, reason = excluded.reason, items = excluded.items,
                last_run_id = excluded.last_run_id,
                last_healthy_run_id = coalesce(excluded.last_healthy_run_id, last_healthy_run_id),
                last_healthy_items = coalesce(excluded.last_healthy_items, last_healthy_items),
                last_healthy_at = coalesce(excluded.last_healthy_at, last_healthy_at),
                last_full_at = coalesce(excluded.last_full_at, last_full_at),
                last_full_items = coalesce(excluded.last_full_items, last_full_items)
            """,
            {
                "source": v.source,
                "url": v.url,
                "healthy": int(v.healthy),
                "full": int(v.healthy and v.complete),
                "reason": v.reason,
                "items": v.items,
                "run": run_id,
                "now": now,
            },
        )


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# --- queries -------------------------------------------------------------------------------


def change_record(row: dict[str, Any]) -> dict[str, Any]:
    """A change event as the CLI and digests show it."""
    record = dict(row)
    record["fields"] = json.loads(record["fields"])
    if "changed" in record:
        record["changed"] = json.loads(record["changed"])
    record["baseline"] = bool(record["baseline"])
    for kind in KINDS:
        if kind in record:
            record[kind] = json.loads(record[kind])
    if isinstance(record.get("corrections"), str):
        record["corrections"] = json.loads(record["corrections"])
    return record


# A tag filter reads the documents carrying the tag from `tag_index` when at most this many do
# (then their events are few enough to sort); a tag on more is checked event by event as the
# newest events are read, which finds a page of them at once because they are common.
TAG_DRIVEN_AT_MOST = 2_000


def tag_conditions(
    tags: dict[str, list[str]] | None, table: str, document_id: str = "id", per_row: bool = False
) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) that a row of `table`, which has `regulator` and
    its document's id in `document_id`, be of a document carrying at least one of the wanted
    tags of each kind (`tags`: kind -> tags) and published by one of the wanted regulators
    (`tags["regulators"]`, if any). The tags are read from `tag_index`: the documents carrying
    them as a list, or with `per_row`, one lookup per row (see TAG_DRIVEN_AT_MOST)."""
    where, params = [], []
    regulators = (tags or {}).get("regulators") or []
    if regulators:
        where.append(f"{table}.regulator IN ({','.join('?' * len(regulators))})")
        params.extend(regulators)
    for kind, wanted in (tags or {}).items():
        if wanted and kind in KINDS:
            marks = ",".join("?" * len(wanted))
            if per_row:
                where.append(
                    "EXISTS (SELECT 1 FROM tag_index t WHERE t.kind = ? "  # noqa: S608
                    f"AND t.tag IN ({marks}) AND t.document_id = {table}.{document_id})"
                )
            else:
                where.append(
                    f"{table}.{document_id} IN (SELECT document_id FROM tag_index "  # noqa: S608
                    f"WHERE kind = ? AND tag IN ({marks}))"
                )
            params.extend([kind, *wanted])
    return where, params


def tagged_documents(db: sqlite_utils.Database, tags: dict[str, list[str]] | None) -> int:
    """How many documents carry the wanted tags of the rarest kind asked (an upper bound of
    those carrying all kinds asked); 0 when no tag is asked."""
    counts = [
        db.execute(
            f"SELECT count(*) FROM tag_index WHERE kind = ? AND tag IN ({','.join('?' * len(w))})",  # noqa: S608
            [kind, *w],
        ).fetchone()[0]
        for kind, w in (tags or {}).items()
        if w and kind in KINDS
    ]
    return min(counts, default=0)


def _change_filter(
    since: str | None,
    sources: Iterable[str],
    kinds: Iterable[str],
    include_cosmetic: bool,
    include_baseline: bool,
    tags: dict[str, list[str]] | None,
    per_row: bool = False,
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if not include_cosmetic:
        where.append("c.significance = 'substantive'")
    if not include_baseline:
        where.append("NOT c.baseline")
    tagged, tag_params = tag_conditions(tags, "d", per_row=per_row)
    where += tagged
    params += tag_params
    if since:
        where.append("c.detected_at >= ?")
        params.append(since)
    for column, values in (("c.source", list(sources)), ("c.kind", list(kinds))):
        if values:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            params.extend(values)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def list_changes(
    db: sqlite_utils.Database,
    since: str | None = None,
    sources: Iterable[str] = (),
    kinds: Iterable[str] = (),
    limit: int | None = None,
    include_cosmetic: bool = True,
    tags: dict[str, list[str]] | None = None,
    include_baseline: bool = True,
) -> Iterator[dict[str, Any]]:
    """Change events, newest first, with their documents' current tags; optionally filtered
    (`tags`: kind -> tags, any of which the document must carry). Read as they are used
    (an export of the whole history holds one row at a time)."""
    # A page of the newest events of a common tag: read newest first, each checked.
    per_row = limit is not None and tagged_documents(db, tags) > TAG_DRIVEN_AT_MOST
    where, params = _change_filter(
        since, sources, kinds, include_cosmetic, include_baseline, tags, per_row
    )
    # Events since a moment by their detection time's index (the planner would read every
    # event newest first to save sorting the period's).
    indexed = " INDEXED BY changes_detected" if since else ""
    sql = (
        "SELECT c.*, d.functions, d.products, d.entity_types, d.corrections, "  # noqa: S608
        "(SELECT m.record_id FROM record_members m WHERE m.document_id = c.document_id) "
        f"AS record_id FROM changes c{indexed} JOIN documents d ON d.id = c.document_id"
        f"{where} ORDER BY c.id DESC"
    )
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return (change_record(row) for row in db.query(sql, params))


def count_baseline(
    db: sqlite_utils.Database,
    since: str | None = None,
    sources: Iterable[str] = (),
    kinds: Iterable[str] = (),
    include_cosmetic: bool = True,
    tags: dict[str, list[str]] | None = None,
    at_most: int = 10_000,
) -> int:
    """How many baseline events (a listing's first reading) the same filters match; past
    `at_most`, `at_most + 1` (counted from their own index, so the cost is the baseline's,
    not the history's)."""
    where, params = _change_filter(since, sources, kinds, include_cosmetic, True, tags, True)
    where += (" AND" if where else " WHERE") + " c.baseline"
    sql = (
        "SELECT count(*) FROM (SELECT 1 FROM changes c INDEXED BY changes_baseline "  # noqa: S608
        f"JOIN documents d ON d.id = c.document_id{where} LIMIT ?)"
    )
    return int(db.execute(sql, [*params, at_most + 1]).fetchone()[0])


def find_document(db: sqlite_utils.Database, ref: str) -> dict[str, Any] | None:
    """A document by id, or by URL when exactly one document has that URL."""
    rows = list(db.query("SELECT * FROM documents WHERE id = ?", [ref]))
    if not rows:
        rows = list(db.query("SELECT * FROM documents WHERE url = ?", [ref]))
    return rows[0] if len(rows) == 1 else None


CHANGE_WITH_DOCUMENT = (
    "SELECT c.*, d.functions, d.products, d.entity_types, d.extra AS document_extra, "
    "d.listing AS document_listing, d.corrections, t.document_content, "
    "t.text AS listing_text FROM changes c "
    "JOIN documents d ON d.id = c.document_id JOIN texts t ON t.id = d.text_id "
)


def change_with_document(db: sqlite_utils.Database, change_id: int) -> dict[str, Any] | None:
    """A change event with its document's tags in force, extra, corrections and text."""
    rows = [
        change_record(r) for r in db.query(CHANGE_WITH_DOCUMENT + "WHERE c.id = ?", [change_id])
    ]
    return rows[0] if rows else None


def latest_substantive_change(db: sqlite_utils.Database, document_id: str) -> dict[str, Any] | None:
    """A document's newest change event that subscribers are sent (not the baseline, not
    cosmetic), as `change_with_document` gives it."""
    rows = [
        change_record(r)
        for r in db.query(
            CHANGE_WITH_DOCUMENT + "WHERE c.document_id = ? AND NOT c.baseline "
            "AND c.significance = 'substantive' ORDER BY c.id DESC LIMIT 1",
            [document_id],
        )
    ]
    return rows[0] if rows else None


def document_history(db: sqlite_utils.Database, document_id: str) -> dict[str, Any]:
    versions = list(
        db.query(
            "SELECT v.*, t.text, t.document_content FROM versions v "
            "JOIN texts t ON t.id = v.text_id WHERE v.document_id = ? ORDER BY v.id",
            [document_id],
        )
    )
    tags: dict[int, dict[str, list[str]]] = {}
    for row in db.query(
        "SELECT version_id, kind, tag FROM tags WHERE document_id = ? ORDER BY tag", [document_id]
    ):
        tags.setdefault(row["version_id"], {}).setdefault(row["kind"], []).append(row["tag"])
    for version in versions:
        version["extra"] = json.loads(version["extra"])
        version["document_content"] = _load_json(version["document_content"])
        for kind in KINDS:
            version[kind] = tags.get(version["id"], {}).get(kind, [])
    changes = [
        change_record(row)
        for row in db.query(
            "SELECT c.*, d.functions, d.products, d.entity_types, d.corrections FROM changes c "
            "JOIN documents d ON d.id = c.document_id WHERE c.document_id = ? ORDER BY c.id",
            [document_id],
        )
    ]
    return {"versions": versions, "changes": changes}


def last_healthy_run_at(db: sqlite_utils.Database, source: str) -> str | None:
    row = db.execute(
        "SELECT max(finished_at) FROM source_runs WHERE source = ? AND healthy", [source]
    ).fetchone()
    return row[0] if row else None


def linked_document_states(db: sqlite_utils.Database) -> dict[str, int]:
    """Active documents that link a document, by fetch state ("waiting": never fetched)."""
    return {
        status or "waiting": count
        for status, count in db.execute(
            f"SELECT fetch_status, count(*) FROM documents WHERE {LINKED} GROUP BY 1"  # noqa: S608
        ).fetchall()
    }


def source_status(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Per source: its latest run, health and reason, and its last healthy run."""
    return list(
        db.query(
            """
            SELECT s.source, s.run_id AS last_run_id, r.started_at AS last_run_at,
                   s.healthy, s.reason, s.items, s.new, s.changed, s.removed,
                   (SELECT max(h.run_id) FROM source_runs h
                     WHERE h.source = s.source AND h.healthy) AS last_healthy_run_id,
                   coalesce((SELECT c.documents FROM document_counts c
                     WHERE c.source = s.source AND c.status = 'active'), 0) AS documents
            FROM source_runs s JOIN runs r ON r.id = s.run_id
            WHERE s.run_id = (SELECT max(run_id) FROM source_runs WHERE source = s.source)
            ORDER BY s.source
            """
        )
    )


def list_runs(db: sqlite_utils.Database, limit: int = 20) -> list[dict[str, Any]]:
    """Past runs, newest first, each with its sources' health and figures."""
    runs = list(db.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", [limit]))
    for run in runs:
        run["sources"] = []
        for row in db.query(
            "SELECT source, healthy, reason, items, new, changed, removed, requests, bytes, "
            "finish_reason, json_extract(stats, '$.elapsed_time_seconds') AS duration_s, sweep "
            "FROM source_runs WHERE run_id = ? ORDER BY source",
            [run["id"]],
        ):
            row["healthy"] = bool(row["healthy"])
            run["sources"].append(row)
    return runs
