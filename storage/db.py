"""The database file: connection settings, schema migrations and write transactions."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

BUSY_TIMEOUT_MS = 10_000

migrations = Migrations("hkma-tracker")


def utc_now() -> str:
    """Current time as ISO-8601 UTC with seconds, the form of every stored timestamp."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class DatabaseProblem(Exception):
    """The database file cannot be used as it is; the message names the path and why."""


_SQLITE_HEADER = b"SQLite format 3\x00"


def check_file(path: Path, create: bool) -> None:
    """Refuse, with one line naming `path`, what SQLite would fail on with a traceback (or,
    worse, quietly make into a database of its own)."""
    if not path.parent.is_dir():
        raise DatabaseProblem(f"database {path}: its folder {path.parent} does not exist")
    if path.is_dir():
        raise DatabaseProblem(f"database {path} is a folder")
    if not path.exists():
        if not create:
            raise DatabaseProblem(f"database {path} does not exist (`hkma-tracker run` creates it)")
        if not os.access(path.parent, os.W_OK):
            raise DatabaseProblem(f"database {path}: its folder {path.parent} is not writable")
        return
    size = path.stat().st_size
    if size == 0 and not create:
        raise DatabaseProblem(f"database {path} is an empty file, not an hkma-tracker database")
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as error:
        raise DatabaseProblem(f"database {path}: {error.strerror}") from None
    if size and header != _SQLITE_HEADER:
        raise DatabaseProblem(f"database {path} is not a SQLite database")
    if create and not os.access(path, os.W_OK):
        raise DatabaseProblem(f"database {path} is not writable")


def _check_schema(db: sqlite_utils.Database, path: Path) -> None:
    """Ours, and of a schema this release knows (not written by a newer one)."""
    try:
        tables = set(db.table_names())
    except sqlite3.DatabaseError as error:
        raise DatabaseProblem(f"database {path}: {error}") from None
    applied = {m.name for m in migrations.applied(db)}
    if tables and not applied:
        raise DatabaseProblem(f"database {path} is a SQLite database, but not an hkma-tracker one")
    if unknown := applied - {m.name for m in migrations._migrations}:
        raise DatabaseProblem(
            f"database {path} was written by a newer hkma-tracker (schema {max(unknown)}): "
            "upgrade hkma-tracker to use it"
        )


def check_database(path: Path, create: bool) -> None:
    """Whether `path` can be opened as the tracker's database (DatabaseProblem if not),
    without writing anything: checked before a lock file is made beside it."""
    check_file(path, create)
    if path.exists() and path.stat().st_size:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            _check_schema(sqlite_utils.Database(conn), path)
        finally:
            conn.close()


@contextlib.contextmanager
def _migration_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `<db>.migrate.lock`, held while the schema is migrated."""
    with open(path.with_name(path.name + ".migrate.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_db(path: str | Path, create: bool = True) -> sqlite_utils.Database:
    """Open the tracker database at `path`, migrating it to this release's schema; with
    `create`, an absent (or empty) file becomes a new database."""
    path = Path(path)
    check_file(path, create)
    db = sqlite_utils.Database(path)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _check_schema(db, path)
        db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")
        if migrations.pending(db):
            # One process migrates at a time (a `review set` racing a run's start): the
            # others wait, then find nothing left to do.
            with _migration_lock(path):
                if migrations.pending(db):
                    # Migrations rebuild tables that others refer to: SQLite's recipe is to
                    # switch foreign keys off (not possible inside the migration's
                    # transaction), then check. The check reads the whole database (195 s
                    # at a million versions): only after a migration rebuilt or dropped one.
                    db.execute("PRAGMA foreign_keys = OFF")
                    before = _table_pages(db)
                    migrations.apply(db)
                    rebuilt = tables_rebuilt(before, _table_pages(db))
                    if rebuilt and (broken := db.execute("PRAGMA foreign_key_check").fetchall()):
                        raise sqlite3.IntegrityError(
                            f"{path}: after migrating, dangling references {broken[:5]}"
                        )
        db.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        db.close()
        raise
    return db


def _table_pages(db: sqlite_utils.Database) -> dict[str, int]:
    """Each table's first page: a table rebuilt (created anew, the old one dropped) moves."""
    return dict(db.execute("SELECT name, rootpage FROM sqlite_master WHERE type = 'table'"))


def tables_rebuilt(before: dict[str, int], after: dict[str, int]) -> set[str]:
    """The tables a migration rebuilt or dropped (what may leave a reference dangling), from
    their first pages before and after it; a table it added is neither."""
    return {name for name, page in before.items() if after.get(name) != page}


