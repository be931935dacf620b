"""The database: schema through migrations, all-or-nothing writes, read-only access."""

import json
import sqlite3

import pytest

from storage.db import DatabaseProblem, open_db, open_readonly, write_transaction
from storage.history import apply_plan, load_stored, start_run
from storage.links import rebuild_links, update_links
from storage.tags import retag
from tracker.config import HealthSettings
from tracker.detect import plan_source
from tracker.rules import links_of
from tracker.tagging import Tagger, load_taxonomy

PAGE = "https://www.hkma.gov.hk/eng/page/"


def crawl_result(titles):
    items = [
        {
            "listing": PAGE,
            "key": f"k{i}",
            "title": t,
            "url": f"https://www.hkma.gov.hk/{i}.pdf",
            "date": "2025-01-01",
            "text": "",
            "extra": {},
        }
        for i, t in enumerate(titles)
    ]
    return {
        "finish_reason": "finished",
        "items": items,
        "outcomes": [
            {
                "listing": PAGE,
                "ok": True,
                "reason": "",
                "items": len(items),
                "removals_allowed": True,
            }
        ],
    }


def ingest(db, titles):
    result = crawl_result(titles)
    plan = plan_source("pages", result, [PAGE], load_stored(db, "pages"), {}, HealthSettings())
    run_id = start_run(db, "test")
    with write_transaction(db):
        apply_plan(db, plan, run_id, result, Tagger(load_taxonomy()))
    return plan


def test_migrations_create_the_schema_once_and_set_wal(tmp_path):
    path = tmp_path / "h.db"
    open_db(path).close()
    db = open_db(path)  # a second open applies nothing again
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r["name"] for r in db.query("SELECT name FROM _sqlite_migrations")] == [
        "m001_initial",
        "m002_document_content",
        "m003_tags",
        "m004_change_significance",
        "m005_search_and_views",
        "m006_links",
        "m007_outbox",
        "m008_full_sweeps",
        "m009_unfinished_runs",
        "m010_delivery_failures",
        "m011_drop_digests",
        "m012_structured_changes",
        "m013_narrow_rows",
        "m014_retags",
        "m015_fetch_indexes",
        "m016_deadlines_and_reviews",
        "m017_routes_and_tag_corrections",
        "m018_rule_records",
        "m019_regulators",
        "m020_tag_index",
        "m021_superseded_by_index",
        "m022_baseline_index",
        "m023_deadline_dates_index",
        "m024_records_by_date_index",
        "m025_versions_run_index",
        "m026_links_key_document_index",
        "m027_document_counts",
        "m028_documents_taxonomy_index",
    ]
    assert {
        "runs",
        "source_runs",
        "listings",
        "documents",
        "versions",
        "changes",
    } <= set(db.table_names())


def test_a_write_that_fails_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    db = open_db(tmp_path / "h.db")
    ingest(db, ["A", "B"])
    before = list(db.query("SELECT id, title FROM documents ORDER BY id"))

    import storage.history as history

    def crash(*args, **kwargs):
        raise RuntimeError("killed while recording listings")

    monkeypatch.setattr(history, "_record_listings", crash)
    with pytest.raises(RuntimeError):
        ingest(db, ["A (revised)", "B", "C"])
    assert list(db.query("SELECT id, title FROM documents ORDER BY id")) == before
    assert db.execute("SELECT count(*) FROM versions").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM changes").fetchone()[0] == 2

    monkeypatch.undo()  # the next run picks up what the failed one missed
    plan = ingest(db, ["A (revised)", "B", "C"])
    assert sorted((e.kind, e.document_id) for e in plan.events) == [
        ("changed", "pages:k0"),
        ("new", "pages:k2"),
    ]


def test_readers_can_open_read_only_while_a_run_writes(tmp_path):
    path = tmp_path / "h.db"
    db = open_db(path)
    ingest(db, ["A"])
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE documents SET title = 'uncommitted'")
    reader = open_readonly(path)
    assert [r["title"] for r in reader.query("SELECT title FROM documents")] == ["A"]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("DELETE FROM documents")
    db.rollback()


