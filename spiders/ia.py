"""The Insurance Authority: circulars on regulatory matters (one page a year), guidelines (by
GL code) and press releases, all server-rendered HTML.

Shapes from ../shared/hk-regulators.md §2 (a scraper's spec and public crawler configs; not
checked against the live site). Circulars carry no number: a circular is its PDF's path, and
the other PDFs of its row are its annexes. A guideline is its GL code ("GL3"); a revision comes
under a new file name (`GL3_ENG_202505.pdf`), which is a new version of the same guideline; a
repealed one is listed without a link. The IA answers bots with 403: that is a failed listing
(the base spider's "HTTP 403"), never "no circulars".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import scrapy
from bs4 import BeautifulSoup, Tag
from scrapy.http import Response

from spiders.base import HkmaSpider, ListingError
from spiders.items import DocumentItem
from spiders.normalize import HONG_KONG, clean_text, normalize_url, parse_listing_date

YEAR = "{year}"  # in the circulars listing's URL: one page a year
GL_CODE = re.compile(r"^\s*(GL\s?\d+[A-Z]?)\s*[:：]?\s*", re.IGNORECASE)
EFFECTIVE = re.compile(r"effective (from|until|on) (\d{1,2} \w+ \d{4})", re.IGNORECASE)
PRESS_ID = re.compile(r"/press_releases/(\d{8})(?:_(\d+))?\.html$")


def day(text: str) -> str | None:
    """A date as the IA writes it ("15 January 2025", "15 Jan 2025"), in ISO form."""
    found = parse_listing_date(text)
    return found.isoformat() if found else None


def _path(url: str) -> str:
    return urlsplit(url).path


def circular_items(body: bytes, page: str, listing: str) -> list[DocumentItem]:
    """Every row of a year page with a date and a PDF: the first PDF is the circular (its
    link text the title), the others its annexes."""
    soup = BeautifulSoup(body, "lxml")
    items: list[DocumentItem] = []
    for row in soup.find_all("tr"):
        cells = row.find_all("td")
        links = [a for a in row.find_all("a", href=True) if _path(str(a["href"])).endswith(".pdf")]
        issued = day(cells[0].get_text(" ")) if cells else None
        if not links or not issued:
            continue
        main, *annexes = links
        url = normalize_url(str(main["href"]), page)
        title = clean_text(main.get_text(" "))
        key = _path(url)
        items.append(
            DocumentItem(
                source="ia",
                listing=listing,
                key=key,
                title=title or key.rsplit("/", 1)[-1],
                url=url,
                date=issued,
                extra={
                    "feed": "circulars",
                    "page": page,
                    "document_url": url,
                    "annexes": [clean_text(a.get_text(" ")) for a in annexes],
                },
            )
        )
        for annex in annexes:
            annex_url = normalize_url(str(annex["href"]), page)
            items.append(
                DocumentItem(
                    source="ia",
                    listing=listing,
                    key=_path(annex_url),
                    title=clean_text(annex.get_text(" ")) or f"Annex to {title}",
                    url=url,  # one publication with its circular
                    date=issued,
                    extra={"feed": "circulars", "annex_of": key, "document_url": annex_url},
                )
            )
    return items


def guideline_items(body: bytes, listing: str) -> list[DocumentItem]:
    """Rows of the guidelines table, keyed by GL code: the main PDF, the sub-documents (Q&As,
    FAQs, interpretation notes) by caption, the effective dates the cell states, and
    `repealed` for a row without a link."""
    soup = BeautifulSoup(body, "lxml")
    items = []
    for cell in soup.select('table.guideline tbody tr td[data-title="Guidelines"]'):
        if not isinstance(cell, Tag):
            continue
        main = cell.find("a", href=True)
        label = clean_text(main.get_text(" ") if main else cell.get_text(" "))
        code = GL_CODE.match(label)
        if not code:
            continue
        gl = code.group(1).upper().replace(" ", "")
        subs = cell.select("div.subitem li a[href]")
        url = normalize_url(str(main["href"]), listing) if main else ""
        effective = {
            kind.lower(): day(when) for kind, when in EFFECTIVE.findall(cell.get_text(" "))
        }
        items.append(
            DocumentItem(
                source="ia",
                listing=listing,
                key=gl,
                title=label,
                url=url or f"{listing}#{gl}",
                date=effective.get("from") or effective.get("on"),
                extra={
                    "feed": "guidelines",
                    "gl_code": gl,
                    "status": "current" if main else "repealed",
                    # A repealed guideline links no file: nothing to read, nothing waiting.
                    "document_url": url or None,
                    "sub_documents": [clean_text(a.get_text(" ")) for a in subs],
                    "effective_until": effective.get("until"),
                    "links": [{"key": f"ia:{gl}", "kind": "is", "evidence": "IA guideline code"}],
                },
            )
        )
    if not items:
        raise ListingError("no guideline rows (table.guideline with GL codes) on the page")
    return items


def press_items(body: bytes, listing: str) -> list[DocumentItem]:
    """Links to press releases (`YYYYMMDD.html`, `YYYYMMDD_1.html` for a second that day)."""
    soup = BeautifulSoup(body, "lxml")
    items, seen = [], set()
    for link in soup.find_all("a", href=True):
        url = normalize_url(str(link["href"]), listing)
        match = PRESS_ID.search(_path(url))
        if not match or url in seen:
            continue
        seen.add(url)
        stamp = match.group(1)
        items.append(
            DocumentItem(
                source="ia",
                listing=listing,
                key=stamp + (f"_{match.group(2)}" if match.group(2) else ""),
                title=clean_text(link.get_text(" ")),
                url=url,
                date=f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:]}",
                extra={"feed": "press-release", "document_url": url},
            )
        )
    if not items:
        raise ListingError("no press release links on the page")
    return items


class IaSpider(HkmaSpider):
    """Listings: `circulars` (a URL with `{year}`: this year's page and the years before it,
    option `years`, default 2), `guidelines`, `press-releases`."""

    name = "ia"
    removals_allowed = False  # layouts are unverified: a row gone is not taken as withdrawn

    def __init__(self, listings: dict[str, str], options: dict[str, Any] | None = None) -> None:
        super().__init__(listings, options)
        this_year = datetime.now(HONG_KONG).year
        self.years = [this_year - n for n in range(int(self.options.get("years", 2)))]
        self.collected: dict[str, list[DocumentItem]] = {}

    def first_request(self, name: str, listing: str) -> scrapy.Request:
        if YEAR in listing:
            return self.year_page(name, listing, 0)
        return self.listing_request(name, listing, listing)

    def year_page(self, name: str, listing: str, index: int) -> scrapy.Request:
        year = self.years[index]
        url = listing.replace(YEAR, str(year))
        meta = {"year_index": index, "page_name": f"the {year} page"}
        return self.listing_request(name, listing, url, meta=meta)

    def extract(self, response: Response, name: str) -> Iterable[DocumentItem | scrapy.Request]:
        listing = response.meta["listing"]
        if name == "guidelines":
            return guideline_items(response.body, listing)
        if name == "press-releases":
            return press_items(response.body, listing)
        index = response.meta["year_index"]
        found = circular_items(response.body, response.url, listing)
        if index == 0 and not found and not BeautifulSoup(response.body, "lxml").find("table"):
            raise ListingError(f"no table on the {self.years[0]} circulars page")
        self.collected.setdefault(listing, []).extend(found)
        if index + 1 < len(self.years):
            return [self.year_page(name, listing, index + 1)]
        return self.collected.pop(listing)
