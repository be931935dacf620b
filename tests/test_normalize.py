"""Normalising what HKMA publishes: titles, links, dates (table-driven)."""

from datetime import date

import pytest

from spiders.normalize import (
    clean_title,
    is_hkma_host,
    normalize_url,
    parse_listing_date,
    parse_rss_date,
)

BASE = "https://www.hkma.gov.hk/eng/other-information/rss/rss_legislative-council-issues.xml"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (
            "Measures to protect bank customers  (PDF File, 154.7 KB)",
            "Measures to protect bank customers",
        ),
        ("Insights for design  (PDF File, 3.1 MB)", "Insights for design"),
        ("Old circular (PDF file, 136KB)", "Old circular"),
        ("Main (PDF File, 1.2 MB) Annex: Arrangement", "Main Annex: Arrangement"),
        (
            "Guidance\u00a0on  combating\n high-end money laundering",
            "Guidance on combating high-end money laundering",
        ),
        ("PDF File guidance stays", "PDF File guidance stays"),
    ],
    ids=["kb", "mb", "old-style", "mid-title", "whitespace", "no-size-note"],
)
def test_clean_title(raw, clean):
    assert clean_title(raw) == clean


@pytest.mark.parametrize(
    ("href", "url"),
    [
        (
            "/media/eng/doc/about-the-hkma/legislative-council-issues/20260504e2.pdf",
            "https://www.hkma.gov.hk/media/eng/doc/about-the-hkma/legislative-council-issues/20260504e2.pdf",
        ),
        ("//www.hkma.gov.hk/eng/key-functions/", "https://www.hkma.gov.hk/eng/key-functions/"),
        ("http://WWW.HKMA.GOV.HK/eng/a/#top", "https://www.hkma.gov.hk/eng/a/"),
        (
            "https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN ",
            "https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250428-3-EN",
        ),
        (
            "https://www.info.gov.hk/gia/general/202607/07/P1.htm",
            "https://www.info.gov.hk/gia/general/202607/07/P1.htm",
        ),
        (
            "https://api.hkma.gov.hk/public/press-releases?lang=en&offset=0",
            "https://api.hkma.gov.hk/public/press-releases?lang=en&offset=0",
        ),
        ("https://[www.hkma.gov.hk/x.pdf ", "https://[www.hkma.gov.hk/x.pdf"),
        ("https://www.hkma.gov.hk:99999/x.pdf", "https://www.hkma.gov.hk:99999/x.pdf"),
        ("mailto:aml@hkma.gov.hk", "mailto:aml@hkma.gov.hk"),
        # A line break or tab inside a link would end an email header or a calendar line.
        ("/media/eng/x\n.pdf\r\tX-Evil: 1", "https://www.hkma.gov.hk/media/eng/x.pdfX-Evil: 1"),
    ],
    ids=[
        "relative",
        "protocol-relative",
        "http-case-fragment",
        "trailing-space",
        "other-host",
        "query-kept",
        "bad-ipv6-kept-as-written",
        "bad-port-kept-as-written",
        "mailto-kept",
        "control-characters-dropped",
    ],
)
def test_normalize_url(href, url):
    assert normalize_url(href, BASE) == url


@pytest.mark.parametrize(
    ("raw", "day"),
    [
        ("Fri, 30 Jan 2026 00:00:00 +0800", date(2026, 1, 30)),
        ("Thu, 29 Jan 2026 16:00:00 +0000", date(2026, 1, 30)),  # HK midnight written in UTC
        ("Fri, 30 Jan 2026 23:30:00 +0800", date(2026, 1, 30)),
        ("10 Apr 2026", date(2026, 4, 10)),  # seen once in the feeds
        ("someday", None),
        ("", None),
    ],
)
def test_parse_rss_date_gives_the_hong_kong_date(raw, day):
    assert parse_rss_date(raw) == day


@pytest.mark.parametrize(
    ("raw", "day"),
    [
        ("09 Sep 2024", date(2024, 9, 9)),
        ("2 May 2019", date(2019, 5, 2)),
        ("10 April 2025", date(2025, 4, 10)),
        ("28.12.01", date(2001, 12, 28)),
        ("2025-04-10", date(2025, 4, 10)),
        ("Sep 2024", None),
    ],
)
def test_parse_listing_date(raw, day):
    assert parse_listing_date(raw) == day


@pytest.mark.parametrize(
    ("host", "hkma"),
    [
        ("www.hkma.gov.hk", True),
        ("brdr.hkma.gov.hk", True),
        ("HKMA.GOV.HK", True),
        ("hkma.gov.hk.evil.com", False),
        ("evilhkma.gov.hk", False),
        ("127.0.0.1", False),
    ],
)
def test_is_hkma_host(host, hkma):
    assert is_hkma_host(host) is hkma
