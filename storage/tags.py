"""Tags in the database: per version, current per document, and re-tagging the history."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from storage.db import utc_now, write_transaction
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


RETAG_CHUNK = 500  # versions tagged and committed at a time


def retag(db: sqlite_utils.Database, tagger: Tagger, chunk: int = RETAG_CHUNK) -> dict[str, Any]:
    """Tag every version again with `tagger`, oldest first, `chunk` versions per transaction;
    record which documents' current tags moved. Memory stays flat in the history's size, and
    an interrupted retag (killed, a full disk) resumes where its last chunk was committed when
    run again with the same taxonomy version. Call outside a transaction."""
    now = utc_now()
    row = db.execute(
        "SELECT done_through FROM retags WHERE taxonomy_version = ? AND finished_at IS NULL",
        [tagger.version],
    ).fetchone()
    if row is None:
        with write_transaction(db):
            db.execute("DELETE FROM retags WHERE taxonomy_version = ?", [tagger.version])
            db.execute(
                "INSERT INTO retags (taxonomy_version, started_at, done_through) VALUES (?, ?, 0)",
                [tagger.version, now],
            )
    resumed_after = int(row[0]) if row else 0
    done, versions, documents, moved = resumed_after, 0, 0, 0
    while True:
        batch = list(
            db.query(
                "SELECT v.id, v.document_id, d.source, v.title, v.url, v.date, t.text, v.extra, "
                "t.document_content, v.id = (SELECT max(id) FROM versions "
                "WHERE document_id = v.document_id) AS latest "
                "FROM versions v JOIN documents d ON d.id = v.document_id "
                "JOIN texts t ON t.id = v.text_id WHERE v.id > ? ORDER BY v.id LIMIT ?",
                [done, chunk],
            )
        )
        if not batch:
            break
        with write_transaction(db):
            ids = [r["id"] for r in batch]
            db.execute(
                f"DELETE FROM tags WHERE version_id IN ({','.join('?' * len(ids))})",  # noqa: S608
                ids,
            )
            entries = [
                (r["id"], r["document_id"], r["source"], Snapshot.from_row(r)) for r in batch
            ]
            store_tags(
                db,
                [e for e, r in zip(entries, batch, strict=True) if not r["latest"]],
                tagger,
                latest=False,
            )
            current = [e for e, r in zip(entries, batch, strict=True) if r["latest"]]
            before = _current_tags(db, [e[1] for e in current])
            after = store_tags(db, current, tagger, latest=True)
            moved += _record_moves(db, before, after, tagger.version, now)
            done = ids[-1]
            db.execute(
                "UPDATE retags SET done_through = ? WHERE taxonomy_version = ?",
                [done, tagger.version],
            )
        versions += len(batch)
        documents += len(current)
    with write_transaction(db):
        db.execute(
            "UPDATE retags SET finished_at = ? WHERE taxonomy_version = ?",
            [utc_now(), tagger.version],
        )
    return {
        "taxonomy_version": tagger.version,
        "versions": versions,
        "documents": documents,
        "documents_with_new_tags": moved,
        "resumed_after_version": resumed_after or None,
    }


def _current_tags(
    db: sqlite_utils.Database, ids: list[str]
) -> dict[str, tuple[str | None, dict[str, list[str]]]]:
    marks = ",".join("?" * len(ids))
    return {
        row["id"]: (row["taxonomy_version"], {k: json.loads(row[k]) for k in KINDS})
        for row in db.query(
            "SELECT id, taxonomy_version, functions, products, entity_types FROM documents "  # noqa: S608
            f"WHERE id IN ({marks})",
            ids,
        )
    }


def _record_moves(
    db: sqlite_utils.Database,
    before: dict[str, tuple[str | None, dict[str, list[str]]]],
    after: dict[str, dict[str, list[str]]],
    taxonomy_version: str,
    now: str,
) -> int:
    """A `tag_changes` row per document whose current tags moved; how many."""
    moved = 0
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
                    "taxonomy_to": taxonomy_version,
                    "added": json.dumps(added, ensure_ascii=False),
                    "removed": json.dumps(removed, ensure_ascii=False),
                }
            )
    return moved