def open_readonly(path: str | Path) -> sqlite_utils.Database:
    """Open an existing database read-only (reports, analysts), never creating or migrating it."""
    path = Path(path)
    check_file(path, create=False)
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db = sqlite_utils.Database(conn)
    try:
        _check_schema(db, path)
        if migrations.pending(db):
            raise DatabaseProblem(
                f"database {path} is of an older schema: run `hkma-tracker run` (or any "
                "command that writes) once to upgrade it"
            )
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def write_transaction(db: sqlite_utils.Database, commit: bool = True) -> Iterator[None]:
    """One IMMEDIATE transaction: all of it lands, or none of it (also if the process dies).

    IMMEDIATE takes the write lock up front; a deferred transaction that upgrades later can fail
    with SQLITE_BUSY despite the busy timeout. `commit=False` rolls back (dry runs).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.rollback()
        raise
    if commit:
        db.commit()
    else:
        db.rollback()


def _execute_script(db: sqlite_utils.Database, script: str) -> None:
    # Not executescript(): it commits first, breaking the migration's transaction.
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            command TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,           -- running, ok, degraded, failed
            exit_code INTEGER
        );
        CREATE TABLE source_runs (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            source TEXT NOT NULL,
            healthy INTEGER NOT NULL,
            reason TEXT NOT NULL,           -- why unhealthy; empty when healthy
            items INTEGER NOT NULL,
            new INTEGER NOT NULL,
            changed INTEGER NOT NULL,
            removed INTEGER NOT NULL,
            requests INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            finish_reason TEXT,
            stats TEXT NOT NULL,            -- JSON: Scrapy's crawl stats
            finished_at TEXT NOT NULL,
            PRIMARY KEY (run_id, source)
        );
        CREATE TABLE listings (
            source TEXT NOT NULL,
            url TEXT NOT NULL,              -- a feed or topic page
            healthy INTEGER NOT NULL,
            reason TEXT NOT NULL,
            items INTEGER NOT NULL,
            last_run_id INTEGER REFERENCES runs(id),
            last_healthy_run_id INTEGER REFERENCES runs(id),
            last_healthy_items INTEGER,
            last_healthy_at TEXT,
            PRIMARY KEY (source, url)
        );
        CREATE TABLE documents (
            id TEXT PRIMARY KEY,            -- "<source>:<key>", see README
            source TEXT NOT NULL,
            listing TEXT NOT NULL,
            title TEXT NOT NULL,
            url TEXT NOT NULL,
            date TEXT,                      -- Hong Kong date, YYYY-MM-DD
            text TEXT NOT NULL,
            extra TEXT NOT NULL,            -- JSON object
            content_hash TEXT NOT NULL,
            status TEXT NOT NULL,           -- active, removed
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            last_changed_at TEXT NOT NULL,
            removed_at TEXT
        );
        CREATE INDEX documents_listing ON documents(source, listing, status);
        CREATE TABLE versions (
            id INTEGER PRIMARY KEY,
            document_id TEXT NOT NULL REFERENCES documents(id),
            run_id INTEGER NOT NULL REFERENCES runs(id),
            fetched_at TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            title TEXT NOT NULL,
            url TEXT NOT NULL,
            date TEXT,
            text TEXT NOT NULL,
            extra TEXT NOT NULL
        );
        CREATE INDEX versions_document ON versions(document_id, id);
        CREATE TABLE digests (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            channel TEXT NOT NULL,
            location TEXT NOT NULL,
            changes INTEGER NOT NULL
        );
        CREATE TABLE changes (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            document_id TEXT NOT NULL REFERENCES documents(id),
            source TEXT NOT NULL,
            kind TEXT NOT NULL,             -- new, changed, removed
            title TEXT NOT NULL,
            url TEXT NOT NULL,
            date TEXT,
            fields TEXT NOT NULL,           -- JSON list of changed field names
            diff TEXT NOT NULL,
            detected_at TEXT NOT NULL,
            baseline INTEGER NOT NULL,      -- 1: first crawl of its listing, not alerted
            digest_id INTEGER REFERENCES digests(id)  -- NULL: not yet in a digest
        );
        CREATE INDEX changes_detected ON changes(detected_at);
        CREATE INDEX changes_document ON changes(document_id, id);
        CREATE INDEX changes_pending ON changes(digest_id) WHERE digest_id IS NULL;
        """,
    )


@migrations()
def m002_document_content(db: sqlite_utils.Database) -> None:
    """What linked documents (PDFs, HTML pages) say, and the state of fetching them."""
    _execute_script(
        db,
        """
        ALTER TABLE documents ADD COLUMN document_content TEXT;  -- JSON: text, extracted fields
        ALTER TABLE documents ADD COLUMN fetch_url TEXT;         -- the linked document
        ALTER TABLE documents ADD COLUMN fetch_status TEXT;      -- NULL, ok, unparsable, failed
        ALTER TABLE documents ADD COLUMN fetch_reason TEXT;      -- why unparsable or failed
        ALTER TABLE documents ADD COLUMN fetch_etag TEXT;
        ALTER TABLE documents ADD COLUMN fetch_last_modified TEXT;
        ALTER TABLE documents ADD COLUMN fetch_listing_hash TEXT;  -- listing state when fetched
        ALTER TABLE documents ADD COLUMN fetched_at TEXT;
        ALTER TABLE documents ADD COLUMN fetch_attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE versions ADD COLUMN document_content TEXT;
        """,
    )


@migrations()
def m003_tags(db: sqlite_utils.Database) -> None:
    """Tags per document version (with the taxonomy version that made them), current tags."""
    _execute_script(
        db,
        """
        CREATE TABLE tags (
            version_id INTEGER NOT NULL REFERENCES versions(id),
            document_id TEXT NOT NULL REFERENCES documents(id),
            taxonomy_version TEXT NOT NULL,
            kind TEXT NOT NULL,             -- functions, products, entity_types
            tag TEXT NOT NULL,
            evidence TEXT NOT NULL,         -- JSON list: rule, where, weight
            PRIMARY KEY (version_id, kind, tag)
        );
        CREATE INDEX tags_document ON tags(document_id);
        CREATE INDEX tags_tag ON tags(kind, tag);
        ALTER TABLE documents ADD COLUMN functions TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE documents ADD COLUMN products TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE documents ADD COLUMN entity_types TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE documents ADD COLUMN taxonomy_version TEXT;
        CREATE TABLE tag_changes (
            id INTEGER PRIMARY KEY,
            document_id TEXT NOT NULL REFERENCES documents(id),
            changed_at TEXT NOT NULL,
            taxonomy_from TEXT,
            taxonomy_to TEXT NOT NULL,
            added TEXT NOT NULL,            -- JSON: {kind: [tags]}
            removed TEXT NOT NULL
        );
        """,
    )


@migrations()
def m004_change_significance(db: sqlite_utils.Database) -> None:
    """Substantive or cosmetic, and why, for each change event."""
    _execute_script(
        db,
        """
        ALTER TABLE changes ADD COLUMN significance TEXT NOT NULL DEFAULT 'substantive';
        ALTER TABLE changes ADD COLUMN significance_reason TEXT NOT NULL DEFAULT '';
        """,
    )