def test_read_only_open_never_creates_a_database(tmp_path):
    with pytest.raises(DatabaseProblem, match="does not exist"):
        open_readonly(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_m008_takes_the_last_healthy_run_of_feeds_and_pages_as_their_last_full_read(tmp_path):
    path = tmp_path / "h.db"
    db = open_db(path)
    # Back to the schema before m008, with listings as m007 knew them.
    db.execute("ALTER TABLE listings DROP COLUMN last_full_at")
    db.execute("ALTER TABLE listings DROP COLUMN last_full_items")
    db.execute("ALTER TABLE source_runs DROP COLUMN sweep")
    db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm008_full_sweeps'")
    for source in ("pages", "rss", "brdr", "press_releases"):
        db.execute(
            "INSERT INTO listings (source, url, healthy, reason, items, last_healthy_items, "
            "last_healthy_at) VALUES (?, ?, 1, '', 40, 40, '2026-11-01T00:00:00+00:00')",
            [source, f"https://www.hkma.gov.hk/{source}"],
        )
    db.commit()
    db.close()

    rows = open_db(path).execute(
        "SELECT source, last_full_at, last_full_items FROM listings ORDER BY source"
    )
    assert rows.fetchall() == [
        ("brdr", None, None),  # read incrementally: unknown, so the next run sweeps whole
        ("pages", "2026-11-01T00:00:00+00:00", 40),
        ("press_releases", None, None),
        ("rss", "2026-11-01T00:00:00+00:00", 40),
    ]


def test_a_crawl_result_without_the_expected_shape_is_refused_naming_what(tmp_path):
    from tracker.results import ResultError, read_result

    good = {
        "finish_reason": "finished",
        "items": [
            {
                "listing": PAGE,
                "key": "k",
                "title": "T",
                "url": PAGE,
                "date": None,
                "text": "",
                "extra": {},
            }
        ],
        "outcomes": [
            {
                "source": "pages",
                "listing": PAGE,
                "ok": True,
                "reason": "",
                "status": 200,
                "items": 1,
                "removals_allowed": True,
                "comparable": True,
            }
        ],
        "stats": {},
    }
    path = tmp_path / "pages.json"
    path.write_text(json.dumps(good), encoding="utf-8")
    assert read_result(path, documents=True) == good
    for broken, message in [
        ({**good, "outcomes": [{**good["outcomes"][0], "ok": "yes"}]}, "outcome 0: 'ok' is str"),
        ({**good, "items": [{"key": "k"}]}, "item 0 has no 'listing'"),
        ({**good, "stats": None}, "'stats' is missing or not a dict"),
    ]:
        path.write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(ResultError, match=message):
            read_result(path, documents=True)
    path.write_text("{truncated", encoding="utf-8")
    with pytest.raises(ResultError, match=r"pages\.json: Expecting"):
        read_result(path, documents=True)


def test_a_no_change_crawl_reads_no_text_and_a_change_reads_only_its_own(tmp_path):
    db = open_db(tmp_path / "h.db")
    titles = [f"Circular {i} on capital adequacy" for i in range(50)]
    ingest(db, titles)
    stored = load_stored(db, "pages")
    plan = plan_source("pages", crawl_result(titles), [PAGE], stored, {}, HealthSettings())
    assert plan.events == [] and len(plan.unchanged) == 50
    assert not [d.id for d in stored.values() if "snapshot" in d.__dict__]  # no text was read

    stored = load_stored(db, "pages")
    amended = [*titles[:-1], "Circular 49 on capital adequacy (amended)"]
    plan = plan_source("pages", crawl_result(amended), [PAGE], stored, {}, HealthSettings())
    assert [(e.kind, e.document_id) for e in plan.events] == [("changed", "pages:k49")]
    assert [d.id for d in stored.values() if "snapshot" in d.__dict__] == ["pages:k49"]


def test_links_are_updated_for_the_documents_a_run_changed(tmp_path):
    db = open_db(tmp_path / "h.db")
    ingest(db, ["Revised SPM module IC-6", "Circular on CR-G-7"])
    with write_transaction(db):
        rebuild_links(db, links_of)
    keys = dict(db.execute("SELECT document_id, group_concat(key) FROM links GROUP BY 1"))
    assert keys == {"pages:k0": "spm:IC-6", "pages:k1": "spm:CR-G-7"}
    ingest(db, ["Revised SPM module IC-7", "Circular on CR-G-7"])
    run_id = db.execute("SELECT max(id) FROM runs").fetchone()[0]
    with write_transaction(db):
        assert update_links(db, links_of, run_id) == 1  # only the changed document
    keys = dict(db.execute("SELECT document_id, group_concat(key) FROM links GROUP BY 1"))
    assert keys == {"pages:k0": "spm:IC-7", "pages:k1": "spm:CR-G-7"}


def test_an_interrupted_retag_resumes_where_it_stopped_and_ends_as_a_whole_one(tmp_path):
    titles = [f"Circular {i} on money laundering and fraud" for i in range(30)]
    whole, cut = open_db(tmp_path / "whole.db"), open_db(tmp_path / "cut.db")
    for db in (whole, cut):
        ingest(db, titles)
        ingest(db, [t + " (amended)" for t in titles])  # 60 versions
    tagger = Tagger(load_taxonomy())
    retag(whole, tagger, chunk=7)

    class Crashing:
        version = tagger.version

        def __init__(self):
            self.calls = 0

        def __call__(self, source, snapshot):
            self.calls += 1
            if self.calls > 20:
                raise OSError("disk full")
            return tagger(source, snapshot)

    with pytest.raises(OSError, match="disk full"):
        retag(cut, Crashing(), chunk=7)
    (done,) = cut.execute("SELECT done_through FROM retags WHERE finished_at IS NULL").fetchone()
    assert done == 14  # two whole chunks of 7 were committed; the third rolled back
    summary = retag(cut, tagger, chunk=7)
    assert summary["resumed_after_version"] == 14 and summary["versions"] == 46

    def tags(db):
        return sorted(db.execute("SELECT version_id, kind, tag, evidence FROM tags").fetchall())

    def current(db):
        return sorted(db.execute("SELECT id, functions, products, entity_types FROM documents"))

    assert tags(cut) == tags(whole) and current(cut) == current(whole)
    assert cut.execute("SELECT count(*) FROM retags WHERE finished_at IS NULL").fetchone() == (0,)


def test_the_tag_index_holds_the_tags_in_force_whatever_writes_them(tmp_path):
    """Tag filters read `tag_index`: it must say what the documents' tag lists say after an
    ingest, after any update of the lists (a retag, a person's correction), and of a database
    from before it (m020)."""
    path = tmp_path / "h.db"
    db = open_db(path)
    ingest(db, ["Circular on money laundering", "Guideline on cybersecurity", "Notice"])

    def index(db):
        return sorted(db.execute("SELECT document_id, kind, tag FROM tag_index").fetchall())

    def lists(db):
        rows = db.execute("SELECT id, functions, products, entity_types FROM documents")
        return sorted(
            (doc, kind, tag)
            for doc, *kinds in rows
            for kind, tags in zip(("functions", "products", "entity_types"), kinds, strict=True)
            for tag in json.loads(tags)
        )

    assert ("pages:k0", "functions", "AML/CFT") in index(db)
    assert index(db) == lists(db)
    with write_transaction(db):
        db.execute("UPDATE documents SET functions = '[\"Fraud\"]' WHERE id = 'pages:k0'")
    assert ("pages:k0", "functions", "Fraud") in index(db)
    assert ("pages:k0", "functions", "AML/CFT") not in index(db)
    assert index(db) == lists(db)
    # A database from before m020: no index; migrating builds it from the lists.
    db.execute("DROP TRIGGER tag_index_insert")
    db.execute("DROP TRIGGER tag_index_update")
    db.execute("DROP TABLE tag_index")
    db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm020_tag_index'")
    db.close()
    db = open_db(path)
    assert index(db) == lists(db) and len(index(db)) > 3


def test_document_counts_say_what_the_documents_say_whatever_writes_them(tmp_path):
    """`status` reads each source's active documents from `document_counts` (counting 833,000
    index entries took 0.17 s at a million versions): after ingests, a removal, a status
    changed by hand, and in a database from before it (m027)."""
    path = tmp_path / "h.db"
    db = open_db(path)
    ingest(db, ["A", "B", "C"])
    ingest(db, ["A", "B"])  # C gone from the page

    def kept(db):
        return sorted(db.execute("SELECT source, status, documents FROM document_counts"))

    def counted(db):
        return sorted(db.execute("SELECT source, status, count(*) FROM documents GROUP BY 1, 2"))

    assert kept(db) == counted(db) == [("pages", "active", 2), ("pages", "removed", 1)]
    with write_transaction(db):
        db.execute("UPDATE documents SET status = 'active' WHERE status = 'removed'")
    assert [r for r in kept(db) if r[2]] == counted(db) == [("pages", "active", 3)]
    # A database from before m027: migrating counts them.
    before_m027(db)
    db.close()
    db = open_db(path)
    assert kept(db) == counted(db)


def test_a_migration_that_only_adds_does_not_check_every_reference(tmp_path):
    """Checking every foreign key reads the whole database (16 s at 100,000 versions, 195 s at
    a million): after a migration that only adds tables, indexes or triggers there is nothing
    it could have broken. A reference left dangling by something else is not the upgrade's
    business; one a rebuilt or dropped table leaves is."""
    from storage.db import tables_rebuilt

    path = tmp_path / "h.db"
    db = open_db(path)
    ingest(db, ["A"])
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("UPDATE versions SET document_id = 'pages:gone'")  # dangling, by hand
    db.conn.commit()
    before_m027(db)
    db.close()
    db = open_db(path)  # migrates m027 without a full check
    assert db.execute("SELECT documents FROM document_counts").fetchall() == [(1,)]
    # What counts as rebuilt: a table whose pages moved, or a table dropped; a new one is not.
    before = {"documents": 2, "versions": 5, "digests": 9}
    assert tables_rebuilt(before, {"documents": 2, "versions": 5, "digests": 9, "n": 12}) == set()
    assert tables_rebuilt(before, {"documents": 14, "versions": 5, "digests": 9}) == {"documents"}
    assert tables_rebuilt(before, {"documents": 2, "versions": 5}) == {"digests"}


def before_m027(db):
    """Take `db` back to before m027."""
    for trigger in ("insert", "update", "delete"):
        db.execute(f"DROP TRIGGER document_counts_{trigger}")
    db.execute("DROP TABLE document_counts")
    db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm027_document_counts'")
