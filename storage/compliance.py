"""What compliance teams keep after a digest: deadlines as documents state them now, the review
log of each substantive change, and what an attestation report reads (the `deadlines`,
`reviews` and `review_status` of m016)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlite_utils

from storage.db import REVIEW_STATES, utc_now
from storage.history import tag_conditions
from storage.records import KINDS


class ReviewProblem(ValueError):
    """A review that cannot be recorded; the message names what is wrong."""


def _filters(
    tags: dict[str, list[str]] | None,
    table: str,
    column: str,
    *bounds: tuple[str | None, str],
) -> tuple[str, list[Any]]:
    """A WHERE clause (never empty) and its parameters: `table` carries any of the wanted
    `tags`, and `column` keeps each given (value, operator) bound."""
    where, params = tag_conditions(tags, table, "document_id")
    for value, op in bounds:
        if value:
            where.append(f"{column} {op} ?")
            params.append(value)
    return " AND ".join(where) or "1", params


def _record(row: dict[str, Any]) -> dict[str, Any]:
    for kind in KINDS:
        if isinstance(row.get(kind), str):
            row[kind] = json.loads(row[kind])
    return row


def deadlines(
    db: sqlite_utils.Database,
    since: str | None = None,
    until: str | None = None,
    tags: dict[str, list[str]] | None = None,
    current_only: bool = True,
) -> list[dict[str, Any]]:
    """Deadlines (YYYY-MM-DD `since` to `until`, both included), soonest first. `current_only`:
    of active documents that are neither superseded nor withdrawn."""
    where, params = _filters(tags, "dl", "dl.date", (since, ">="), (until, "<="))
    if current_only:
        where += " AND dl.status = 'active' AND dl.standing = 'current'"
    sql = "SELECT dl.* FROM deadlines dl WHERE " + where  # noqa: S608 - values are parameters
    sql += " ORDER BY dl.date, dl.document_id, dl.kind, dl.ordinal"
    return [_record(row) for row in db.query(sql, params)]


def reviewable(db: sqlite_utils.Database, change_id: int) -> None:
    """Refuse a change that is not a substantive change event: none such, a listing's first
    reading (baseline), or a cosmetic change, which need no review."""
    change = db.execute(
        "SELECT baseline, significance FROM changes WHERE id = ?", [change_id]
    ).fetchone()
    if change is None:
        raise ReviewProblem(f"change {change_id}: no such change event")
    if change[0] or change[1] != "substantive":
        why = "a listing's first reading (baseline)" if change[0] else "a cosmetic change"
        raise ReviewProblem(f"change {change_id}: {why} needs no review")


def add_review(
    db: sqlite_utils.Database,
    change_id: int,
    state: str,
    owner: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Append a review of a substantive change; the row as stored."""
    if state not in REVIEW_STATES:
        raise ReviewProblem(f"review state {state!r}: expected one of {', '.join(REVIEW_STATES)}")
    reviewable(db, change_id)
    row = {"change_id": change_id, "state": state, "owner": owner, "note": note, "at": utc_now()}
    db.table("reviews").insert(row)
    return {"id": db.execute("SELECT last_insert_rowid()").fetchone()[0], **row}


# Two events of one publication (its RSS item and its API record; a listing change and then
# its PDF's) this many days apart or fewer are one update, decided once.
TWIN_DAYS = 7


def twin_changes(db: sqlite_utils.Database, change_id: int) -> list[int]:
    """The other substantive changes of the same kind to the same publication (as its rule
    record holds it) detected within TWIN_DAYS: one decision covers them all."""
    return [
        row[0]
        for row in db.execute(
            "SELECT c2.id FROM changes c JOIN record_members m ON m.document_id = c.document_id "
            "JOIN record_members m2 ON m2.publication = m.publication "
            "JOIN changes c2 ON c2.document_id = m2.document_id "
            "WHERE c.id = ? AND c2.id != c.id AND c2.kind = c.kind AND NOT c2.baseline "
            "AND c2.significance = 'substantive' "
            "AND abs(julianday(c2.detected_at) - julianday(c.detected_at)) <= ? ORDER BY c2.id",
            [change_id, TWIN_DAYS],
        )
    ]


