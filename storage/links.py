"""The links table (rebuilt from the documents after each run) and the rows a rule timeline
is built from."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from storage.records import LinksOf, Snapshot


def rebuild_links(db: sqlite_utils.Database, links_of: LinksOf) -> int:
    """Store every document's links as `links_of` finds them; returns how many. Call inside
    `write_transaction`."""
    db.execute("DELETE FROM links")
    rows = []
    for doc in db.query(
        "SELECT id, title, url, date, text, extra, document_content FROM documents"
    ):
        snapshot = Snapshot.from_row(doc)
        rows += [
            {
                "document_id": doc["id"],
                "key": link.key,
                "kind": link.kind,
                "evidence": link.evidence,
            }
            for link in links_of(snapshot)
        ]
    db.table("links").insert_all(rows, batch_size=1000)
    return len(rows)


def rule_documents(db: sqlite_utils.Database, key: str) -> list[dict[str, Any]]:
    """Documents linked to `key`, each with its versions (date, version) oldest first and
    the documents it superseded (`replaced`: "title (BRDR id)")."""
    documents = []
    for row in db.query(
        "SELECT d.id, d.source, d.title, d.url, d.date, d.status, d.extra, d.document_content, "
        "group_concat(l.kind, ', ') AS link_kind FROM links l "
        "JOIN documents d ON d.id = l.document_id WHERE l.key = ? GROUP BY d.id",
        [key],
    ):
        row["extra"] = json.loads(row["extra"])
        row["document_content"] = (
            json.loads(row["document_content"]) if row["document_content"] else None
        )
        row["replaced"] = [
            f"{old['title']} ({json.loads(old['extra']).get('doc_id') or old['id']})"
            for old in db.query(
                "SELECT id, title, extra FROM documents "
                "WHERE json_extract(extra, '$.superseded_by.id') = ? ORDER BY date",
                [row["id"]],
            )
        ]
        row["versions"] = [
            {
                "date": version["date"],
                "version": json.loads(version["extra"]).get("version") or version["date"],
            }
            for version in db.query(
                "SELECT date, extra FROM versions WHERE document_id = ? ORDER BY id", [row["id"]]
            )
        ]
        documents.append(row)
    return documents


def keys_like(db: sqlite_utils.Database, key: str) -> list[str]:
    """Known keys that match `key` without its prefix (for a helpful error)."""
    bare = key.split(":", 1)[-1]
    return [
        r["key"]
        for r in db.query("SELECT DISTINCT key FROM links WHERE key LIKE ? LIMIT 5", [f"%{bare}%"])
    ]