@migrations()
def m005_search_and_views(db: sqlite_utils.Database) -> None:
    """Full-text search over titles and texts, and the views analysts start from."""
    _execute_script(
        db,
        """
        CREATE VIRTUAL TABLE documents_fts USING fts5(
            document_id UNINDEXED, title, body, tokenize = 'unicode61 remove_diacritics 2'
        );
        INSERT INTO documents_fts (rowid, document_id, title, body)
            SELECT rowid, id, title,
                   text || ' ' || coalesce(json_extract(document_content, '$.text'), '')
            FROM documents;
        CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN
            INSERT INTO documents_fts (rowid, document_id, title, body) VALUES (
                new.rowid, new.id, new.title,
                new.text || ' ' || coalesce(json_extract(new.document_content, '$.text'), ''));
        END;
        CREATE TRIGGER documents_fts_update AFTER UPDATE OF title, text, document_content
        ON documents BEGIN
            DELETE FROM documents_fts WHERE rowid = old.rowid;
            INSERT INTO documents_fts (rowid, document_id, title, body) VALUES (
                new.rowid, new.id, new.title,
                new.text || ' ' || coalesce(json_extract(new.document_content, '$.text'), ''));
        END;
        CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN
            DELETE FROM documents_fts WHERE rowid = old.rowid;
        END;
        -- Every change event, newest first, with its document's current tags.
        CREATE VIEW latest_changes AS
            SELECT c.id, c.detected_at, c.kind, c.significance, c.significance_reason,
                   c.source, c.document_id, c.title, c.url, c.date, c.fields, c.baseline,
                   d.functions, d.products, d.entity_types
            FROM changes c JOIN documents d ON d.id = c.document_id
            ORDER BY c.id DESC;
        -- One row per dated entry in a document's life: its versions and its change events.
        CREATE VIEW document_timeline AS
            SELECT document_id, fetched_at AS at, 'version' AS entry, title,
                   content_hash AS detail
            FROM versions
            UNION ALL
            SELECT document_id, detected_at, 'change: ' || kind, title, fields FROM changes
            ORDER BY document_id, at;
        -- The current tags of each document, one row per tag.
        CREATE VIEW document_tags AS
            SELECT d.id AS document_id, 'functions' AS kind, t.value AS tag
                FROM documents d, json_each(d.functions) t
            UNION ALL
            SELECT d.id, 'products', t.value FROM documents d, json_each(d.products) t
            UNION ALL
            SELECT d.id, 'entity_types', t.value FROM documents d, json_each(d.entity_types) t;
        """,
    )


@migrations()
def m006_links(db: sqlite_utils.Database) -> None:
    """What each document refers to: rules (SPM modules, circular references) and BRDR ids.
    Documents sharing a key are linked; `hkma-tracker rule KEY` builds its timeline."""
    _execute_script(
        db,
        """
        CREATE TABLE links (
            document_id TEXT NOT NULL REFERENCES documents(id),
            key TEXT NOT NULL,        -- spm:IC-6, ref:B1/15C, brdr:20250428-3
            kind TEXT NOT NULL,       -- is, mentions, supersedes, superseded-by, related
            evidence TEXT NOT NULL,   -- where the link was read
            PRIMARY KEY (document_id, key, kind)
        );
        CREATE INDEX links_key ON links(key);
        """,
    )


