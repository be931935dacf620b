"""Rule records as stored: what the linker reads (documents, their identifying keys, officers'
corrections) and what it writes (records, members, related records), with stable record ids."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlite_utils

from storage.db import utc_now

# Link kinds that identify what a document is or continues (a BRDR chain, an SPM module),
# as opposed to what it merely mentions or relates to.
IDENTIFYING_LINKS = ("is", "supersedes", "superseded-by", "version-of")


def record_inputs(db: sqlite_utils.Database, details: Sequence[str]) -> list[dict[str, Any]]:
    """Every document with what the linker weighs: title, date, source, url, the listing
    `details` it reads (not the whole of `extra`: the whole history is held at once, 1.5 GB at
    833,000 documents with every detail parsed), and its keys (identifying links: what it is,
    supersedes, is superseded by, is a version of; the documents its text names by title,
    `doc:<id>`; and its own `doc:<id>`)."""
    keys: dict[str, set[str]] = {}
    kinds = [*IDENTIFYING_LINKS, "names"]
    marks = ",".join("?" * len(kinds))
    sql = f"SELECT document_id, key FROM links WHERE kind IN ({marks})"  # noqa: S608
    for document_id, key in db.execute(sql, kinds):
        keys.setdefault(document_id, set()).add(key)
    paths = ", ".join(f"extra ->> '$.{name}'" for name in details)
    documents = []
    for document_id, source, title, url, date, *values in db.execute(
        f"SELECT id, source, title, url, date, {paths} FROM documents ORDER BY id"  # noqa: S608
    ):
        # Its own key (named by others' texts) with its links' (a tuple: most have none).
        held = (f"doc:{document_id}", *keys.pop(document_id, ()))
        extra = {name: v for name, v in zip(details, values, strict=True) if v is not None}
        documents.append(
            {
                "id": document_id,
                "source": source,
                "title": title,
                "url": url,
                "date": date,
                "extra": extra,
                "keys": held,
            }
        )
    return documents


def register_versions(
    db: sqlite_utils.Database, document_ids: list[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per register document (of `document_ids`, default all) that the register has issued
    under more than one id (an SPM module revised, a guideline re-issued), each id it had with
    its first date, title and link, oldest first: every one was a publication of its own."""
    found: dict[str, list[dict[str, Any]]] = {}
    only = "" if document_ids is None else "AND d.id IN (SELECT value FROM json_each(?)) "
    for row in db.query(
        "SELECT v.document_id, v.extra ->> '$.doc_id' AS doc_id, min(v.date) AS date, "  # noqa: S608
        "min(v.title) AS title, min(v.url) AS url FROM versions v "
        f"JOIN documents d ON d.id = v.document_id WHERE d.source = 'brdr' {only}"
        "AND v.extra ->> '$.doc_id' IS NOT NULL GROUP BY v.document_id, doc_id "
        "ORDER BY v.document_id, date",
        [] if document_ids is None else [json.dumps(document_ids)],
    ):
        found.setdefault(row["document_id"], []).append(row)
    return {document: ids for document, ids in found.items() if len(ids) > 1}


def documents_without_record(db: sqlite_utils.Database) -> bool:
    """Whether some document is in no record (new since, or records never made)."""
    return bool(
        db.execute(
            "SELECT EXISTS (SELECT 1 FROM documents d WHERE NOT EXISTS "
            "(SELECT 1 FROM record_members m WHERE m.document_id = d.id))"
        ).fetchone()[0]
    )


def publications_of_documents(db: sqlite_utils.Database) -> dict[str, str]:
    """Each document's publication, as its record holds it (one publication, one update)."""
    return dict(db.execute("SELECT document_id, publication FROM record_members").fetchall())


