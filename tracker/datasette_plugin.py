"""The tracker's Datasette plugin: descriptions and canned queries for any database with the
tracker's schema, whatever its file name (`pip install 'hkma-tracker[datasette]'`, then
`datasette hkma-tracker.db`, or `hkma-tracker datasette`).

Queries take what an analyst types: a tag by its name or alias in any case (`aml`), search
words through the same quoting as `hkma-tracker search` (never an FTS5 syntax error), and
show tag lists as comma-separated names.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from datasette import hookimpl

from storage.search import fts_query
from tracker.config import vocabularies
from tracker.rules import UnknownKey, rule_key
from tracker.sources import binding_sql
from tracker.tagging import load_taxonomy

# The tables that make a database the tracker's.
SCHEMA_TABLES = {"documents", "versions", "texts", "changes", "links", "_sqlite_migrations"}

TABLES = {
    "documents": "Current state of each tracked document; functions, products and entity_types "
    "are its current tags.",
    "versions": "Every distinct state of a document, append-only.",
    "texts": "Each distinct text (listing text and linked document content) once; "
    "documents_full and versions_full show rows with their texts.",
    "changes": "One event per new, changed or removed document; baseline: what a listing showed "
    "when first read (recorded, not news); significance: substantive or cosmetic, and why.",
    "tags": "Tags per document version, with the taxonomy version and, for the current version, "
    "the evidence.",
    "links": "Keys each document is linked to: spm:<module>, ref:<circular reference>, "
    "brdr:<docId>, doc:<document id> (a document whose title its text names).",
    "reviews": "Who assessed which change and what was decided; append-only (a change's review "
    "is its newest row; review_status shows each substantive change with it).",
    "records": "Rule records: one per rule or initiative, grown by every publication on it "
    "(record_updates: one row per publication; `hkma-tracker record ID`).",
    "record_members": "Which record each document is in, and the evidence that put it there.",
    "record_corrections": "Officers' joins, splits and retitles of records; append-only.",
}

_TAGS = (
    "hkma_names(c.functions) AS functions, hkma_names(c.products) AS products, "
    "hkma_names(c.entity_types) AS entity_types"
)


def _by_tag(kind: str) -> str:
    # `kind` is one of ours (functions, products, entity_types), never user input.
    return (
        f"SELECT c.detected_at, c.regulator, c.kind, c.title, c.url, {_TAGS} "  # noqa: S608
        "FROM latest_changes c "
        f"WHERE NOT c.baseline AND EXISTS (SELECT 1 FROM json_each(c.{kind}) t "
        f"WHERE t.value = hkma_tag('{kind}', :{kind[:-1]})) ORDER BY c.id DESC LIMIT 500"
    )


QUERIES: dict[str, dict[str, str]] = {
    "changes_this_week": {
        "title": "Substantive changes in the last 7 days (the baseline left out)",
        "sql": f"SELECT c.detected_at, c.regulator, c.kind, c.title, c.url, c.fields, "  # noqa: S608
        f"{_TAGS} "
        "FROM latest_changes c WHERE c.significance = 'substantive' AND NOT c.baseline "
        "AND c.detected_at >= date('now', '-7 days')",
    },
    "changes_by_function": {
        "title": "Changes tagged with a function (a name or alias, e.g. AML)",
        "sql": _by_tag("functions"),
    },
    "changes_by_product": {
        "title": "Changes tagged with a product (a name or alias, e.g. wealth)",
        "sql": _by_tag("products"),
    },
    "changes_by_entity_type": {
        "title": "Changes tagged with an entity type (a name or alias, e.g. banks)",
        "sql": _by_tag("entity_types"),
    },
    "upcoming_deadlines": {
        "title": "Deadlines from today: effective dates and consultation dates of current "
        "documents, with the sentence or register field that states them",
        "sql": "SELECT dl.date, dl.regulator, dl.kind, dl.title, dl.evidence, "
        "hkma_names(dl.functions) AS "
        "functions, dl.url FROM deadlines dl WHERE dl.date >= date('now', '+8 hours') "
        "AND dl.status = 'active' AND dl.standing = 'current' ORDER BY dl.date",
    },
    "open_reviews": {
        "title": "Substantive changes not yet decided (open or in review), oldest first",
        "sql": "SELECT r.change_id, r.detected_at, r.regulator, r.kind, r.title, r.state, "
        "r.owner, r.note, hkma_names(r.functions) AS functions, r.url FROM review_status r "
        "WHERE r.state IN ('open', 'in review') ORDER BY r.change_id",
    },
    "review_log": {
        "title": "Every review of a change (its id as `changes` and digests show it)",
        "sql": "SELECT r.at, r.state, r.owner, r.note, c.title, c.url FROM reviews r "
        "JOIN changes c ON c.id = r.change_id WHERE r.change_id = :change_id ORDER BY r.id",
    },
    "checks_in_period": {
        "title": "Every check of every source between two dates (as `hkma-tracker report`)",
        "sql": "SELECT s.finished_at, s.source, s.healthy, s.reason, s.items, s.new, s.changed, "
        "s.removed, r.command FROM source_runs s JOIN runs r ON r.id = s.run_id "
        # Hong Kong days, as `hkma-tracker report` counts them (times are stored in UTC).
        "WHERE s.finished_at >= strftime('%Y-%m-%dT%H:%M:%S', :from_date, '-8 hours') "
        "AND s.finished_at < strftime('%Y-%m-%dT%H:%M:%S', :to_date, '+1 day', '-8 hours') "
        "ORDER BY s.finished_at",
    },
    "superseded_rules": {
        "title": "Documents superseded or withdrawn, and by what",
        "sql": "SELECT d.date, d.title, d.extra ->> '$.status' AS status, "
        "d.extra ->> '$.superseded_by.title' AS superseded_by, "
        "coalesce(d.extra ->> '$.supersession_date', d.extra ->> '$.left_register_on') AS on_date, "
        "d.url FROM documents d WHERE d.extra ->> '$.status' IN ('superseded', 'withdrawn') "
        "ORDER BY on_date DESC",
    },
    "records_updated_this_week": {
        "title": "Rule records with a publication in the last 7 days, and their updates",
        "sql": "SELECT r.id, r.title, r.updates, u.date, u.title AS update_title, u.regulators, "
        "u.sources "
        "FROM records r JOIN record_updates u ON u.record_id = r.id "
        "WHERE r.last_date >= date('now', '+8 hours', '-7 days') ORDER BY r.last_date DESC, "
        "r.id, u.date DESC",
    },
    "rule_timeline": {
        "title": "Documents linked to a rule (spm:IC-6, ref:B1/15C, brdr:20250428-3)",
        "sql": "SELECT d.date, group_concat(l.kind, ', ') AS link, d.title, d.url FROM links l "
        "JOIN documents d ON d.id = l.document_id WHERE l.key = hkma_rule_key(:key) GROUP BY d.id "
        "ORDER BY d.date",
    },
    "search": {
        "title": 'Search titles and texts (as `hkma-tracker search`: "phrases", prefix*)',
        "sql": "SELECT d.date, d.title, snippet(documents_fts, 2, '[', ']', ' … ', 12) AS "
        "snippet, d.url FROM documents_fts f JOIN documents d ON d.rowid = f.rowid "
        "WHERE documents_fts MATCH hkma_fts(:query) ORDER BY bm25(documents_fts, 0, 5.0, 1.0, "
        "1.0) LIMIT 50",
    },
    "untagged_instruments": {
        "title": "Changes to binding instruments (circulars, guidelines, SPM modules, codes, "
        "consultations) that no rule tagged with a function: filtered subscribers get them "
        "in their digest's untagged section",
        # The condition is built from the source descriptors, no input: not an injection.
        "sql": "SELECT r.change_id, r.detected_at, r.kind, r.title, r.state, "  # noqa: S608
        "hkma_names(r.products) AS products, r.document_id, r.url FROM review_status r "
        "JOIN documents d ON d.id = r.document_id "
        f"WHERE r.functions = '[]' AND {binding_sql('d')} "
        "ORDER BY r.change_id DESC",
    },
    "unreadable_documents": {
        "title": "Linked documents that could not be read, and why",
        "sql": "SELECT fetch_url, fetch_status, fetch_reason, fetch_attempts, fetched_at "
        "FROM documents WHERE fetch_status IN ('failed', 'unparsable')",
    },
}


def _fts(text: str | None) -> str:
    # An input with nothing to search for matches nothing (rather than an FTS5 error).
    return fts_query(text or "") or '""'


def _names(value: str | None) -> str:
    try:
        names = json.loads(value or "[]")
    except ValueError:
        return value or ""
    return ", ".join(str(n) for n in names) if isinstance(names, list) else str(value)


def _rule_key(value: str | None) -> str:
    # As `hkma-tracker rule` reads it (IC-6 is spm:IC-6); a key it refuses matches nothing.
    try:
        return rule_key(value or "")
    except UnknownKey:
        return value or ""


def _tag(kind: str, value: str | None) -> str | None:
    known = vocabularies(load_taxonomy())
    return known.get(kind, {}).get((value or "").strip().casefold(), value)


@hookimpl
def prepare_connection(conn: Any) -> None:
    conn.create_function("hkma_fts", 1, _fts, deterministic=True)
    conn.create_function("hkma_names", 1, _names, deterministic=True)
    conn.create_function("hkma_tag", 2, _tag, deterministic=True)
    conn.create_function("hkma_rule_key", 1, _rule_key, deterministic=True)


@hookimpl
def canned_queries(datasette: Any, database: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def queries() -> dict[str, Any]:
        tables = set(await datasette.get_database(database).table_names())
        return dict(QUERIES) if tables >= SCHEMA_TABLES else {}

    return queries


@hookimpl
def get_metadata(datasette: Any) -> dict[str, Any]:
    tables = {name: {"description": text} for name, text in TABLES.items()}
    return {
        "title": "hkma-tracker history",
        "databases": {name: {"tables": tables} for name in datasette.databases},
    }