@migrations()
def m007_outbox(db: sqlite_utils.Database) -> None:
    """The outbox: changes queued per subscriber, and messages (digests, operator alerts) kept
    as sent, so a retry is the identical message. Replaces `digests` / `changes.digest_id`,
    which stay for the history written before it."""
    _execute_script(
        db,
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,             -- digest, source-broken, source-recovered, test
            subscriber TEXT NOT NULL,       -- a subscriber's name, or "operator"
            channel TEXT NOT NULL,          -- smtp, file, webhook
            created_at TEXT NOT NULL,
            message_id TEXT NOT NULL,       -- the Message-ID header, kept across retries
            subject TEXT NOT NULL,
            recipients TEXT NOT NULL,       -- JSON list (emails, or the webhook URL)
            eml BLOB NOT NULL,              -- the whole message as first built
            payload TEXT NOT NULL,          -- JSON for webhooks
            status TEXT NOT NULL,           -- pending, sent
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt_at TEXT,
            sent_at TEXT
        );
        CREATE INDEX messages_pending ON messages(status, subscriber);
        CREATE TABLE outbox_items (
            change_id INTEGER NOT NULL REFERENCES changes(id),
            subscriber TEXT NOT NULL,
            queued_at TEXT NOT NULL,
            message INTEGER REFERENCES messages(id),  -- NULL: not yet in a message
            PRIMARY KEY (change_id, subscriber)
        );
        CREATE INDEX outbox_unsent ON outbox_items(subscriber) WHERE message IS NULL;
        """,
    )


@migrations()
def m008_full_sweeps(db: sqlite_utils.Database) -> None:
    """When each listing was last read whole (a full sweep), and how many items that gave: the
    baseline an incremental source needs, and what a later full sweep's size is judged by.
    Feeds and pages are always read whole; for them the last healthy run was a full read."""
    _execute_script(
        db,
        """
        ALTER TABLE listings ADD COLUMN last_full_at TEXT;        -- last healthy full read
        ALTER TABLE listings ADD COLUMN last_full_items INTEGER;
        ALTER TABLE source_runs ADD COLUMN sweep TEXT;            -- full, incremental; NULL: n/a
        UPDATE listings SET last_full_at = last_healthy_at, last_full_items = last_healthy_items
            WHERE source NOT IN ('brdr', 'press_releases');
        """,
    )


@migrations()
def m009_unfinished_runs(db: sqlite_utils.Database) -> None:
    """What a run left for the next one (the deadline came, a helper died), in words."""
    _execute_script(db, "ALTER TABLE runs ADD COLUMN unfinished TEXT;")


@migrations()
def m010_delivery_failures(db: sqlite_utils.Database) -> None:
    """When a message's failures began, and whether one of them may have delivered it after
    all (then it is only ever resent as it is). `status` gains 'replaced': a digest surely never
    accepted, rebuilt with the changes that came after it."""
    _execute_script(
        db,
        """
        ALTER TABLE messages ADD COLUMN first_failed_at TEXT;
        ALTER TABLE messages ADD COLUMN maybe_delivered INTEGER NOT NULL DEFAULT 0;
        """,
    )


@migrations()
def m011_drop_digests(db: sqlite_utils.Database) -> None:
    """The `digests` table and `changes.digest_id`, dead since the outbox (m007) records what
    went into which message."""
    db.execute("DROP INDEX IF EXISTS changes_pending")
    db.table("changes").transform(drop={"digest_id"}, drop_foreign_keys=["digest_id"])
    db.execute("DROP TABLE digests")


@migrations()
def m012_structured_changes(db: sqlite_utils.Database) -> None:
    """What changed in each field, as data (`changes.changed`, JSON): digests and analysts read
    it instead of the diff text. Events recorded before keep the names of their fields only
    (`[{"field": …}]`); their `diff` text stays for reading."""
    _execute_script(
        db,
        """
        ALTER TABLE changes ADD COLUMN changed TEXT NOT NULL DEFAULT '[]';
        UPDATE changes SET changed = (
            SELECT json_group_array(json_object('field', f.value)) FROM json_each(changes.fields) f
        ) WHERE json_array_length(fields) > 0;
        DROP VIEW latest_changes;
        -- Every change event, newest first, with what changed and its document's current tags.
        CREATE VIEW latest_changes AS
            SELECT c.id, c.detected_at, c.kind, c.significance, c.significance_reason,
                   c.source, c.document_id, c.title, c.url, c.date, c.fields, c.changed,
                   c.baseline, d.functions, d.products, d.entity_types
            FROM changes c JOIN documents d ON d.id = c.document_id
            ORDER BY c.id DESC;
        """,
    )


@migrations()
def m013_narrow_rows(db: sqlite_utils.Database) -> None:
    """Texts apart from the rows that are read on every run, stored once.

    `texts` holds each distinct (text, document content) pair once; documents and versions
    point at theirs (`text_id`), so their rows stay small and an unchanged version shares its
    text. The search index reads titles and texts where they are (external content) instead of
    keeping a copy, and indexes Chinese as character pairs. `documents_full` and
    `versions_full` show the rows with their texts, as the tables had them. Documents gain
    `listing_hash` (a crawl compares it without reading text); tag evidence is kept for
    current versions only (tag names for all); runs' changes and documents' URLs get indexes.
    """
    from storage.records import Snapshot, text_key
    from storage.search import cjk_terms

    db.conn.create_function("text_key", 2, text_key, deterministic=True)
    db.conn.create_function("cjk_terms", 2, cjk_terms, deterministic=True)
    _execute_script(
        db,
        """
        DROP TRIGGER documents_fts_insert;
        DROP TRIGGER documents_fts_update;
        DROP TRIGGER documents_fts_delete;
        DROP TABLE documents_fts;
        DROP VIEW latest_changes;
        DROP VIEW document_timeline;
        DROP VIEW document_tags;
        CREATE TABLE texts (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,      -- of text and document_content (records.text_key)
            text TEXT NOT NULL,             -- what the listing says of the document
            document_content TEXT,          -- JSON: the linked document's text, extracted fields
            cjk TEXT                        -- their Chinese as overlapping character pairs
        );
        INSERT OR IGNORE INTO texts (hash, text, document_content, cjk)
            SELECT text_key(text, document_content), text, document_content,
                   cjk_terms(text, document_content)
            FROM versions ORDER BY id;
        INSERT OR IGNORE INTO texts (hash, text, document_content, cjk)
            SELECT text_key(text, document_content), text, document_content,
                   cjk_terms(text, document_content)
            FROM documents;

        CREATE TABLE documents_new (
            id TEXT PRIMARY KEY,            -- "<source>:<key>", see README
            source TEXT NOT NULL,
            listing TEXT NOT NULL,          -- the feed, page or listing it was last seen in
            status TEXT NOT NULL,           -- active, removed
            content_hash TEXT NOT NULL,     -- of all that is tracked: when it moves, a version
            listing_hash TEXT,              -- of what its listing says: a crawl compares this
            title TEXT NOT NULL,
            url TEXT NOT NULL,
            date TEXT,                      -- Hong Kong date, YYYY-MM-DD
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            last_changed_at TEXT NOT NULL,
            removed_at TEXT,
            functions TEXT NOT NULL DEFAULT '[]',      -- JSON lists: the current tags
            products TEXT NOT NULL DEFAULT '[]',
            entity_types TEXT NOT NULL DEFAULT '[]',
            taxonomy_version TEXT,
            fetch_url TEXT,                 -- the linked document
            fetch_status TEXT,              -- NULL, ok, unparsable, failed, not-fetchable
            fetch_reason TEXT,              -- why unparsable or failed
            fetch_etag TEXT,
            fetch_last_modified TEXT,
            fetch_listing_hash TEXT,        -- listing state when fetched
            fetched_at TEXT,
            fetch_attempts INTEGER NOT NULL DEFAULT 0,
            extra TEXT NOT NULL,            -- JSON object: the listing's other details
            cjk_title TEXT,                 -- the title's Chinese as character pairs (search)
            text_id INTEGER NOT NULL REFERENCES texts(id)  -- its text and document content
        );
        INSERT INTO documents_new
            SELECT id, source, listing, status, content_hash, NULL, title, url, date,
                   first_seen_at, last_seen_at, last_changed_at, removed_at, functions,
                   products, entity_types, taxonomy_version, fetch_url, fetch_status,
                   fetch_reason, fetch_etag, fetch_last_modified, fetch_listing_hash,
                   fetched_at, fetch_attempts, extra, cjk_terms(title, NULL),
                   (SELECT t.id FROM texts t WHERE t.hash = text_key(d.text, d.document_content))
            FROM documents d;
        DROP TABLE documents;
        ALTER TABLE documents_new RENAME TO documents;
        CREATE INDEX documents_listing ON documents(source, listing, status);
        CREATE INDEX documents_url ON documents(url);

        CREATE TABLE versions_new (
            id INTEGER PRIMARY KEY,
            document_id TEXT NOT NULL REFERENCES documents(id),
            run_id INTEGER NOT NULL REFERENCES runs(id),
            fetched_at TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            title TEXT NOT NULL,
            url TEXT NOT NULL,
            date TEXT,
            extra TEXT NOT NULL,            -- JSON object
            text_id INTEGER NOT NULL REFERENCES texts(id)
        );
        INSERT INTO versions_new
            SELECT id, document_id, run_id, fetched_at, content_hash, title, url, date, extra,
                   (SELECT t.id FROM texts t WHERE t.hash = text_key(v.text, v.document_content))
            FROM versions v;
        DROP TABLE versions;
        ALTER TABLE versions_new RENAME TO versions;
        CREATE INDEX versions_document ON versions(document_id, id);
        CREATE INDEX changes_run ON changes(run_id);
        UPDATE tags SET evidence = '[]'
            WHERE version_id NOT IN (SELECT max(id) FROM versions GROUP BY document_id);
        """,
    )
    hashes = [
        (Snapshot.from_row(row).listing_hash(), row["id"])
        for row in db.query(
            "SELECT d.id, d.title, d.url, d.date, t.text, d.extra, NULL AS document_content "
            "FROM documents d JOIN texts t ON t.id = d.text_id"
        )
    ]
    db.conn.executemany("UPDATE documents SET listing_hash = ? WHERE id = ?", hashes)
    _execute_script(
        db,
        """
        -- Rows with their texts, as documents and versions had them before texts moved apart.
        CREATE VIEW documents_full AS
            SELECT d.*, t.text, t.document_content
            FROM documents d JOIN texts t ON t.id = d.text_id;
        CREATE VIEW versions_full AS
            SELECT v.*, t.text, t.document_content
            FROM versions v JOIN texts t ON t.id = v.text_id;
        -- What is searched of a text: the listing's text and the linked document's.
        CREATE VIEW text_bodies AS
            SELECT id, text || ' ' || coalesce(json_extract(document_content, '$.text'), '')
                   AS body, cjk
            FROM texts;
        -- What the search index reads (external content): titles and texts where they are.
        CREATE VIEW document_search AS
            SELECT d.rowid AS doc_rowid, d.id AS document_id, d.title, b.body,
                   trim(coalesce(d.cjk_title, '') || ' ' || coalesce(b.cjk, '')) AS cjk
            FROM documents d JOIN text_bodies b ON b.id = d.text_id;
        CREATE VIRTUAL TABLE documents_fts USING fts5(
            document_id UNINDEXED, title, body, cjk,
            content = 'document_search', content_rowid = 'doc_rowid',
            tokenize = 'porter unicode61 remove_diacritics 2'  -- stablecoins finds stablecoin
        );
        CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN
            INSERT INTO documents_fts (rowid, document_id, title, body, cjk)
                SELECT doc_rowid, document_id, title, body, cjk FROM document_search
                WHERE doc_rowid = new.rowid;
        END;
        CREATE TRIGGER documents_fts_update AFTER UPDATE OF title, cjk_title, text_id
        ON documents BEGIN
            INSERT INTO documents_fts (documents_fts, rowid, document_id, title, body, cjk)
                SELECT 'delete', old.rowid, old.id, old.title, body,
                       trim(coalesce(old.cjk_title, '') || ' ' || coalesce(cjk, ''))
                FROM text_bodies WHERE id = old.text_id;
            INSERT INTO documents_fts (rowid, document_id, title, body, cjk)
                SELECT doc_rowid, document_id, title, body, cjk FROM document_search
                WHERE doc_rowid = new.rowid;
        END;
        CREATE TRIGGER documents_fts_delete AFTER DELETE ON documents BEGIN
            INSERT INTO documents_fts (documents_fts, rowid, document_id, title, body, cjk)
                SELECT 'delete', old.rowid, old.id, old.title, body,
                       trim(coalesce(old.cjk_title, '') || ' ' || coalesce(cjk, ''))
                FROM text_bodies WHERE id = old.text_id;
        END;
        INSERT INTO documents_fts (documents_fts) VALUES ('rebuild');
        -- The views m005 and m012 made, as they were.
        CREATE VIEW latest_changes AS
            SELECT c.id, c.detected_at, c.kind, c.significance, c.significance_reason,
                   c.source, c.document_id, c.title, c.url, c.date, c.fields, c.changed,
                   c.baseline, d.functions, d.products, d.entity_types
            FROM changes c JOIN documents d ON d.id = c.document_id
            ORDER BY c.id DESC;
        CREATE VIEW document_timeline AS
            SELECT document_id, fetched_at AS at, 'version' AS entry, title,
                   content_hash AS detail
            FROM versions
            UNION ALL
            SELECT document_id, detected_at, 'change: ' || kind, title, fields FROM changes
            ORDER BY document_id, at;
        CREATE VIEW document_tags AS
            SELECT d.id AS document_id, 'functions' AS kind, t.value AS tag
                FROM documents d, json_each(d.functions) t
            UNION ALL
            SELECT d.id, 'products', t.value FROM documents d, json_each(d.products) t
            UNION ALL
            SELECT d.id, 'entity_types', t.value FROM documents d, json_each(d.entity_types) t;
        """,
    )


@migrations()
def m014_retags(db: sqlite_utils.Database) -> None:
    """How far a `retag` got: it commits in chunks, and one interrupted resumes from here."""
    _execute_script(
        db,
        """
        CREATE TABLE retags (
            taxonomy_version TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            done_through INTEGER NOT NULL,  -- versions up to this id are tagged
            finished_at TEXT                -- NULL: interrupted, resumes from done_through
        );
        """,
    )


# Documents whose linked document may be due for a fetch (never fetched, the link or the
# listing moved, the last fetch failed or gave no text), and those whose validators will need
# a re-check: what `fetch_candidates` reads, so that settled documents cost it nothing.
FETCH_DUE = (
    "status = 'active' AND json_extract(extra, '$.document_url') IS NOT NULL AND ("
    "fetch_status IS NULL OR fetch_url IS NOT json_extract(extra, '$.document_url') "
    "OR fetch_status IN ('failed', 'unparsable') "
    "OR (fetch_status = 'ok' AND fetch_listing_hash IS NOT listing_hash))"
)
LINKED = "status = 'active' AND json_extract(extra, '$.document_url') IS NOT NULL"
FETCH_REVALIDATED = (
    "status = 'active' AND fetch_status = 'ok' "
    "AND (fetch_etag IS NOT NULL OR fetch_last_modified IS NOT NULL)"
)


@migrations()
def m015_fetch_indexes(db: sqlite_utils.Database) -> None:
    """Partial indexes of the documents that may be due for a fetch: choosing this run's
    fetches reads those, not every document that ever linked one; and of linked documents by
    fetch state, which `status` counts."""
    db.execute(f"CREATE INDEX documents_fetch_due ON documents(source, id) WHERE {FETCH_DUE}")
    db.execute(
        "CREATE INDEX documents_fetch_revalidated ON documents(source, fetched_at) "
        f"WHERE {FETCH_REVALIDATED}"
    )
    # `status` counts linked documents by fetch state from this index alone.
    db.execute(f"CREATE INDEX documents_linked ON documents(fetch_status) WHERE {LINKED}")


# A review's states; `open` until someone says otherwise (reviews.state's CHECK).
REVIEW_STATES = ("open", "in review", "actioned", "not applicable")


# The dates a version states, as rows of `version_deadlines`: effective dates read from its
# document's text (with the sentence), BRDR's consultation open and close dates, and close dates
# from the text where the register gives none. `{version}` (a condition) chooses the versions.
_VERSION_DEADLINES = """
    SELECT v.id, v.document_id, 'takes effect', e.key, e.value ->> '$.date',
           e.value ->> '$.sentence'
    FROM versions v JOIN texts t ON t.id = v.text_id,
         json_each(t.document_content, '$.effective_dates') e
    WHERE {version} AND t.document_content IS NOT NULL
    UNION ALL
    SELECT v.id, v.document_id, 'consultation closes', 0, v.extra ->> '$.consultation.closes',
           coalesce(v.extra ->> '$.consultation.stated_in', 'BRDR register') || ' (consultation ' ||
               coalesce(v.extra ->> '$.consultation.status', '?') || ')'
    FROM versions v WHERE {version} AND v.extra ->> '$.consultation.closes' IS NOT NULL
    UNION ALL
    SELECT v.id, v.document_id, 'consultation opens', 0, v.extra ->> '$.consultation.opens',
           coalesce(v.extra ->> '$.consultation.stated_in', 'BRDR register') || ' (consultation ' ||
               coalesce(v.extra ->> '$.consultation.status', '?') || ')'
    FROM versions v WHERE {version} AND v.extra ->> '$.consultation.opens' IS NOT NULL
    UNION ALL
    SELECT v.id, v.document_id, 'consultation closes', e.key, e.value ->> '$.date',
           e.value ->> '$.sentence'
    FROM versions v JOIN texts t ON t.id = v.text_id,
         json_each(t.document_content, '$.consultation_closes') e
    WHERE {version} AND t.document_content IS NOT NULL
      AND v.extra ->> '$.consultation.closes' IS NULL
