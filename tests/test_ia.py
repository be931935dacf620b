"""The Insurance Authority as a source (issue 25): real crawls of a loopback fake built from
the shapes in ../shared/hk-regulators.md §2 (tracker/demo_ia.py says where each comes from)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import pytest
from conftest import only_source_config

from spiders.normalize import HONG_KONG
from tracker.config import load_config
from tracker.demo_ia import IaFake
from tracker.exit_codes import ExitStatus
from tracker.loopback import RecordedSite
from tracker.run import run

THIS_YEAR = datetime.now(HONG_KONG).year
GL = "/en/legislative_framework/guidelines.php"
CIRCULARS_PAGE = (
    "/en/legislative_framework/circulars/reg_matters/circulars_on_regulatory_matters_{year}.html"
)


@pytest.fixture
def fake():
    return IaFake.for_year(THIS_YEAR)


@pytest.fixture
def config(tmp_path, fake):
    agent = 'user_agent = "hkma-tracker-test/1.0 (compliance)"\n'
    path = only_source_config(tmp_path, "ia", crawl=agent)
    with RecordedSite(tmp_path) as site:
        site.handlers.update(fake.routes([THIS_YEAR, THIS_YEAR - 1]))
        site.fallback = fake.fallback
        yield load_config(path, [f"https://www.ia.org.hk={site.base_url}"])


def rows(db_path, sql, params=()):
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, params).fetchall()


CIRCULAR = (
    "ia:/en/legislative_framework/circulars/reg_matters/files/Circular_29072026_Cyber_Eng.pdf"
)
ANNEX = "ia:/en/legislative_framework/circulars/reg_matters/files/Cir_29072026_Annex_B.pdf"


def test_circulars_guidelines_and_press_releases_day_one_and_day_two(config, fake, db_path):
    first = run(config, db_path)
    assert first.exit_status == ExitStatus.OK, first.plans
    stored = dict(rows(db_path, "SELECT id, regulator FROM documents WHERE source = 'ia'"))
    assert set(stored.values()) == {"IA"}
    assert {"ia:GL3", "ia:GL20", "ia:GL1", "ia:20260728", "ia:20260728_1"} <= stored.keys()
    assert len([d for d in stored if "/circulars/" in d]) == 4  # three circulars, one annex
    repealed = json.loads(rows(db_path, "SELECT extra FROM documents WHERE id = 'ia:GL1'")[0][0])
    assert repealed["status"] == "repealed"
    # Every document a row links was read; a repealed guideline links none, so none waits.
    assert rows(
        db_path,
        "SELECT count(*) FROM documents WHERE source = 'ia' AND fetch_status IS NULL "
        "AND json_extract(extra, '$.document_url') IS NOT NULL",
    ) == [(0,)]
    assert rows(db_path, "SELECT count(*) FROM changes WHERE NOT baseline") == [(0,)]
    assert set(fake.user_agents) == {"hkma-tracker-test/1.0 (compliance)"}

    fake.day2()
    second = run(config, db_path)
    assert second.exit_status == ExitStatus.OK, second.plans
    news = set(
        rows(
            db_path, "SELECT document_id, kind FROM changes WHERE NOT baseline AND regulator = 'IA'"
        )
    )
    assert {(CIRCULAR, "new"), (ANNEX, "new"), ("ia:GL3", "changed")} <= news
    # A new file name with a new date is a new version of the same guideline.
    versions = rows(
        db_path, "SELECT url, date FROM versions WHERE document_id = 'ia:GL3' ORDER BY id"
    )
    # (each listing version and the version its document's text made)
    assert list(dict.fromkeys(v[1] for v in versions)) == ["2025-05-02", "2026-07-15"]
    assert versions[-1][0].endswith("/GL3_ENG_202607.pdf")
    # The annex is one publication with its circular: one update of one rule record.
    (record,) = rows(
        db_path,
        "SELECT count(DISTINCT m.record_id), count(DISTINCT m.publication) FROM record_members m "
        "WHERE m.document_id IN (?, ?)",
        [CIRCULAR, ANNEX],
    )
    assert record == (1, 1)
    # An IA circular is about insurance, addressed to insurers: not Banking from its feed's name.
    tags = set(
        rows(db_path, "SELECT kind, tag FROM document_tags WHERE document_id = ?", [CIRCULAR])
    )
    assert {("products", "Insurance"), ("entity_types", "Insurers")} <= tags
    assert not {t for t in tags if t[1] in ("Banking", "Banks (authorized institutions)")}


def test_a_403_is_an_unhealthy_source_never_no_data(config, fake, db_path):
    run(config, db_path)
    before = rows(db_path, "SELECT id, status, last_changed_at FROM documents ORDER BY id")
    fake.refused.add(GL)
    refused = run(config, db_path)
    assert refused.exit_status == ExitStatus.SOURCE_UNHEALTHY
    (ia,) = [p for p in refused.plans if p.source == "ia"]
    assert [(v.url, v.reason) for v in ia.verdicts if not v.healthy] == [
        ("https://www.ia.org.hk" + GL, "HTTP 403")
    ]
    assert rows(db_path, "SELECT id, status, last_changed_at FROM documents ORDER BY id") == before


def test_the_fake_stands_for_this_year_whatever_year_it_is():
    """The demo and these tests serve the fake as this year's and last year's pages: day 2's
    circular goes on this year's page in 2030 as in 2026."""
    fake = IaFake.for_year(2030)
    fake.day2()
    assert sorted(fake.circulars) == [2029, 2030]
    assert fake.circulars[2030][0][1][0][0] == "Circular on Cybersecurity of Authorized Insurers"


def test_a_year_page_that_fails_is_named_by_its_year(config, fake, db_path):
    """The circulars listing is one URL with {year} in it: when last year's page is refused,
    the reason says which page, not only the template."""
    fake.refused.add(CIRCULARS_PAGE.replace("{year}", str(THIS_YEAR - 1)))
    refused = run(config, db_path)
    assert refused.exit_status == ExitStatus.SOURCE_UNHEALTHY
    (ia,) = [p for p in refused.plans if p.source == "ia"]
    assert [v.reason for v in ia.verdicts if not v.healthy] == [
        f"HTTP 403 (the {THIS_YEAR - 1} page)"
    ]
