"""The SFC as a source (issue 25): real crawls of a loopback fake built from the shapes in
../shared/hk-regulators.md §1 (tracker/demo_sfc.py says where each field comes from)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from conftest import only_source_config

from spiders.sfc import guideline_items, hong_kong_day, search_body
from tracker.cli import cli
from tracker.config import load_config
from tracker.demo_sfc import GUIDELINES, SfcFake, guidelines_page, years_to_read
from tracker.exit_codes import ExitStatus
from tracker.loopback import RecordedSite
from tracker.run import run

GUIDELINES_URL = "https://www.sfc.hk/en/Rules-and-standards/Codes-and-guidelines/Guidelines"


def test_the_search_body_carries_what_the_api_requires():
    body = search_body("consultations", 2026, 0, 100)
    assert body["lang"] == "EN" and body["category"] == "" and body["year"] == 2026
    assert body["sort"] == {"field": "cpIssueDate", "order": "desc"}
    assert search_body("news", 2026, 1, 50)["month"] == "all"


def test_api_times_without_a_zone_are_hong_kong_time():
    assert hong_kong_day("2026-02-11T16:10:23.117") == "2026-02-11"
    assert hong_kong_day("2026-02-11T20:10:23Z") == "2026-02-12"  # 04:10 HKT the next day
    assert hong_kong_day("") is None and hong_kong_day("soon") is None


def test_only_rows_with_a_guideline_id_are_guidelines_and_the_rev_is_no_identity():
    items = guideline_items(
        guidelines_page(GUIDELINES, "guidelines").encode(), GUIDELINES_URL, "guidelines"
    )
    assert [i.title for i in items] == [g["title"] for g in GUIDELINES]  # not "Related links"
    fit = items[0]
    assert fit.key == "guidelines/a3f1c2d4e5b6a7980123456789abcdef"
    assert "?rev=" not in fit.url and fit.extra["pdf_rev"] == GUIDELINES[0]["rev"]
    assert "?rev=" in fit.extra["document_url"]
    assert fit.date == "2022-01-01"
    assert fit.extra["previous_versions"][0]["from"] == "2019-11-16"


@pytest.fixture
def fake():
    return SfcFake()


@pytest.fixture
def site(tmp_path, fake):
    with RecordedSite(tmp_path) as served:
        served.handlers.update(fake.routes())
        yield served


@pytest.fixture
def config(tmp_path, site):
    this_year = datetime.now(timezone(timedelta(hours=8))).year
    path = only_source_config(tmp_path, "sfc", settings=f"years = {years_to_read(this_year)}\n")
    mirrors = [f"https://{host}={site.base_url}" for host in ("apps.sfc.hk", "www.sfc.hk")]
    return load_config(path, mirrors)


def rows(db_path, sql, params=()):
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, params).fetchall()


def test_day_one_is_the_baseline_and_day_two_brings_what_the_sfc_published(config, fake, db_path):
    first = run(config, db_path)
    assert first.exit_status == ExitStatus.OK, first.plans
    stored = dict(rows(db_path, "SELECT id, regulator FROM documents WHERE source = 'sfc'"))
    assert set(stored.values()) == {"SFC"}
    assert {"sfc:26EC40", "sfc:26EC33", "sfc:26EC33/appendix-1", "sfc:25CP11", "sfc:26PR121"} <= (
        stored.keys()
    )
    assert "sfc:guidelines/a3f1c2d4e5b6a7980123456789abcdef" in stored
    assert rows(db_path, "SELECT count(*) FROM changes WHERE NOT baseline") == [(0,)]
    # The linked documents were read: the circular's PDF and its appendix.
    assert {"26EC33:main", "26EC33:0"} <= set(fake.files)

    fake.day2()
    second = run(config, db_path, full_sweep=True)
    assert second.exit_status == ExitStatus.OK, second.plans
    news = {
        (doc, kind)
        for doc, kind in rows(
            db_path,
            "SELECT document_id, kind FROM changes WHERE NOT baseline AND regulator = 'SFC'",
        )
    }
    assert {
        ("sfc:26EC45", "new"),
        ("sfc:26EC45/appendix-1", "new"),
        ("sfc:25CC7", "new"),
        ("sfc:25CP11", "changed"),  # concluded
        ("sfc:guidelines/a3f1c2d4e5b6a7980123456789abcdef", "changed"),  # revised
    } <= news
    revised = json.loads(
        rows(
            db_path,
            "SELECT extra FROM documents WHERE id = ?",
            ["sfc:guidelines/a3f1c2d4e5b6a7980123456789abcdef"],
        )[0][0]
    )
    assert [v["from"] for v in revised["previous_versions"]] == ["2022-01-01", "2019-11-16"]
    # The guideline's timeline: its earlier versions, then the one in force.
    result = CliRunner().invoke(
        cli,
        ["--db", str(db_path), "rule", "sfc:guidelines/a3f1c2d4e5b6a7980123456789abcdef", "--json"],
    )
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    timeline = [(e["date"], e["entry"]) for e in entries if e.get("type") == "entry"]
    assert timeline == [
        ("2019-11-16", "earlier version"),
        ("2022-01-01", "earlier version"),
        ("2026-07-15", "guideline"),
    ]


def test_a_consultation_and_its_conclusions_are_one_rule_and_its_deadline_is_known(
    config, fake, db_path
):
    run(config, db_path)
    fake.day2()
    run(config, db_path, full_sweep=True)
    runner = CliRunner()
    base = ["--db", str(db_path)]
    timeline = runner.invoke(cli, [*base, "rule", "sfc:25CP11", "--json"])
    assert timeline.exit_code == 0, timeline.output
    documents = {json.loads(line).get("document_id") for line in timeline.stdout.splitlines()}
    assert {"sfc:25CP11", "sfc:25CC7"} <= documents
    record = runner.invoke(cli, [*base, "record", "sfc:25CC7", "--json"])
    assert record.exit_code == 0, record.output
    view = json.loads(record.stdout)
    assert view["regulator"] == "SFC"
    assert {u["publication"] for u in view["updates"]} >= {
        "https://apps.sfc.hk/edistributionWeb/gateway/EN/consultation/doc?refNo=25CP11"
    }
    closes = rows(
        db_path,
        "SELECT date, evidence, regulator FROM deadlines WHERE document_id = 'sfc:25CP11' "
        "AND kind = 'consultation closes'",
    )
    assert closes == [("2026-08-31", "SFC consultation record (consultation concluded)", "SFC")]


def test_a_failing_or_lying_api_is_an_unhealthy_source_that_removes_nothing(config, fake, db_path):
    run(config, db_path)
    before = rows(db_path, "SELECT id, status FROM documents ORDER BY id")
    fake.failing.add("circular")
    fake.empty_with_total.add("news")
    broken = run(config, db_path, full_sweep=True)
    assert broken.exit_status == ExitStatus.SOURCE_UNHEALTHY
    (sfc,) = [p for p in broken.plans if p.source == "sfc"]
    reasons = " ".join(v.reason for v in sfc.verdicts)
    assert "no items while the total is" in reasons
    # The failing search is named by the year and page it asked for.
    assert f"HTTP 503 ({datetime.now(timezone(timedelta(hours=8))).year}, page 1)" in reasons
    assert rows(db_path, "SELECT id, status FROM documents ORDER BY id") == before


def test_the_rss_probe_finds_nothing_new_and_no_api_page_is_read(config, fake, db_path):
    run(config, db_path)
    fake.searches.clear()
    quiet = run(config, db_path)
    assert quiet.exit_status == ExitStatus.OK, quiet.plans
    assert fake.searches == []  # the feeds showed nothing since the last healthy run
    assert len(fake.probes) >= 2
    # Something new in a feed: that stream's API is read, the others are not.
    fake.day2()
    fake.circulars[0]["releasedDate"] = "2099-01-01T09:00:00"  # newer than any run
    fake.searches.clear()
    run(config, db_path)
    assert {stream for stream, _ in fake.searches} == {"circular"}


def test_a_poll_reads_the_feeds_and_only_the_api_stream_with_news(config, fake, site, db_path):
    """The fast poll: the SFC's feeds as probes, the API searched only for a stream whose
    feed has news, and no codes or guidelines page (those wait for the hourly run)."""
    run(config, db_path)
    fake.day2()
    now = datetime.now(timezone(timedelta(hours=8)))  # published a moment ago
    fake.circulars[0]["releasedDate"] = now.strftime("%Y-%m-%dT%H:%M:%S")
    fake.searches.clear()
    site.reset_counters()
    polled = run(config, db_path, poll=True)
    assert polled.exit_status == ExitStatus.OK, polled.plans
    assert {stream for stream, _ in fake.searches} == {"circular"}
    assert not [p for p in site.paths if p.endswith(("/Codes", "/Guidelines"))]
    new = rows(
        db_path,
        "SELECT document_id FROM changes WHERE run_id = ? AND kind = 'new'",
        [polled.run_id],
    )
    assert ("sfc:26EC45",) in new  # the circular and its appendix, read in the poll