"""


@migrations()
def m016_deadlines_and_reviews(db: sqlite_utils.Database) -> None:
    """What compliance teams do after a digest: `version_deadlines` (the dates each version
    states, written with the version, so that reading them costs what states dates, not what
    is stored), `deadlines` (those of each document as it stands now), `reviews` (an
    append-only log of who assessed which change, and what was decided) and `review_status`
    (each substantive change with its latest review)."""
    columns = "(version_id, document_id, kind, ordinal, date, evidence)"
    script = """
        CREATE TABLE version_deadlines (
            version_id INTEGER NOT NULL REFERENCES versions(id),
            document_id TEXT NOT NULL,
            kind TEXT NOT NULL,             -- takes effect, consultation opens, ... closes
            ordinal INTEGER NOT NULL,       -- which of the document's dates of that kind
            date TEXT,                      -- YYYY-MM-DD
            evidence TEXT,                  -- the sentence, or the register field
            PRIMARY KEY (version_id, kind, ordinal)
        );
        CREATE INDEX version_deadlines_document ON version_deadlines(document_id, version_id);
        INSERT INTO version_deadlines COLUMNS EVERY_VERSION;
        CREATE TRIGGER version_deadlines_insert AFTER INSERT ON versions BEGIN
            INSERT INTO version_deadlines COLUMNS NEW_VERSION;
        END;

        -- Each document's dates as it stands now (its latest version): a moved date moves
        -- here, a withdrawn one goes. `standing`: current, superseded or withdrawn.
        CREATE VIEW deadlines AS
            SELECT d.id AS document_id, d.source, d.title, d.url, vd.kind, vd.ordinal,
                   vd.date, vd.evidence, d.status,
                   coalesce(d.extra ->> '$.status', 'current') AS standing,
                   d.functions, d.products
            FROM version_deadlines vd JOIN documents d ON d.id = vd.document_id
            WHERE vd.version_id = (
                SELECT max(v.id) FROM versions v WHERE v.document_id = vd.document_id
            );

        -- A subscriber's changes in order, for what a digest says is still open.
        CREATE INDEX outbox_subscriber ON outbox_items(subscriber, change_id);

        -- Who assessed which change and what was decided: rows are added, never changed or
        -- deleted (the log is itself evidence). A change's review is its newest row.
        CREATE TABLE reviews (
            id INTEGER PRIMARY KEY,
            change_id INTEGER NOT NULL REFERENCES changes(id),
            state TEXT NOT NULL  -- REVIEW_STATES
                CHECK (state IN ('open', 'in review', 'actioned', 'not applicable')),
            owner TEXT,
            note TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX reviews_change ON reviews(change_id, id);
        CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews BEGIN
            SELECT RAISE(ABORT, 'reviews are append-only: add a review instead');
        END;
        CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews BEGIN
            SELECT RAISE(ABORT, 'reviews are append-only: add a review instead');
        END;

        -- Every substantive change (not the baseline, not cosmetic) with its review: open
        -- until a review says otherwise.
        CREATE VIEW review_status AS
            SELECT c.id AS change_id, c.detected_at, c.kind, c.source, c.document_id,
                   c.title, c.url, coalesce(r.state, 'open') AS state, r.owner, r.note,
                   r.at AS reviewed_at, d.functions, d.products, d.entity_types
            FROM changes c JOIN documents d ON d.id = c.document_id
            LEFT JOIN reviews r ON r.id = (
                SELECT max(id) FROM reviews WHERE change_id = c.id
            )
            WHERE c.baseline = 0 AND c.significance = 'substantive';
        """
    for word, sql in (
        ("COLUMNS", columns),
        ("EVERY_VERSION", _VERSION_DEADLINES.replace("{version}", "1")),
        ("NEW_VERSION", _VERSION_DEADLINES.replace("{version}", "v.id = new.id")),
    ):
        script = script.replace(word, sql)
    _execute_script(db, script)


@migrations()
def m017_routes_and_tag_corrections(db: sqlite_utils.Database) -> None:
    """Why each change went to each subscriber (`outbox_items.route`), and the tags people
    set: `tag_corrections`, an append-only log of tags added to or removed from a document by
    an officer, which every later tagging of the document (a new version, `retag`) applies;
    `documents.corrections` holds those in force ({kind: {tag: {action, by, at, note}}})."""
    _execute_script(
        db,
        """
        ALTER TABLE outbox_items ADD COLUMN route TEXT;  -- JSON: via, and what matched
        CREATE TABLE tag_corrections (
            id INTEGER PRIMARY KEY,
            document_id TEXT NOT NULL REFERENCES documents(id),
            kind TEXT NOT NULL,             -- functions, products, entity_types
            tag TEXT NOT NULL,
            action TEXT NOT NULL CHECK (action IN ('add', 'remove')),
            by TEXT NOT NULL,
            note TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX tag_corrections_document ON tag_corrections(document_id, id);
        CREATE TRIGGER tag_corrections_no_update BEFORE UPDATE ON tag_corrections BEGIN
            SELECT RAISE(ABORT, 'tag corrections are append-only: add a correction instead');
        END;
        CREATE TRIGGER tag_corrections_no_delete BEFORE DELETE ON tag_corrections BEGIN
            SELECT RAISE(ABORT, 'tag corrections are append-only: add a correction instead');
        END;
        ALTER TABLE documents ADD COLUMN corrections TEXT NOT NULL DEFAULT '{}';
        DROP VIEW document_tags;
        -- One row per tag in force; `set_by`: the officer who added it (NULL: the tagger's).
        CREATE VIEW document_tags AS
            SELECT d.id AS document_id, k.kind, t.value AS tag,
                   json_extract(d.corrections, '$.' || k.kind || '."' || t.value || '".by')
                       AS set_by
            FROM documents d
            JOIN (SELECT 'functions' AS kind UNION ALL SELECT 'products'
                  UNION ALL SELECT 'entity_types') k
            JOIN json_each(CASE k.kind WHEN 'functions' THEN d.functions
                           WHEN 'products' THEN d.products ELSE d.entity_types END) t;
        """,
    )


@migrations()
def m018_rule_records(db: sqlite_utils.Database) -> None:
    """Rule records: one per rule or initiative, every document in exactly one
    (`record_members`, with why it joined), one update per publication, related records, and
    the officers' corrections (`record_corrections`, append-only, applied at every
    recomputation). Filled by the first run or `retag` after the migration."""
    _execute_script(
        db,
        """
        CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,          -- its first publication's, or an officer's
            started_by TEXT NOT NULL,     -- the document that started it
            first_date TEXT,
            last_date TEXT,               -- its latest publication's date
            updates INTEGER NOT NULL,     -- publications (one publication, one update)
            computed_at TEXT NOT NULL
        );
        CREATE TABLE record_members (
            document_id TEXT PRIMARY KEY REFERENCES documents(id),
            record_id INTEGER NOT NULL REFERENCES records(id),
            publication TEXT NOT NULL,    -- documents of one publication are one update
            evidence TEXT NOT NULL,       -- why it is in this record
            strength REAL NOT NULL
        );
        CREATE INDEX record_members_record ON record_members(record_id);
        CREATE TABLE record_links (       -- related records: a weaker match than a join
            record_id INTEGER NOT NULL REFERENCES records(id),
            other_id INTEGER NOT NULL REFERENCES records(id),
            evidence TEXT NOT NULL,
            strength REAL NOT NULL,
            PRIMARY KEY (record_id, other_id)
        );
        CREATE TABLE record_corrections (
            id INTEGER PRIMARY KEY,
            action TEXT NOT NULL CHECK (action IN ('join', 'split', 'retitle')),
            document_id TEXT NOT NULL REFERENCES documents(id),
            -- join: the document that started the record joined; retitle: the new title
            target TEXT,
            by TEXT NOT NULL,
            note TEXT,
            at TEXT NOT NULL
        );
        CREATE TRIGGER record_corrections_no_update BEFORE UPDATE ON record_corrections BEGIN
            SELECT RAISE(ABORT, 'record corrections are append-only: add a correction instead');
        END;
        CREATE TRIGGER record_corrections_no_delete BEFORE DELETE ON record_corrections BEGIN
            SELECT RAISE(ABORT, 'record corrections are append-only: add a correction instead');
        END;
        -- One row per update: a publication of a record, however many documents carry it.
        CREATE VIEW record_updates AS
            SELECT m.record_id, m.publication, min(d.date) AS date,
                   min(d.title) AS title, group_concat(DISTINCT d.source) AS sources,
                   group_concat(m.document_id, ' ') AS documents
            FROM record_members m JOIN documents d ON d.id = m.document_id
            GROUP BY m.record_id, m.publication;
        """,
    )


@migrations()
def m019_regulators(db: sqlite_utils.Database) -> None:
    """Which regulator published each document (HKMA, SFC, IA): a column of documents and
    changes, HKMA for everything tracked before other regulators were, and in the views
    analysts read (`record_updates` names the regulators of an update's documents). A
    register's consultation dates name where they are stated (`consultation.stated_in`: the
    SFC's consultation record), the BRDR register where a listing does not say."""
    trigger = (
        "CREATE TRIGGER version_deadlines_insert AFTER INSERT ON versions BEGIN "
        "INSERT INTO version_deadlines (version_id, document_id, kind, ordinal, date, evidence) "
        + _VERSION_DEADLINES.replace("{version}", "v.id = new.id")
        + "; END;"
    )
    _execute_script(db, "DROP TRIGGER version_deadlines_insert;\n" + trigger)
    _execute_script(
        db,
        """
        ALTER TABLE documents ADD COLUMN regulator TEXT NOT NULL DEFAULT 'HKMA';
        ALTER TABLE changes ADD COLUMN regulator TEXT NOT NULL DEFAULT 'HKMA';
        DROP VIEW latest_changes;
        CREATE VIEW latest_changes AS
            SELECT c.id, c.detected_at, c.regulator, c.kind, c.significance,
                   c.significance_reason, c.source, c.document_id, c.title, c.url, c.date,
                   c.fields, c.changed, c.baseline, d.functions, d.products, d.entity_types
            FROM changes c JOIN documents d ON d.id = c.document_id
            ORDER BY c.id DESC;
        DROP VIEW deadlines;
        CREATE VIEW deadlines AS
            SELECT d.id AS document_id, d.regulator, d.source, d.title, d.url, vd.kind,
                   vd.ordinal, vd.date, vd.evidence, d.status,
                   coalesce(d.extra ->> '$.status', 'current') AS standing,
                   d.functions, d.products
            FROM version_deadlines vd JOIN documents d ON d.id = vd.document_id
            WHERE vd.version_id = (
                SELECT max(v.id) FROM versions v WHERE v.document_id = vd.document_id
            );
        DROP VIEW review_status;
        CREATE VIEW review_status AS
            SELECT c.id AS change_id, c.detected_at, c.regulator, c.kind, c.source,
                   c.document_id, c.title, c.url, coalesce(r.state, 'open') AS state, r.owner,
                   r.note, r.at AS reviewed_at, d.functions, d.products, d.entity_types
            FROM changes c JOIN documents d ON d.id = c.document_id
            LEFT JOIN reviews r ON r.id = (
                SELECT max(id) FROM reviews WHERE change_id = c.id
            )
            WHERE c.baseline = 0 AND c.significance = 'substantive';
        DROP VIEW record_updates;
        CREATE VIEW record_updates AS
            SELECT m.record_id, m.publication, min(d.date) AS date,
                   min(d.title) AS title, group_concat(DISTINCT d.regulator) AS regulators,
                   group_concat(DISTINCT d.source) AS sources,
                   group_concat(m.document_id, ' ') AS documents
            FROM record_members m JOIN documents d ON d.id = m.document_id
            GROUP BY m.record_id, m.publication;
        """,
    )


def _tag_rows(row: str, table: str = "") -> str:
    """SELECT (kind, tag, document id) of every tag in the tag lists of `row` (a documents
    alias read FROM `table`, or a trigger's `new`)."""
    source = f"{table}, " if table else ""
    return " UNION ALL ".join(
        f"SELECT '{kind}', t.value, {row}.id FROM {source}json_each({row}.{kind}) t"  # noqa: S608
        for kind in ("functions", "products", "entity_types")
    )


@migrations()
def m020_tag_index(db: sqlite_utils.Database) -> None:
    """The tags in force of each document as rows (`documents.functions`, `products`,
    `entity_types` unpacked), kept by triggers whatever writes them: a filter on a tag reads
    the documents that carry it from an index instead of unpacking every document's lists.
    The analysts' view `document_tags` (same columns) reads it."""
    _execute_script(
        db,
        f"""
        CREATE TABLE tag_index (
            kind TEXT NOT NULL,             -- functions, products, entity_types
            tag TEXT NOT NULL,
            document_id TEXT NOT NULL REFERENCES documents(id),
            PRIMARY KEY (kind, tag, document_id)
        ) WITHOUT ROWID;
        CREATE INDEX tag_index_document ON tag_index(document_id);
        INSERT OR IGNORE INTO tag_index (kind, tag, document_id) {_tag_rows("d", "documents d")};
        CREATE TRIGGER tag_index_insert AFTER INSERT ON documents BEGIN
            INSERT OR IGNORE INTO tag_index (kind, tag, document_id) {_tag_rows("new")};
        END;
        CREATE TRIGGER tag_index_update
        AFTER UPDATE OF functions, products, entity_types ON documents BEGIN
            DELETE FROM tag_index WHERE document_id = old.id;
            INSERT OR IGNORE INTO tag_index (kind, tag, document_id) {_tag_rows("new")};
        END;
        DROP VIEW document_tags;
        -- One row per tag in force; `set_by`: the officer who added it (NULL: the tagger's).
        CREATE VIEW document_tags AS
            SELECT i.document_id, i.kind, i.tag,
                   json_extract(d.corrections, '$.' || i.kind || '."' || i.tag || '".by')
                       AS set_by
            FROM tag_index i JOIN documents d ON d.id = i.document_id;
        """,  # noqa: S608 - our own names only
    )


@migrations()
def m021_superseded_by_index(db: sqlite_utils.Database) -> None:
    """What a document superseded, by an index on the successor its extra names (a rule's
    timeline asks it of every document linked to the rule)."""
    db.execute(
        "CREATE INDEX documents_superseded_by "
        "ON documents(json_extract(extra, '$.superseded_by.id'))"
    )


@migrations()
def m022_baseline_index(db: sqlite_utils.Database) -> None:
    """The baseline events (a listing's first reading) by an index of their own: `changes`
    says how many it leaves out, and they are few beside the events that are news."""
    db.execute("CREATE INDEX changes_baseline ON changes(id) WHERE baseline")


@migrations()
def m023_deadline_dates_index(db: sqlite_utils.Database) -> None:
    """Deadlines by date: `deadlines` and the calendar ask for a window of days, which an
    index answers without reading every deadline ever stated."""
    db.execute("CREATE INDEX version_deadlines_date ON version_deadlines(date)")


@migrations()
def m024_records_by_date_index(db: sqlite_utils.Database) -> None:
    """Records newest update first (`records`, Datasette's records updated this week) from
    an index instead of sorting every record."""
    db.execute("CREATE INDEX records_last_date ON records(last_date, id)")


@migrations()
def m025_versions_run_index(db: sqlite_utils.Database) -> None:
    """The versions a run stored, by an index: every run stores again the links of what it
    touched, which read every version to find them (1.2 s a run at a million versions)."""
    db.execute("CREATE INDEX versions_run ON versions(run_id)")


@migrations()
def m026_links_key_document_index(db: sqlite_utils.Database) -> None:
    """How many documents carry a key, from an index in document order: a file reference on
    200,000 documents was counted by sorting them (1.2 s)."""
    db.execute("CREATE INDEX links_key_document ON links(key, document_id)")


@migrations()
def m027_document_counts(db: sqlite_utils.Database) -> None:
    """How many documents each source has in each status, kept by triggers whatever writes
    `documents`: `status` read each source's active documents by counting them (833,000 index
    entries, 0.17 s at a million versions)."""
    _execute_script(
        db,
        """
        CREATE TABLE document_counts (
            source TEXT NOT NULL,
            status TEXT NOT NULL,           -- active, removed
            documents INTEGER NOT NULL,
            PRIMARY KEY (source, status)
        ) WITHOUT ROWID;
        INSERT INTO document_counts (source, status, documents)
            SELECT source, status, count(*) FROM documents GROUP BY source, status;
        CREATE TRIGGER document_counts_insert AFTER INSERT ON documents BEGIN
            INSERT INTO document_counts (source, status, documents)
                VALUES (new.source, new.status, 1)
                ON CONFLICT (source, status) DO UPDATE SET documents = documents + 1;
        END;
        CREATE TRIGGER document_counts_update AFTER UPDATE OF source, status ON documents
        WHEN old.source IS NOT new.source OR old.status IS NOT new.status BEGIN
            UPDATE document_counts SET documents = documents - 1
                WHERE source = old.source AND status = old.status;
            INSERT INTO document_counts (source, status, documents)
                VALUES (new.source, new.status, 1)
                ON CONFLICT (source, status) DO UPDATE SET documents = documents + 1;
        END;
        CREATE TRIGGER document_counts_delete AFTER DELETE ON documents BEGIN
            UPDATE document_counts SET documents = documents - 1
                WHERE source = old.source AND status = old.status;
        END;
        """,
    )


@migrations()
def m028_documents_taxonomy_index(db: sqlite_utils.Database) -> None:
    """Which taxonomies gave the documents their current tags, from the least and greatest of
    an index: `status` says when some are not the taxonomy in force (after an upgrade, until
    `retag`) without reading every document."""
    db.execute("CREATE INDEX documents_taxonomy ON documents(taxonomy_version)")
