"""The links table (kept current for the documents each run changes) and the rows a rule timeline
is built from."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from storage.records import LinksOf, Snapshot

_DOCUMENTS = (
    "SELECT d.id, d.title, d.url, d.date, t.text, d.extra, t.document_content "
    "FROM documents d JOIN texts t ON t.id = d.text_id"
)


def _link_rows(db: sqlite_utils.Database, links_of: LinksOf, sql: str, params: list[Any]) -> Any:
    for doc in db.query(sql, params):
        for link in links_of(Snapshot.from_row(doc)):
            yield {
                "document_id": doc["id"],
                "key": link.key,
                "kind": link.kind,
                "evidence": link.evidence,
            }


def rebuild_links(db: sqlite_utils.Database, links_of: LinksOf) -> None:
    """Store every document's links as `links_of` finds them (after a migration or `retag`),
    streamed. Call inside `write_transaction`."""
    db.execute("DELETE FROM links")
    db.table("links").insert_all(_link_rows(db, links_of, _DOCUMENTS, []), batch_size=1000)


def update_links(db: sqlite_utils.Database, links_of: LinksOf, run_id: int) -> int:
    """Store again the links of the documents run `run_id` changed (a version, a new standing,
    a removal) or whose text it read: what one run costs follows what it did. How many
    documents. Call inside `write_transaction`."""
    touched = (
        "SELECT document_id FROM changes WHERE run_id = ? "
        "UNION SELECT document_id FROM versions WHERE run_id = ?"
    )
    params = [run_id, run_id]
    db.execute(f"DELETE FROM links WHERE document_id IN ({touched})", params)  # noqa: S608
    db.table("links").insert_all(
        _link_rows(db, links_of, f"{_DOCUMENTS} WHERE d.id IN ({touched})", params),
        batch_size=1000,
    )
    return int(db.execute(f"SELECT count(*) FROM ({touched})", params).fetchone()[0])  # noqa: S608


def refresh_links(db: sqlite_utils.Database, links_of: LinksOf, document_ids: list[str]) -> None:
    """Store again the links of `document_ids` (documents whose text was just read), in the
    transaction that stored their text. Call inside `write_transaction`."""
    for start in range(0, len(document_ids), 500):
        chunk = document_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        db.execute(f"DELETE FROM links WHERE document_id IN ({marks})", chunk)  # noqa: S608
        db.table("links").insert_all(
            _link_rows(db, links_of, f"{_DOCUMENTS} WHERE d.id IN ({marks})", chunk),
            batch_size=1000,
        )


def linked_count(db: sqlite_utils.Database, key: str) -> int:
    """How many documents are linked to `key` (from the links' index)."""
    row = db.execute("SELECT count(DISTINCT document_id) FROM links WHERE key = ?", [key])
    return int(row.fetchone()[0])


def rule_documents(db: sqlite_utils.Database, key: str) -> list[dict[str, Any]]:
    """Documents linked to `key`, each with its versions (date, version) oldest first and
    the documents it superseded (`replaced`: "title (BRDR id)")."""
    documents = []
    for row in db.query(
        "SELECT d.id, d.source, d.title, d.url, d.date, d.status, d.extra, t.document_content, "
        "group_concat(l.kind, ', ') AS link_kind FROM links l "
        "JOIN documents d ON d.id = l.document_id JOIN texts t ON t.id = d.text_id "
        "WHERE l.key = ? GROUP BY d.id",
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
