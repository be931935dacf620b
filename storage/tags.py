"""Tags in the database: per version, current per document, and re-tagging the history."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from storage.db import utc_now, write_transaction
from storage.records import KINDS, Snapshot, Tagger, TagSet

VersionToTag = tuple[int, str, str, Snapshot]  # version id, document id, source, snapshot


Corrections = dict[str, dict[str, dict[str, Any]]]  # kind -> tag -> {action, by, at, note}
TAG_ACTIONS = ("add", "remove")


class CorrectionProblem(ValueError):
    """A tag correction that cannot be recorded; the message names the document or tag."""


def _names(tags: TagSet) -> dict[str, list[str]]:
    return {kind: sorted(tags.get(kind, {})) for kind in KINDS}


def in_force(machine: dict[str, list[str]], corrections: Corrections) -> dict[str, list[str]]:
    """The tags in force: the tagger's, plus those people added, less those they removed."""
    result = {}
    for kind in KINDS:
        names = set(machine.get(kind, []))
        for name, correction in corrections.get(kind, {}).items():
            (names.add if correction["action"] == "add" else names.discard)(name)
        result[kind] = sorted(names)
    return result


def corrections_of(db: sqlite_utils.Database, document_ids: list[str]) -> dict[str, Corrections]:
    """Per document, the corrections in force: the newest per kind and tag."""
    found: dict[str, Corrections] = {}
    for start in range(0, len(document_ids), 500):
        chunk = document_ids[start : start + 500]
        for row in db.query(
            "SELECT * FROM tag_corrections WHERE document_id IN "  # noqa: S608
            f"({','.join('?' * len(chunk))}) ORDER BY id",
            chunk,
        ):
            found.setdefault(row["document_id"], {}).setdefault(row["kind"], {})[row["tag"]] = {
                "action": row["action"],
                "by": row["by"],
                "at": row["at"],
                "note": row["note"],
            }
    return found


def _write_current(
    db: sqlite_utils.Database,
    document_id: str,
    machine: dict[str, list[str]],
    corrections: Corrections,
    taxonomy_version: str | None,
) -> dict[str, list[str]]:
    names = in_force(machine, corrections)
    row: dict[str, Any] = {kind: json.dumps(names[kind], ensure_ascii=False) for kind in KINDS}
    row["corrections"] = json.dumps(corrections, ensure_ascii=False)
    if taxonomy_version is not None:
        row["taxonomy_version"] = taxonomy_version
    db.table("documents").update(document_id, row)
    return names


def machine_tags(db: sqlite_utils.Database, document_id: str) -> dict[str, dict[str, Any]]:
    """The tagger's tags of a document's latest version: kind -> tag -> evidence."""
    found: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
    for row in db.query(
        "SELECT kind, tag, evidence FROM tags WHERE version_id = "
        "(SELECT max(id) FROM versions WHERE document_id = ?) ORDER BY tag",
        [document_id],
    ):
        found.setdefault(row["kind"], {})[row["tag"]] = json.loads(row["evidence"])
    return found


def add_correction(
    db: sqlite_utils.Database,
    document_id: str,
    kind: str,
    tag: str,
    action: str,
    by: str,
    note: str | None = None,
) -> dict[str, Any]:
    """Append an officer's correction of a document's tags and bring its tags in force up to
    date. Returns the row as stored, with the tags in force `before` and `after`. Call in a
    transaction."""
    if kind not in KINDS or action not in TAG_ACTIONS:
        raise CorrectionProblem(f"tag correction: {kind!r} {action!r} is not a kind and action")
    if not by.strip():
        raise CorrectionProblem("tag correction: say who makes it (--by NAME)")
    current = db.execute(
        "SELECT functions, products, entity_types FROM documents WHERE id = ?", [document_id]
    ).fetchone()
    if current is None:
        raise CorrectionProblem(f"no document {document_id!r}")
    before = {kind: json.loads(value) for kind, value in zip(KINDS, current, strict=True)}
    row = {
        "document_id": document_id,
        "kind": kind,
        "tag": tag,
        "action": action,
        "by": by.strip(),
        "note": note,
        "at": utc_now(),
    }
    db.table("tag_corrections").insert(row)
    machine = {k: sorted(v) for k, v in machine_tags(db, document_id).items()}
    corrections = corrections_of(db, [document_id]).get(document_id, {})
    after = _write_current(db, document_id, machine, corrections, None)
    row_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
    return {"id": row_id, **row, "before": before, "after": after}


def correction_log(
    db: sqlite_utils.Database, document_id: str | None = None
) -> list[dict[str, Any]]:
    """Tag corrections, oldest first (of one document, or all), with the document's title."""
    sql = "SELECT c.*, d.title FROM tag_corrections c JOIN documents d ON d.id = c.document_id "
    if document_id is None:
        return list(db.query(sql + "ORDER BY c.id"))
    return list(db.query(sql + "WHERE c.document_id = ? ORDER BY c.id", [document_id]))


def corrected_documents(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Documents people corrected, as labelled items for measuring the tagger: the title and
    listing metadata of the latest version, the tags in force as labels."""
    items = []
    for row in db.query(
        "SELECT d.source, d.functions, d.products, v.title, v.extra FROM documents d "
        "JOIN versions v ON v.id = (SELECT max(id) FROM versions WHERE document_id = d.id) "
        "WHERE d.id IN (SELECT document_id FROM tag_corrections)"
    ):
        extra = json.loads(row["extra"])
        items.append(
            {
                "title": row["title"],
                "source": row["source"],
                **{k: extra[k] for k in ("feed", "doc_type", "topics", "page") if k in extra},
                "functions": json.loads(row["functions"]),
                "products": json.loads(row["products"]),
            }
        )
    return items


def taxonomies_in_use(db: sqlite_utils.Database) -> set[str]:
    """The taxonomies the documents' current tags came from, as far as the least and the
    greatest of them tell (two index lookups): one version when every document has it."""
    least, greatest = db.execute(
        "SELECT min(taxonomy_version), max(taxonomy_version) FROM documents"
    ).fetchone()
    return {v for v in (least, greatest) if v is not None}


def store_tags(
    db: sqlite_utils.Database,
    versions: Iterable[VersionToTag],
    tagger: Tagger,
    latest: bool = True,
) -> dict[str, dict[str, list[str]]]:
    """Store the tags `tagger` gives versions (id, document id, source, snapshot); with
    `latest`, they and the corrections people made (`tag_corrections`) are their documents'
    tags in force. Returns document id -> kind -> tag names in force."""
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
        corrections = corrections_of(db, list(current))
        for document_id, names in current.items():
            # Why a tag was given is kept for the current version; earlier ones keep the names.
            db.execute(
                "UPDATE tags SET evidence = '[]' WHERE document_id = ? AND version_id < ("
                "SELECT max(id) FROM versions WHERE document_id = ?) AND evidence != '[]'",
                [document_id, document_id],
            )
            current[document_id] = _write_current(
                db, document_id, names, corrections.get(document_id, {}), tagger.version
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
