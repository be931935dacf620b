"""Upgrading a database written by the previous release (schema m012) in place.

The fixture `release-m012.db.gz` is the analysts' test history (tests/test_analyst.py) as the
release before texts moved apart wrote it (see fixtures/README.md). Everything it holds must
read the same after m013, and the new structure must hold."""

from __future__ import annotations

import gzip
import shutil
import sqlite3

import pytest
from conftest import FIXTURES

from storage.db import open_db
from storage.history import load_stored
from storage.records import Snapshot
from storage.search import search

OLD = FIXTURES / "release-m012.db.gz"


def rows(path, sql, params=()):
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def upgraded(tmp_path):
    path = tmp_path / "old.db"
    with gzip.open(OLD) as packed, open(path, "wb") as out:
        shutil.copyfileobj(packed, out)
    before = {
        "documents": rows(path, "SELECT id, text, document_content, status FROM documents"),
        "versions": rows(path, "SELECT id, document_id, text, document_content FROM versions"),
        "tags": rows(path, "SELECT version_id, kind, tag FROM tags"),
        "links": rows(path, "SELECT document_id, key, kind, evidence FROM links"),
        "changes": rows(path, "SELECT id, document_id, kind, changed FROM changes"),
        "found": {
            word: sorted(
                r[0]
                for r in rows(
                    path,
                    "SELECT document_id FROM documents_fts WHERE documents_fts MATCH ?",
                    [f'"{word}"'],
                )
            )
            for word in ("laundering", "faithfully", "stablecoin", "liquidity")
        },
        "size": sum(
            r[0]
            for r in rows(
                path,
                "SELECT sum(length(text) + coalesce(length(document_content), 0)) FROM documents "
                "UNION ALL SELECT sum(length(text) + coalesce(length(document_content), 0)) "
                "FROM versions",
            )
        ),
    }
    assert rows(path, "SELECT max(name) FROM _sqlite_migrations") == [("m012_structured_changes",)]
    open_db(path).close()
    return path, before


def test_every_text_reads_as_before(upgraded):
    path, before = upgraded
    assert sorted(
        rows(path, "SELECT id, text, document_content, status FROM documents_full")
    ) == sorted(before["documents"])
    assert sorted(
        rows(path, "SELECT id, document_id, text, document_content FROM versions_full")
    ) == sorted(before["versions"])
    assert sorted(rows(path, "SELECT document_id, key, kind, evidence FROM links")) == sorted(
        before["links"]
    )
    assert sorted(rows(path, "SELECT id, document_id, kind, changed FROM changes")) == sorted(
        before["changes"]
    )


def test_texts_are_stored_once_and_the_rows_are_narrow(upgraded):
    path, before = upgraded
    stored = rows(
        path, "SELECT sum(length(text) + coalesce(length(document_content), 0)) FROM texts"
    )
    # The current version's text was in documents and in versions: now once, shared.
    assert stored[0][0] < before["size"] * 0.6
    columns = [r[1] for r in rows(path, "PRAGMA table_info(documents)")]
    assert "text" not in columns and "document_content" not in columns
    assert columns[:6] == ["id", "source", "listing", "status", "content_hash", "listing_hash"]
    assert rows(path, "PRAGMA foreign_key_check") == []
    assert rows(path, "PRAGMA integrity_check") == [("ok",)]


def test_tag_names_stay_for_every_version_and_evidence_for_the_current_one(upgraded):
    path, before = upgraded
    assert sorted(rows(path, "SELECT version_id, kind, tag FROM tags")) == sorted(before["tags"])
    old_evidence = rows(
        path,
        "SELECT count(*) FROM tags WHERE evidence != '[]' AND version_id NOT IN "
        "(SELECT max(id) FROM versions GROUP BY document_id)",
    )
    assert old_evidence == [(0,)]
    current = rows(path, "SELECT count(*) FROM tags WHERE evidence != '[]'")
    assert current[0][0] > 0


def test_search_finds_what_it_found_and_the_index_is_consistent(upgraded):
    path, before = upgraded
    db = open_db(path)
    db.execute("INSERT INTO documents_fts (documents_fts) VALUES ('integrity-check')")
    for word, found in before["found"].items():
        assert sorted(h["id"] for h in search(db, word, 10_000).hits) == found, word
    assert any(before["found"].values())


def test_vacuum_after_the_upgrade_as_the_readme_says_keeps_the_index_true(upgraded):
    # The index points at documents by rowid, which SQLite only promises to keep for an
    # INTEGER PRIMARY KEY; VACUUM (which the README suggests after upgrading) must keep it.
    path, before = upgraded
    open_db(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
    db = open_db(path)
    db.execute("INSERT INTO documents_fts (documents_fts) VALUES ('integrity-check')")
    for word, found in before["found"].items():
        assert sorted(h["id"] for h in search(db, word, 10_000).hits) == found, word


def test_listing_hashes_let_a_crawl_decide_without_reading_text(upgraded):
    path, _ = upgraded
    db = open_db(path)
    for source in ("rss", "pages"):
        stored = load_stored(db, source)
        assert stored, source
        for doc in stored.values():
            full = Snapshot.from_row(
                next(db.query("SELECT * FROM documents_full WHERE id = ?", [doc.id]))
            )
            assert doc.listing_hash == full.listing_hash()
            assert "snapshot" not in doc.__dict__  # nothing read the text
            assert doc.head == full.head


def test_deadlines_stated_before_the_upgrade_are_found_after_it(upgraded):
    path, _ = upgraded
    open_db(path).close()
    stated = rows(
        path,
        "SELECT v.id, e.value ->> '$.date' FROM versions v JOIN texts t ON t.id = v.text_id, "
        "json_each(t.document_content, '$.effective_dates') e ORDER BY 1, 2",
    )
    found = rows(
        path,
        "SELECT version_id, date FROM version_deadlines WHERE kind = 'takes effect' ORDER BY 1, 2",
    )
    assert stated and found == stated
    current = rows(path, "SELECT count(*) FROM deadlines WHERE kind = 'takes effect'")[0][0]
    assert 0 < current <= len(found)


def _open(path: str) -> None:
    open_db(path).close()


def test_processes_that_open_an_old_database_at_once_migrate_it_once(tmp_path):
    import multiprocessing

    path = tmp_path / "old.db"
    with gzip.open(OLD) as packed, open(path, "wb") as out:
        shutil.copyfileobj(packed, out)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_open, args=(str(path),)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]  # none met "table already exists"
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")]
    assert len(names) == len(set(names)) and "m017_routes_and_tag_corrections" in names


def test_what_was_tracked_before_other_regulators_is_the_hkmas(upgraded):
    """Issue 25: the regulator is a field of every document and change; a history from
    before the SFC and IA sources is all HKMA's, in the tables and in the views analysts read."""
    upgraded, _ = upgraded
    assert rows(upgraded, "SELECT DISTINCT regulator FROM documents") == [("HKMA",)]
    assert rows(upgraded, "SELECT DISTINCT regulator FROM changes") == [("HKMA",)]
    for view in ("latest_changes", "deadlines", "review_status"):
        assert rows(upgraded, f"SELECT DISTINCT regulator FROM {view}") in ([("HKMA",)], [])
    assert rows(upgraded, "SELECT count(*) FROM latest_changes")[0][0] > 0
