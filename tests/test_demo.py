"""First contact: the demo shows every source and what each brings on a second day, and its
database answers the examples of the help and every canned query."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from tracker.cli import cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(cli, ["demo", "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output
    return workdir, result.stdout


def test_day_2_brings_news_from_every_source(demo):
    _, output = demo
    day2 = output.split("== Day 2", 1)[1]
    for source, news in {
        "rss": "6 new, 1 changed",
        "pages": "1 new, 2 changed, 1 removed",
        "brdr": "1 new, 2 changed",
        "press_releases": "3 new",
    }.items():
        assert re.search(rf"^{source}: healthy; \d+ items, {news}", day2, re.MULTILINE), source
    digest = day2.split("== Digest", 1)[1]
    assert "[CHANGED] Supervisory Policy Manual IC-6" in digest  # an SPM revision
    assert "Superseded by Revised: " in digest  # a supersession
    assert "take effect on 1 [-March-] {+June+} 2026" in digest  # a PDF's date moved
    assert "HKMA press releases" in digest
    # A row gone from a topic page says from which page and section, and when last listed.
    assert re.search(
        r"^\[REMOVED\] .*\n.*\n.*\n  Removed from: Circulars & Guidance Papers › Guidance Papers\n"
        r"  Last listed \d{4}-\d{2}-\d{2}\n",
        digest,
        re.MULTILINE,
    )


def test_the_help_examples_and_the_canned_queries_work_on_the_demo_database(demo):
    workdir, _ = demo
    db = str(workdir / "demo.db")
    runner = CliRunner()
    for args in (
        ["rule", "spm:CR-G-7"],
        ["rule", "IC-6"],
        ["changes", "--function", "AML/CFT", "--json"],
        ["search", "money laundering"],
        ["export", "--format", "csv", "--product", "Wealth Mgt", "--include-baseline"],
        ["status"],
        ["runs", "--limit", "5", "--json"],
    ):
        result = runner.invoke(cli, ["--db", db, *args])
        assert result.exit_code == 0, (args, result.output)
        assert result.stdout, args

    datasette_app = pytest.importorskip("datasette.app")
    from tracker.datasette_plugin import QUERIES

    async def answers():
        ds = datasette_app.Datasette([db])
        params = (
            "function=AML&product=banking&entity_type=banks&key=spm:IC-6&query=laundering"
            "&change_id=1&from_date=2020-01-01&to_date=2099-12-31"
        )
        return {
            name: (await ds.client.get(f"/demo/{name}.json?{params}&_shape=array")).json()
            for name in QUERIES
        }

    import asyncio

    rows = asyncio.run(answers())
    empty = {name for name, found in rows.items() if not found}
    # Nothing is unreadable in the demo, no effective date of its PDFs lies ahead, no change
    # has been reviewed yet, and the rules give every binding instrument of it a function
    # (tests/test_delivery.py has an untagged one).
    assert empty <= {
        "unreadable_documents", "upcoming_deadlines", "review_log", "untagged_instruments",
    }, empty  # fmt: skip
    assert rows["checks_in_period"] and rows["open_reviews"]
    assert json.dumps(rows["superseded_rules"]).count("superseded") >= 1
