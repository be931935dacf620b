"""Parsing the HKMA RSS feeds (recorded from real items) without a network."""

import pytest
from conftest import FEED_URL
from scrapy.http import Request, XmlResponse

from spiders.base import ListingError
from spiders.rss import RssSpider, parse_feed
from tracker.demo import DEMO_SITE

FEEDS = DEMO_SITE / "day2" / "eng/other-information/rss"


def feed(name):
    return (FEEDS / f"rss_{name}.xml").read_bytes()


def rss(*items: str) -> bytes:
    body = "".join(f"<item>{i}</item>" for i in items)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{body}</channel></rss>'.encode()


def test_circulars_feed_collapses_the_literal_repeat():
    items = parse_feed(feed("circulars"), FEED_URL.format("circulars"), "circulars")
    assert len(items) == 11  # 12 <item>s, one repeated literally
    assert len({i.key for i in items}) == 11
    first = items[0]
    assert first.title == "Joint Circular on the Cross-Sectoral Cyber Mapping Exercise"
    assert first.url == "https://brdr.hkma.gov.hk/eng/doc-ldg/current/20260729-1-EN"
    assert first.date == "2026-07-29"
    assert first.key == "circulars|https://brdr.hkma.gov.hk/eng/doc-ldg/current/20260729-1-EN"


def test_legco_items_share_a_link_and_are_keyed_by_title_with_absolute_links():
    url = FEED_URL.format("legislative-council-issues")
    items = parse_feed(
        feed("legislative-council-issues"), url, "legislative-council-issues", key_by_title=True
    )
    assert len(items) == 2
    assert {i.url for i in items} == {
        "https://www.hkma.gov.hk/eng/data-publications-and-research/legislative-council-issues"
    }
    assert items[0].extra["links"][0] == (
        "https://www.hkma.gov.hk/media/eng/doc/about-the-hkma/legislative-council-issues/20260504e2.pdf"
    )
    assert "Powerpoint Presentation on 4 May 2026" in items[0].text
    # Keyed by link alone, the second would collapse into the first.
    assert (
        len(parse_feed(feed("legislative-council-issues"), url, "legislative-council-issues")) == 1
    )


def test_pdf_size_notes_are_stripped_and_dates_read_in_hong_kong_time():
    items = parse_feed(
        rss(
            "<title>Measures against scams  (PDF File, 154.7 KB)</title>"
            "<link>/media/eng/doc/key-information/guidelines-and-circular/2024/20241220e1.pdf</link>"
            "<pubDate>Thu, 19 Dec 2024 16:00:00 +0000</pubDate>"
        ),
        FEED_URL.format("circulars"),
        "circulars",
    )
    assert items[0].title == "Measures against scams"
    assert items[0].date == "2024-12-20"
    assert items[0].url.startswith("https://www.hkma.gov.hk/media/")


def test_items_without_link_are_skipped():
    assert parse_feed(rss("<title>no link</title>"), FEED_URL.format("circulars"), "c") == []


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<rss version="2.0"><channel><item><title>&lol2;</title><link>https://www.hkma.gov.hk/</link></item></channel></rss>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><item><title>&xxe;</title><link>https://www.hkma.gov.hk/</link></item></channel></rss>"""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (BILLION_LAUGHS, "unsafe XML refused"),
        (EXTERNAL_ENTITY, "unsafe XML refused"),
        (
            b"<html><body>Service unavailable</body></html>",
            "not an RSS document (root element <html>)",
        ),
        (b"<rss version='2.0'><channel>", "not well-formed XML"),
    ],
    ids=["entity-expansion", "external-entity", "html", "truncated"],
)
def test_bad_feeds_raise_a_listing_error(body, reason):
    with pytest.raises(ListingError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_feed(body, FEED_URL.format("circulars"), "circulars")


def test_spider_yields_items_then_one_outcome_per_listing():
    url = FEED_URL.format("circulars")
    spider = RssSpider(listings={"circulars": url})
    request = Request(url, meta={"listing": url})
    response = XmlResponse(url=url, body=feed("circulars"), request=request)
    out = list(spider.parse_listing(response, "circulars"))
    assert len(out) == 12
    outcome = out[-1]
    assert (outcome.ok, outcome.items, outcome.removals_allowed) == (True, 11, False)

    broken = XmlResponse(url=url, body=b"<html/>", request=request)
    (failed,) = spider.parse_listing(broken, "circulars")
    assert (failed.ok, failed.reason) == (False, "not an RSS document (root element <html>)")
