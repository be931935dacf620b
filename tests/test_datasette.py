"""The Datasette plugin: every canned query works on any tracker database, whatever its file
name, with the input an analyst actually types."""

from __future__ import annotations

import asyncio
import gzip
import shutil
from urllib.parse import urlencode

import pytest
from conftest import FIXTURES

from storage.db import open_db

datasette_app = pytest.importorskip("datasette.app")

# What analysts type, and what each query must then find (None: only that it answers).
INPUTS = {
    "search": [
        ("AML/CFT", None),
        ("stablecoin-related", "Stablecoin"),
        ("stablecoins", "Stablecoin"),
        ('"money laundering"', "laundering"),
        ('a"b (((', None),
        ("洗錢", None),
        ("", None),
    ],
    "changes_by_function": [("AML", "AML/CFT"), ("aml/cft", "AML/CFT"), ("Nonsense", None)],
    "changes_by_product": [("bank", "Banking"), ("mortgage", "Mortgages")],
    "changes_by_entity_type": [("banks", "Banks (authorized institutions)")],
    # As the CLI takes them: with or without the prefix; a key it refuses matches nothing.
    "rule_timeline": [
        ("spm:IC-6", "IC-6"),
        ("IC-6", "IC-6"),
        ("nonsense", None),
        ("spm:'; DROP TABLE links; --", None),
    ],
    "review_log": [("1", None), ("'; DROP TABLE reviews; --", None)],
}
PARAMETER = {
    "search": "query",
    "changes_by_function": "function",
    "changes_by_product": "product",
    "changes_by_entity_type": "entity_type",
    "rule_timeline": "key",
    "review_log": "change_id",
}


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    """The analysts' test history (see fixtures/README.md) under another file name."""
    path = tmp_path_factory.mktemp("datasette") / "demo.db"
    with gzip.open(FIXTURES / "release-m012.db.gz") as packed, open(path, "wb") as out:
        shutil.copyfileobj(packed, out)
    open_db(path).close()  # upgraded to this release's schema
    return path


def fetch(path, *urls):
    async def get_all():
        ds = datasette_app.Datasette([str(path)])
        return [await ds.client.get(url) for url in urls]

    return asyncio.run(get_all())


def test_every_canned_query_answers_any_input_on_a_database_of_any_name(demo_db):
    from tracker.datasette_plugin import QUERIES

    (listing,) = fetch(demo_db, "/demo.json")
    assert listing.status_code == 200
    names = {q["name"] for q in listing.json()["queries"]}
    assert names == set(QUERIES)
    for name in QUERIES:
        cases = INPUTS.get(name, [(None, None)])
        for value, expected in cases:
            given = {PARAMETER[name]: value} if value is not None else {}
            (response,) = fetch(
                demo_db, f"/demo/{name}.json?{urlencode({**given, '_shape': 'array'})}"
            )
            assert response.status_code == 200, (name, value, response.text[:300])
            rows = response.json()
            assert isinstance(rows, list)
            if expected:
                assert rows and any(expected in str(row) for row in rows), (name, value)


def test_tag_lists_read_as_names_and_snippets_show_the_match(demo_db):
    (changes, found) = fetch(
        demo_db,
        "/demo/changes_by_function.json?function=aml&_shape=array",
        "/demo/search.json?query=laundering&_shape=array",
    )
    row = changes.json()[0]
    assert "AML/CFT" in row["functions"] and "[" not in row["functions"]
    assert any("[laundering]" in r["snippet"].lower() for r in found.json())


def test_a_database_that_is_not_the_trackers_gets_no_queries(tmp_path):
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE documents (id TEXT)")
    (listing,) = fetch(other, "/other.json")
    assert listing.json()["queries"] == []


def test_checks_in_period_counts_hong_kong_days_as_the_report_does(demo_db, tmp_path):
    import sqlite3

    copy = tmp_path / "demo.db"
    shutil.copy(demo_db, copy)
    with sqlite3.connect(copy) as conn:  # a check on 23 November, 01:00 in Hong Kong
        run = conn.execute("SELECT max(run_id) FROM source_runs").fetchone()[0]
        conn.execute(
            "UPDATE source_runs SET finished_at = '2026-11-22T17:00:00+00:00' WHERE run_id = ?",
            [run],
        )
    (response,) = fetch(
        copy, "/demo/checks_in_period.json?from_date=2026-11-23&to_date=2026-11-23&_shape=array"
    )
    assert {r["finished_at"] for r in response.json()} == {"2026-11-22T17:00:00+00:00"}
    (before,) = fetch(
        copy, "/demo/checks_in_period.json?from_date=2026-11-22&to_date=2026-11-22&_shape=array"
    )
    assert "2026-11-22T17:00:00+00:00" not in {r["finished_at"] for r in before.json()}