def review_status(
    db: sqlite_utils.Database,
    open_only: bool = False,
    tags: dict[str, list[str]] | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Substantive changes with their current review, oldest first (the first `limit`).
    `open_only`: those not yet actioned or found not applicable (open or in review)."""
    where, params = _filters(tags, "r", "r.detected_at", (since, ">="), (until, "<"))
    if open_only:
        where += " AND r.state IN ('open', 'in review')"
    sql = "SELECT r.* FROM review_status r WHERE " + where  # noqa: S608 - values are parameters
    sql += " ORDER BY r.change_id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return (_record(row) for row in db.query(sql, params))


def untagged_change_ids(
    db: sqlite_utils.Database,
    binding: str,
    since: str | None = None,
    until: str | None = None,
    regulators: list[str] | None = None,
) -> list[int]:
    """Substantive changes to binding instruments whose documents carry no function tag in
    force (what a filter on functions could not route by its tags), oldest first; of
    `regulators` only, if given. `binding`: the SQL condition on a document `d`'s source and
    extra that says it binds."""
    # The period's changes by their detection time's index (CROSS JOIN keeps that order;
    # without INDEXED BY the planner reads every event in id order to save sorting the
    # period's): the cost is the period's, not the history's.
    where, params = _filters(
        {"regulators": regulators or []}, "c", "c.detected_at", (since, ">="), (until, "<")
    )
    indexed = " INDEXED BY changes_detected" if since or until else ""
    return [
        row[0]
        for row in db.execute(
            f"SELECT c.id FROM changes c{indexed} CROSS JOIN documents d "  # noqa: S608
            f"ON d.id = c.document_id WHERE {where} AND NOT c.baseline "
            "AND c.significance = 'substantive' "
            f"AND {binding} AND d.functions = '[]' ORDER BY c.id",
            params,
        )
    ]


def untagged_changes(
    db: sqlite_utils.Database,
    binding: str,
    since: str | None = None,
    until: str | None = None,
    regulators: list[str] | None = None,
) -> list[dict[str, Any]]:
    """`untagged_change_ids`, each with its review (as `review_status` has it)."""
    ids = untagged_change_ids(db, binding, since, until, regulators)
    rows: list[dict[str, Any]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows += db.query(
            "SELECT * FROM review_status WHERE change_id IN "  # noqa: S608
            f"({','.join('?' * len(chunk))}) ORDER BY change_id",
            chunk,
        )
    return [_record(row) for row in rows]


def review_log(db: sqlite_utils.Database, change_id: int) -> list[dict[str, Any]]:
    """Every review of a change, oldest first; a change that takes none is refused, as
    `add_review` refuses it."""
    reviewable(db, change_id)
    return list(db.query("SELECT * FROM reviews WHERE change_id = ? ORDER BY id", [change_id]))


OPEN_COUNT_CAP = 1000  # a digest counts open changes up to this ("1000 or more")


def open_reviews(db: sqlite_utils.Database, subscriber: str) -> tuple[int, str | None]:
    """How many of the substantive changes queued for `subscriber` are still open or in
    review (counted up to OPEN_COUNT_CAP), and when the oldest of them was detected. Reads the
    subscriber's changes in order and stops early: its cost follows what is open, not the
    history."""
    still_open = (
        "FROM outbox_items o JOIN changes c ON c.id = o.change_id "
        "WHERE o.subscriber = ? AND NOT c.baseline AND c.significance = 'substantive' "
        "AND coalesce((SELECT r.state FROM reviews r WHERE r.change_id = c.id "
        "ORDER BY r.id DESC LIMIT 1), 'open') IN ('open', 'in review')"
    )
    count = db.execute(
        f"SELECT count(*) FROM (SELECT 1 {still_open} LIMIT ?)",  # noqa: S608 - no input in it
        [subscriber, OPEN_COUNT_CAP],
    ).fetchone()[0]
    oldest = db.execute(
        f"SELECT c.detected_at {still_open} ORDER BY o.change_id LIMIT 1",
        [subscriber],
    ).fetchone()
    return int(count), oldest[0] if oldest else None


def source_runs_between(db: sqlite_utils.Database, start: str, end: str) -> list[dict[str, Any]]:
    """Every check of every source that finished in [start, end), oldest first."""
    return list(
        db.query(
            "SELECT s.run_id, s.source, s.healthy, s.reason, s.items, s.new, s.changed, "
            "s.removed, s.finished_at, s.sweep, r.command FROM source_runs s "
            "JOIN runs r ON r.id = s.run_id "
            "WHERE s.finished_at >= ? AND s.finished_at < ? ORDER BY s.finished_at, s.source",
            [start, end],
        )
    )


def last_healthy_before(db: sqlite_utils.Database, source: str, moment: str) -> str | None:
    """When `source` last finished a healthy check before `moment`."""
    row = db.execute(
        "SELECT max(finished_at) FROM source_runs WHERE source = ? AND healthy AND finished_at < ?",
        [source, moment],
    ).fetchone()
    return row[0] if row else None


def deadline_histories(
    db: sqlite_utils.Database, tags: dict[str, list[str]] | None = None
) -> dict[tuple[str, str, int], list[str | None]]:
    """Every deadline any version of a document stated (of documents carrying any of `tags`):
    (document id, kind, ordinal) -> its date in each of the document's versions, oldest
    first (None where that version stated none)."""
    where, params = tag_conditions(tags, "d")
    sql = (
        "SELECT v.id, v.document_id, vd.kind, vd.ordinal, vd.date FROM versions v "
        "JOIN documents d ON d.id = v.document_id "
        "LEFT JOIN version_deadlines vd ON vd.version_id = v.id "
        "WHERE v.document_id IN (SELECT document_id FROM version_deadlines)"
    )
    if where:
        sql += " AND " + " AND ".join(where)
    versions: dict[str, list[int]] = {}
    stated: dict[tuple[str, str, int], dict[int, str]] = {}
    for version_id, document_id, kind, ordinal, date in db.execute(sql + " ORDER BY v.id", params):
        ids = versions.setdefault(document_id, [])
        if not ids or ids[-1] != version_id:
            ids.append(version_id)
        if kind is not None:
            stated.setdefault((document_id, kind, ordinal), {})[version_id] = date
    return {
        key: [dates.get(version_id) for version_id in versions[key[0]]]
        for key, dates in stated.items()
    }
