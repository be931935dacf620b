"""Real crawls (child process, real Scrapy, real HTTP on 127.0.0.1) of the recorded HKMA site."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3

from conftest import DEMO_PAGE, FEED_URL, page_path, use_day

from tracker.exit_codes import ExitStatus
from tracker.loopback import Override
from tracker.run import run

ROW_PREFIX = f"pages:{DEMO_PAGE}|"
DAY2_EVENTS = {
    (
        "new",
        "rss:press-release|https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/07/20260731-4/",
        (),
    ),
    (
        "new",
        "rss:press-release|https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/07/20260731-5/",
        (),
    ),
    (
        "new",
        "rss:press-release|https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/07/20260731-8/",
        (),
    ),
    ("new", "rss:circulars|https://brdr.hkma.gov.hk/eng/doc-ldg/current/20260729-1-EN", ()),
    ("new", "rss:circulars|https://brdr.hkma.gov.hk/eng/doc-ldg/current/20260727-1-EN", ()),
    (
        "new",
        "rss:speeches|https://www.hkma.gov.hk/eng/news-and-media/speeches/2026/07/20260727-1/",
        (),
    ),
    (
        "changed",
        "rss:circulars|https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN",
        ("title",),
    ),
    ("changed", f"pages:{DEMO_PAGE}", ("date",)),
    ("new", ROW_PREFIX + "https://brdr.hkma.gov.hk/eng/doc-ldg/docId/20251210-1-EN", ()),
    (
        "changed",
        ROW_PREFIX
        + "https://www.hkma.gov.hk/media/eng/doc/key-information/guidelines-and-circular/2024/20241220e1.pdf",
        ("title",),
    ),
    (
        "removed",
        ROW_PREFIX
        + "https://www.hkma.gov.hk/media/eng/doc/key-functions/banking-stability/aml-cft/Gudiance_Paper_Tax_20150331.pdf",
        (),
    ),
}


def events(db_path, run_id=None):
    with sqlite3.connect(db_path) as conn:
        sql = "SELECT kind, document_id, fields FROM changes"
        rows = conn.execute(
            sql + (" WHERE run_id = ?" if run_id else ""), [run_id] if run_id else []
        )
        return {(kind, doc, tuple(json.loads(fields))) for kind, doc, fields in rows}


def table(db_path, sql, params=()):
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, params).fetchall()


def test_day1_is_a_baseline_and_day2_gives_exactly_the_real_changes(
    site, config, db_path, tmp_path
):
    day1 = run(config, db_path)
    assert day1.exit_status == ExitStatus.OK
    assert [p.healthy for p in day1.plans] == [True, True]
    # 49 feed items (the literal duplicate collapsed), the page and its 83 distinct rows.
    assert [len(p.seen) for p in day1.plans] == [49, 84]
    assert table(db_path, "SELECT count(*), sum(baseline) FROM changes") == [(133, 133)]
    assert day1.digest is None, "the first crawl is a baseline, not 133 alerts"
    # Stored URLs are the real HKMA ones, never the mirror's.
    assert table(db_path, "SELECT count(*) FROM documents WHERE url LIKE '%127.0.0.1%'") == [(0,)]

    use_day(site, 2)
    day2 = run(config, db_path)
    assert day2.exit_status == ExitStatus.OK
    assert events(db_path, day2.run_id) == DAY2_EVENTS
    removed = ROW_PREFIX + (
        "https://www.hkma.gov.hk/media/eng/doc/key-functions/banking-stability/aml-cft/"
        "Gudiance_Paper_Tax_20150331.pdf"
    )
    assert table(db_path, "SELECT status FROM documents WHERE id = ?", [removed]) == [("removed",)]
    # History keeps both titles of the amended circular.
    amended = "rss:circulars|https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN"
    titles = [
        t
        for (t,) in table(
            db_path, "SELECT title FROM versions WHERE document_id = ? ORDER BY id", [amended]
        )
    ]
    assert titles == [
        "Generative Artificial Intelligence Sandbox: Second Cohort Annex: Arrangement for the "
        "Second Cohort of Generative A.I. Sandbox (“Sandbox”)",
        "Generative Artificial Intelligence Sandbox: Second Cohort Annex: Arrangement for the "
        "Second Cohort of Generative AI Sandbox",
    ]
    # The digest holds day 2's 11 events, in all three forms.
    assert day2.digest is not None
    digest_files = sorted(p.suffix for p in (tmp_path / "digests").iterdir())
    assert digest_files == [".eml", ".html", ".txt"]
    text = (tmp_path / "digests").glob("*.txt").__next__().read_text(encoding="utf-8")
    assert text.startswith("HKMA tracker: 11 changes (7 new, 3 changed, 1 removed)")
    # Queued for the (default) subscriber and sent as one message; nothing waits.
    assert table(db_path, "SELECT count(*) FROM outbox_items WHERE message IS NULL") == [(0,)]
    assert table(db_path, "SELECT kind, status FROM messages") == [("digest", "sent")]

    again = run(config, db_path)
    assert again.exit_status == ExitStatus.OK
    assert events(db_path, again.run_id) == set(), "an unchanged re-run produces no events"
    assert again.digest is None


def test_a_failing_feed_is_unhealthy_and_leaves_its_documents_alone(site, config, db_path):
    run(config, db_path)
    before = table(db_path, "SELECT id, content_hash, status FROM documents ORDER BY id")
    use_day(site, 2)
    site.overrides[page_path(FEED_URL.format("circulars"))] = Override(status=503, body=b"busy")
    site.overrides[page_path(DEMO_PAGE)] = Override(status=500, body=b"oops")

    report = run(config, db_path)
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    rss, pages = report.plans
    assert not rss.healthy and "rss_circulars.xml: HTTP 503" in rss.reason
    assert not pages.healthy and "HTTP 500" in pages.reason
    got = events(db_path, report.run_id)
    assert not any(doc.startswith(("rss:circulars|", "pages:")) for _, doc, _ in got)
    # The healthy feeds still report their new items.
    assert (
        "new",
        "rss:speeches|https://www.hkma.gov.hk/eng/news-and-media/speeches/2026/07/20260727-1/",
        (),
    ) in got
    after = dict(
        (i, (h, s)) for i, h, s in table(db_path, "SELECT id, content_hash, status FROM documents")
    )
    for doc_id, content_hash, status in before:
        if doc_id.startswith(("rss:circulars|", "pages:")):
            assert after[doc_id] == (content_hash, status)
    sql = "SELECT source, healthy FROM source_runs WHERE run_id = ? ORDER BY source"
    assert table(db_path, sql, [report.run_id]) == [("pages", 0), ("rss", 0)]

    site.overrides.clear()  # recovery: what was missed is picked up
    recovered = run(config, db_path)
    assert recovered.exit_status == ExitStatus.OK
    assert {e[1] for e in events(db_path, recovered.run_id)} >= {
        ROW_PREFIX + "https://brdr.hkma.gov.hk/eng/doc-ldg/docId/20251210-1-EN",
        "rss:circulars|https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN",
    }


def _edit_page(site, edit):
    page = site.root / page_path(DEMO_PAGE).lstrip("/") / "index.html"
    page.write_text(edit(page.read_text(encoding="utf-8")), encoding="utf-8")


ROW = re.compile(
    r'<div class="content-wrapper multiple-wrapper filter-table-row".*?</tr></tbody></table></div></div>',
    re.DOTALL,
)


def test_a_redesigned_page_removes_nothing(site, config, db_path):
    run(config, db_path, sources=["pages"])
    _edit_page(site, lambda html: html.replace("template-table", "tpl-table"))

    report = run(config, db_path, sources=["pages"])
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    assert report.plans[0].reason.endswith("sharp drop: 1 items where the last healthy run had 84")
    assert events(db_path, report.run_id) == set()
    assert table(db_path, "SELECT count(*) FROM documents WHERE status = 'removed'") == [(0,)]


def test_a_sharp_drop_in_rows_is_unhealthy_not_mass_removal(site, config, db_path):
    run(config, db_path, sources=["pages"])
    rows = iter(range(1000))
    _edit_page(site, lambda html: ROW.sub(lambda m: m.group(0) if next(rows) < 20 else "", html))

    report = run(config, db_path, sources=["pages"])
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    assert "sharp drop: 21 items where the last healthy run had 84" in report.plans[0].reason
    assert table(db_path, "SELECT count(*) FROM documents WHERE status = 'removed'") == [(0,)]


def test_a_few_rows_gone_from_a_healthy_page_are_removals(site, config, db_path):
    run(config, db_path, sources=["pages"])
    rows = iter(range(1000))
    _edit_page(
        site, lambda html: ROW.sub(lambda m: "" if next(rows) in (3, 4) else m.group(0), html)
    )

    report = run(config, db_path, sources=["pages"])
    assert report.exit_status == ExitStatus.OK
    assert [kind for kind, _, _ in events(db_path, report.run_id)] == ["removed", "removed"]


def test_bodies_that_are_not_feeds_make_the_source_unhealthy(site, config, db_path):
    run(config, db_path, sources=["rss"])
    site.overrides[page_path(FEED_URL.format("circulars"))] = Override(
        body=b"<html><body>Maintenance</body></html>"
    )
    site.overrides[page_path(FEED_URL.format("speeches"))] = Override(body=b"")
    site.overrides[page_path(FEED_URL.format("guidelines"))] = Override(body=b"not xml at all")
    site.overrides[page_path(FEED_URL.format("consultations"))] = Override(
        body=b'<?xml version="1.0"?><rss version="2.0"><channel><title>HKMA</title></channel></rss>'
    )
    report = run(config, db_path, sources=["rss"])
    reason = report.plans[0].reason
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    assert "rss_circulars.xml: not an RSS document (root element <html>)" in reason
    assert "rss_speeches.xml: empty body" in reason
    assert "rss_guidelines.xml: not well-formed XML" in reason
    assert "rss_consultations.xml: 0 items where the last healthy run had 10" in reason
    assert events(db_path, report.run_id) == set()


def test_timeouts_and_refused_connections_are_reported_per_listing(site, config, db_path, tmp_path):
    site.overrides[page_path(FEED_URL.format("circulars"))] = Override(body=b"", delay=5)
    report = run(config, db_path, sources=["rss"])
    assert "rss_circulars.xml: unreachable: timed out" in report.plans[0].reason
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY

    closed = dataclasses.replace(config, mirrors={"https://www.hkma.gov.hk": "http://127.0.0.1:9"})
    report = run(closed, db_path, sources=["pages"])
    assert report.plans[0].reason.endswith("unreachable: connection refused")


def test_redirects_off_hkma_hosts_are_refused(site, config, db_path):
    # 127.0.0.2 is loopback but neither an HKMA host nor a configured mirror.
    elsewhere = site.base_url.replace("127.0.0.1", "127.0.0.2") + "/elsewhere"
    site.overrides[page_path(DEMO_PAGE)] = Override(status=302, location=elsewhere)
    report = run(config, db_path, sources=["pages"])
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    assert "refused" in report.plans[0].reason
    assert "not a regulator's host" in report.plans[0].reason


def test_dry_run_stores_nothing(site, config, db_path):
    report = run(config, db_path, dry_run=True)
    assert report.run_id is None
    assert len(report.events) == 133
    assert table(db_path, "SELECT count(*) FROM documents") == [(0,)]
    assert table(db_path, "SELECT count(*) FROM runs") == [(0,)]


def test_oversized_responses_are_dropped_and_reported(site, config, db_path):
    small = dataclasses.replace(
        config, crawl=dataclasses.replace(config.crawl, max_page_bytes=50_000)
    )
    report = run(small, db_path, sources=["pages"])  # the real page is ~195 KB
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    assert report.plans[0].reason.endswith("larger than the 50000-byte limit")
    assert table(db_path, "SELECT count(*) FROM documents") == [(0,)]


def test_a_hung_crawl_is_killed_and_reported(site, config, db_path):
    site.overrides[page_path(DEMO_PAGE)] = Override(delay=8)
    slow = dataclasses.replace(
        config, crawl=dataclasses.replace(config.crawl, timeout=30, process_timeout=2)
    )
    report = run(slow, db_path, sources=["pages"])
    assert report.exit_status == ExitStatus.SOURCE_UNHEALTHY
    assert report.plans[0].reason.endswith(
        "no result: crawl ended (crawl process killed after 2 s)"
    )
    assert table(db_path, "SELECT status FROM runs") == [("degraded",)]
