"""HKMA Open API press releases through real crawls of a loopback fake (260 real records)."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import OTHER_REGULATORS_OFF

from spiders.press_releases import page_url, parse_page
from tracker.config import load_config
from tracker.demo_apis import PressReleasesFake, load
from tracker.exit_codes import ExitStatus
from tracker.loopback import RecordedSite
from tracker.run import run

API = "https://api.hkma.gov.hk/public/press-releases?lang=en"


def test_page_urls_keep_the_language_and_move_the_offset():
    assert page_url(API, 200, 100) == (
        "https://api.hkma.gov.hk/public/press-releases?lang=en&pagesize=100&offset=200"
    )


def test_records_become_documents_keyed_by_link():
    body = b'{"header":{"success":true},"result":{"datasize":1,"records":[{"title":" Exchange Fund ","link":"https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/07/20260707-8/","date":"2026-07-07"}]}}'
    (item,), count = parse_page(body, API)
    assert count == 1
    assert (item.key, item.title, item.date) == (
        "https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/07/20260707-8/",
        "Exchange Fund",
        "2026-07-07",
    )
    assert item.extra == {"document_url": item.url}


@pytest.fixture
def fake():
    return PressReleasesFake(load("press-releases.json"))


@pytest.fixture
def config(tmp_path, fake):
    path = tmp_path / "press.toml"
    path.write_text(
        "[crawl]\ndownload_delay = 0\nretries = 0\n"
        "[sources.rss]\nenabled = false\n[sources.pages]\nenabled = false\n"
        "[sources.brdr]\nenabled = false\n[documents]\nenabled = false\n"
        f"{OTHER_REGULATORS_OFF}"
        f'[digest]\nfolder = "{(tmp_path / "digests").as_posix()}"\n',
        encoding="utf-8",
    )
    with RecordedSite(tmp_path) as site:
        site.handlers[PressReleasesFake.path] = fake
        yield load_config(path, [f"https://api.hkma.gov.hk={site.base_url}"])


def stored(db_path):
    with sqlite3.connect(db_path) as conn:
        return conn.execute(
            "SELECT count(*) FROM documents WHERE source = 'press_releases'"
        ).fetchone()[0]


def test_pages_until_a_short_page_then_stops_early_when_incremental(config, fake, db_path):
    first = run(config, db_path)
    assert first.exit_status == ExitStatus.OK
    assert fake.offsets == [0, 100, 200]  # 260 records: 100, 100, then a short page of 60
    assert stored(db_path) == 260

    fake.offsets.clear()
    fake.records.insert(
        0,
        {
            "title": "Exchange Fund Position at end-July 2026",
            "link": "https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/08/20260807-3/",
            "date": "2026-08-07",
        },
    )
    incremental = run(config, db_path)
    assert incremental.exit_status == ExitStatus.OK
    # The first page already reaches back before the last healthy run: no more pages.
    assert fake.offsets == [0]
    assert [(e.kind, e.snapshot.title) for e in incremental.events] == [
        ("new", "Exchange Fund Position at end-July 2026")
    ]

    fake.offsets.clear()
    run(config, db_path, full_sweep=True)
    assert fake.offsets == [0, 100, 200]


def test_an_api_error_makes_the_source_unhealthy(config, fake, db_path):
    run(config, db_path)
    fake.error = "Service temporarily unavailable"
    report = run(config, db_path)
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    assert report.plans[0].reason == f"{API}: API error 9999: Service temporarily unavailable"
    assert stored(db_path) == 260


def test_a_history_without_a_full_read_on_record_is_swept_whole_once(config, fake, db_path):
    first = run(config, db_path)
    assert first.plans[0].sweep_reason == "full sweep (no baseline yet)"
    # As a database written before full reads were recorded (migration m008) looks.
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE listings SET last_full_at = NULL, last_full_items = NULL")
    fake.offsets.clear()

    upgraded = run(config, db_path)

    assert (upgraded.plans[0].sweep, upgraded.events) == ("full", [])
    assert fake.offsets == [0, 100, 200]
    fake.offsets.clear()
    assert run(config, db_path).plans[0].sweep == "incremental" and fake.offsets == [0]


HOSTILE = (
    "Exchange Fund\x1b[2J\x1b]8;;https://evil.example/\x07 position\x00 at"
    "\u202e dne-ylul\u202c \x85end-July\x7f"
)


def test_control_and_bidi_characters_never_leave_the_crawl(config, fake, db_path):
    fake.records[0] = {**fake.records[0], "title": HOSTILE}
    run(config, db_path)
    with sqlite3.connect(db_path) as conn:
        (title,) = conn.execute(
            "SELECT title FROM documents WHERE url = ?", [fake.records[0]["link"]]
        ).fetchone()
    assert title == "Exchange Fund[2J]8;;https://evil.example/ position at dne-ylul end-July"