def document_titles(db: sqlite_utils.Database) -> dict[str, tuple[str, str | None]]:
    """Every document's title and date, by id."""
    return {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, title, date FROM documents")}


def record_corrections(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Officers' corrections of records, oldest first."""
    return list(db.query("SELECT * FROM record_corrections ORDER BY id"))


def add_record_correction(
    db: sqlite_utils.Database,
    action: str,
    document_id: str,
    by: str,
    target: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Append an officer's correction; returns it as stored. Call in a transaction."""
    row = {
        "action": action,
        "document_id": document_id,
        "target": target,
        "by": by,
        "note": note,
        "at": utc_now(),
    }
    row["id"] = db.table("record_corrections").insert(row).last_pk
    return row


def save_records(
    db: sqlite_utils.Database,
    records: list[dict[str, Any]],
    related: list[tuple[int, int, str, float]],
) -> list[int]:
    """Store a fresh grouping, keeping each record's id where its documents were: a record
    takes the id of the stored record that held most of its documents (the larger record
    first), the rest get new ids. `records`: {title, started_by, first_date, last_date,
    updates, members: [{document_id, publication, evidence, strength}]}. `related`: pairs of
    indexes into `records` with evidence and strength. The ids, in `records`' order. Call in a
    transaction."""
    held = dict(db.execute("SELECT document_id, record_id FROM record_members").fetchall())
    taken: set[int] = set()
    ids: list[int | None] = [None] * len(records)
    by_size = sorted(range(len(records)), key=lambda i: -len(records[i]["members"]))
    for index in by_size:
        votes = Counter(
            held[m["document_id"]] for m in records[index]["members"] if m["document_id"] in held
        )
        for record_id, _ in sorted(votes.items(), key=lambda v: (-v[1], v[0])):
            if record_id not in taken:
                ids[index] = record_id
                taken.add(record_id)
                break
    next_id = int(db.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()[0]) + 1
    for index, record_id in enumerate(ids):
        if record_id is None:
            while next_id in taken:
                next_id += 1
            ids[index] = next_id
            taken.add(next_id)
    now = utc_now()
    db.execute("DELETE FROM record_links")
    db.execute("DELETE FROM record_members")
    db.execute("DELETE FROM records")
    final = [i for i in ids if i is not None]
    db.table("records").insert_all(
        (
            {
                "id": record_id,
                "title": r["title"],
                "started_by": r["started_by"],
                "first_date": r["first_date"],
                "last_date": r["last_date"],
                "updates": r["updates"],
                "computed_at": now,
            }
            for record_id, r in zip(final, records, strict=True)
        ),
        batch_size=1000,
    )
    db.table("record_members").insert_all(
        (
            {**m, "record_id": record_id}
            for record_id, r in zip(final, records, strict=True)
            for m in r["members"]
        ),
        batch_size=1000,
    )
    db.table("record_links").insert_all(
        (
            {"record_id": final[a], "other_id": final[b], "evidence": e, "strength": s}
            for a, b, e, s in related
        ),
        batch_size=1000,
        ignore=True,
    )
    return final


def record_of_document(db: sqlite_utils.Database, document_id: str) -> int | None:
    row = db.execute(
        "SELECT record_id FROM record_members WHERE document_id = ?", [document_id]
    ).fetchone()
    return int(row[0]) if row else None


def record_row(db: sqlite_utils.Database, record_id: int) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM records WHERE id = ?", [record_id]))
    return rows[0] if rows else None


def record_documents(db: sqlite_utils.Database, record_id: int) -> list[dict[str, Any]]:
    """A record's documents with what its fields and updates are made of."""
    return list(
        db.query(
            "SELECT m.publication, m.evidence, m.strength, d.id, d.source, d.regulator, "
            "d.title, d.url, d.date, d.extra, d.functions, d.products, d.entity_types, d.status, "
            "t.text, t.document_content, "
            "(SELECT max(c.detected_at) FROM changes c WHERE c.document_id = d.id "
            " AND c.significance = 'substantive' AND c.baseline = 0) AS last_substantive "
            "FROM record_members m JOIN documents d ON d.id = m.document_id "
            "LEFT JOIN texts t ON t.id = d.text_id WHERE m.record_id = ? "
            "ORDER BY d.date, d.id",
            [record_id],
        )
    )


def related_records(db: sqlite_utils.Database, record_id: int) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT r.id, r.title, l.evidence, l.strength FROM record_links l "
            "JOIN records r ON r.id = CASE WHEN l.record_id = ? THEN l.other_id "
            "ELSE l.record_id END WHERE ? IN (l.record_id, l.other_id) ORDER BY l.strength DESC",
            [record_id, record_id],
        )
    )


def list_records(
    db: sqlite_utils.Database, since: str | None, functions: list[str], limit: int
) -> list[dict[str, Any]]:
    """Records with a publication on or after `since`, newest update first; with `functions`,
    only those with a document tagged one of them."""
    where, params = ["1"], []
    if since:
        where.append("r.last_date >= ?")
        params.append(since)
    if functions:
        marks = ",".join("?" * len(functions))
        where.append(
            "EXISTS (SELECT 1 FROM record_members m JOIN tag_index t "  # noqa: S608
            "ON t.document_id = m.document_id AND t.kind = 'functions' "
            f"WHERE m.record_id = r.id AND t.tag IN ({marks}))"
        )
        params += functions
    sql = (
        f"SELECT r.* FROM records r WHERE {' AND '.join(where)} "  # noqa: S608
        "ORDER BY r.last_date DESC, r.id DESC LIMIT ?"
    )
    return list(db.query(sql, [*params, limit]))


def records_holding(db: sqlite_utils.Database, document_ids: list[str]) -> list[dict[str, Any]]:
    """The records `document_ids` are in, with how many of them each holds, most first."""
    return list(
        db.query(
            "SELECT r.id, r.title, r.updates, r.last_date, count(*) AS documents "
            "FROM record_members m JOIN records r ON r.id = m.record_id "
            "WHERE m.document_id IN (SELECT value FROM json_each(?)) GROUP BY r.id "
            "ORDER BY documents DESC, r.last_date DESC",
            [json.dumps(document_ids)],
        )
    )


def records_naming(
    db: sqlite_utils.Database, key: str, limit: int, sample: int
) -> tuple[int, list[dict[str, Any]]]:
    """Of the `sample` documents linked to `key` most recently (by the links' index), how
    many records hold them, and the `limit` holding most of them (with how many each holds):
    a file reference on a quarter of a million documents is answered from a bounded read."""
    joined = (
        "FROM (SELECT document_id FROM links WHERE key = ? ORDER BY rowid DESC LIMIT ?) l "
        "JOIN record_members m ON m.document_id = l.document_id "
        "JOIN records r ON r.id = m.record_id"
    )
    (total,) = db.execute(f"SELECT count(DISTINCT r.id) {joined}", [key, sample]).fetchone()
    top = db.query(
        "SELECT r.id, r.title, r.updates, r.last_date, count(DISTINCT l.document_id) "
        f"AS documents {joined} GROUP BY r.id ORDER BY documents DESC, r.last_date DESC LIMIT ?",
        [key, sample, limit],
    )
    return int(total), list(top)


def record_publications(db: sqlite_utils.Database, document_id: str) -> list[dict[str, Any]]:
    """The documents of the record `document_id` is in, with its record's id and title, oldest
    first: what a digest entry needs to say which update of which record it is."""
    return list(
        db.query(
            "SELECT r.id AS record_id, r.title AS record_title, m.publication, d.id, d.source, "
            "d.url, d.title, d.date, d.extra FROM record_members m "
            "JOIN records r ON r.id = m.record_id JOIN documents d ON d.id = m.document_id "
            "WHERE m.record_id = (SELECT record_id FROM record_members WHERE document_id = ?) "
            "ORDER BY d.date, d.id",
            [document_id],
        )
    )


def records_across_sources(
    db: sqlite_utils.Database, min_updates: int, limit: int
) -> list[dict[str, Any]]:
    """Records of at least `min_updates` updates from two sources or more, the latest updated
    (then the most updated) first: where a record shows what it adds to a list of documents,
    and the one a fresh digest most likely spoke of."""
    return list(
        db.query(
            "SELECT r.id, r.title, r.updates, count(DISTINCT d.source) AS sources FROM records r "
            "JOIN record_members m ON m.record_id = r.id JOIN documents d ON d.id = m.document_id "
            "WHERE r.updates >= ? GROUP BY r.id HAVING sources >= 2 "
            "ORDER BY r.last_date DESC, r.updates DESC LIMIT ?",
            [min_updates, limit],
        )
    )
