"""The HKMA RSS feeds (press releases, circulars, speeches, guidelines, consultations, LegCo)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from xml.etree.ElementTree import Element, ParseError

from bs4 import BeautifulSoup
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from scrapy.http import Response

from spiders.base import HkmaSpider, ListingError
from spiders.items import DocumentItem
from spiders.normalize import (
    clean_text,
    clean_title,
    normalize_url,
    parse_rss_date,
    pdf_size_note,
)

logger = logging.getLogger(__name__)


def _child_text(element: Element, tag: str) -> str:
    child = element.find(tag)
    return (child.text or "") if child is not None else ""


def parse_feed(
    body: bytes, feed_url: str, feed_name: str, key_by_title: bool = False
) -> list[DocumentItem]:
    """Items of one RSS 2.0 feed, keyed by normalised link (and title where asked), deduplicated.

    The feeds carry no guid. `key_by_title` is for feeds that give many items one link (LegCo).
    Raises ListingError when the body is not a safe, well-formed RSS document.
    """
    try:
        root = fromstring(body, forbid_dtd=True)
    except DefusedXmlException as error:
        raise ListingError(f"unsafe XML refused: {type(error).__name__}") from error
    except ParseError as error:
        raise ListingError(f"not well-formed XML: {error}") from error
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ListingError(f"not an RSS document (root element <{root.tag}>)")

    items: dict[str, DocumentItem] = {}
    for element in channel.iter("item"):
        link = clean_text(_child_text(element, "link"))
        raw_title = _child_text(element, "title")
        title = clean_title(raw_title)
        if not link:
            logger.warning("%s: item without a link skipped: %r", feed_url, title)
            continue
        url = normalize_url(link, feed_url)
        key = f"{feed_name}|{url}" + (f"|{title}" if key_by_title else "")
        if key in items:  # the circulars feed sometimes repeats an item literally
            continue
        published = parse_rss_date(_child_text(element, "pubDate"))
        extra: dict[str, object] = {"feed": feed_name}
        if not key_by_title:  # LegCo items all link one index page: no document of their own
            extra["document_url"] = url
        if size := pdf_size_note(raw_title):
            extra["pdf_size"] = size
        description = _child_text(element, "description")
        text = ""
        if "<" in description:
            soup = BeautifulSoup(description, "lxml")
            text = clean_text(soup.get_text(" "))
            links = [normalize_url(str(a["href"]), feed_url) for a in soup.find_all("a", href=True)]
            if links:
                extra["links"] = links
        else:
            text = clean_text(description)
        items[key] = DocumentItem(
            source="rss",
            listing=feed_url,
            key=key,
            title=title,
            url=url,
            date=published.isoformat() if published else None,
            text=text,
            extra=extra,
        )
    return list(items.values())


class RssSpider(HkmaSpider):
    """One request per configured feed. Feeds are sliding windows: nothing is ever 'removed'."""

    name = "rss"
    removals_allowed = False

    def extract(self, response: Response, name: str) -> Iterable[DocumentItem]:
        key_by_title = name in self.options.get("key_by_title", ())
        return parse_feed(response.body, response.meta["listing"], name, key_by_title)
