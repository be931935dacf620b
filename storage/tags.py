"""Tags in the database: per version, current per document, and re-tagging the history."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from storage.db import utc_now
from storage.records import KINDS, Snapshot, Tagger, TagSet

VersionToTag = tuple[int, str, str, Snapshot]  # version id, document id, source, snapshot


def _names(tags: TagSet) -> dict[str, list[str]]:
    return {kind: sorted(tags.get(kind, {})) for kind in KINDS}


def store_tags(
    db: sqlite_utils.Database,
    versions: Iterable[VersionToTag],
    tagger: Tagger,
    latest: bool = True,
) -> dict[str, dict[str, list[str]]]:
    """Store the tags `tagger` gives versions (id, document id, source, snapshot); with
    `latest`, they are their documents' current state. Returns document id -> kind -> tag
    names of what was stored."""
    rows, current = [], {}
    for version_id, document_id, source, snapshot in versions:
        tags = tagger(source, snapshot)
        for kind, found in tags.items():
            for name, evidence in found.items():
                rows.append(
                    {
                        "version_id": version_id,
                        "document_id": document_id,
                        "taxonomy_version": tagger.version,
                        "kind": kind,
                        "tag": name,
                        "evidence": json.dumps(evidence, ensure_ascii=False),
                    }
                )
        current[document_id] = _names(tags)
    db.table("tags").insert_all(rows, batch_size=1000, replace=True)
    if latest:
        for document_id, names in current.items():
            # Why a tag was given is kept for the current version; earlier ones keep the names.
            db.execute(
                "UPDATE tags SET evidence = '[]' WHERE document_id = ? AND version_id < ("
                "SELECT max(id) FROM versions WHERE document_id = ?) AND evidence != '[]'",
                [document_id, document_id],
            )
            db.table("documents").update(
                document_id,
                {
                    **{kind: json.dumps(names[kind], ensure_ascii=False) for kind in KINDS},
                    "taxonomy_version": tagger.version,
                },
            )
    return current


def retag(db: sqlite_utils.Database, tagger: Tagger) -> dict[str, Any]:
    """Tag every version again with `tagger`; record which documents' current tags moved.

    Call inside `write_transaction`.
    """
    before = {
        row["id"]: (row["taxonomy_version"], {k: json.loads(row[k]) for k in KINDS})
        for row in db.query(
            "SELECT id, taxonomy_version, functions, products, entity_types FROM documents"
        )
    }
    latest = {
        row["document_id"]: row["id"]
        for row in db.query("SELECT document_id, max(id) AS id FROM versions GROUP BY document_id")
    }
    db.execute("DELETE FROM tags")
    history: list[VersionToTag] = []
    current: list[VersionToTag] = []
    for row in db.query(
        "SELECT v.id, v.document_id, d.source, v.title, v.url, v.date, t.text, v.extra, "
        "t.document_content FROM versions v JOIN documents d ON d.id = v.document_id "
        "JOIN texts t ON t.id = v.text_id"
    ):
        snapshot = Snapshot.from_row(row)
        entry = (row["id"], row["document_id"], row["source"], snapshot)
        (current if latest.get(row["document_id"]) == row["id"] else history).append(entry)
    store_tags(db, history, tagger, latest=False)
    after = store_tags(db, current, tagger, latest=True)
    now, moved = utc_now(), 0
    for document_id, names in after.items():
        old_version, old = before.get(document_id, (None, {k: [] for k in KINDS}))
        added = {
            k: sorted(set(names[k]) - set(old[k])) for k in KINDS if set(names[k]) - set(old[k])
        }
        removed = {
            k: sorted(set(old[k]) - set(names[k])) for k in KINDS if set(old[k]) - set(names[k])
        }
        if added or removed:
            moved += 1
            db.table("tag_changes").insert(
                {
                    "document_id": document_id,
                    "changed_at": now,
                    "taxonomy_from": old_version,
                    "taxonomy_to": tagger.version,
                    "added": json.dumps(added, ensure_ascii=False),
                    "removed": json.dumps(removed, ensure_ascii=False),
                }
            )
    return {
        "taxonomy_version": tagger.version,
        "versions": len(history) + len(current),
        "documents": len(current),
        "documents_with_new_tags": moved,
    }
