"""The Securities and Futures Commission: its e-Distribution JSON API (circulars with their
appendices, consultation papers with their conclusions, news including enforcement), its RSS
feeds as the cheap "anything new?" probe, and its codes and guidelines pages.

Shapes from ../shared/hk-regulators.md §1 (research notes and public clients; not checked
against the live site): searches are `POST {api}/{stream}/search` with `lang`, `category`,
`year`, a 0-based `pageNo` and `pageSize`, paged until a short page; "items empty while total
> 0" is a failure, never "no circulars". The reference number (`23EC52`, `25CP11`, `26PR121`) is
the key in every language. Codes and guidelines are rows `tr[data-code-guideline-id]` of
server-rendered pages; a PDF's `?rev=` hash marks a republication, not a new document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import scrapy
from bs4 import BeautifulSoup
from defusedxml import ElementTree
from scrapy.http import Response

from spiders.base import HkmaSpider, ListingError
from spiders.items import DocumentItem
from spiders.normalize import HONG_KONG, clean_text, normalize_url, parse_listing_date

API = "https://apps.sfc.hk/edistributionWeb/api"
GATEWAY = "https://apps.sfc.hk/edistributionWeb/gateway/EN"
# Each API stream: its path, the field its items are sorted and dated by, their key field,
# and the search's category ("" for consultations: ../shared/hk-regulators.md §1.2).
STREAMS = {
    "circulars": {"path": "circular", "date": "releasedDate", "sort": "issueDate", "key": "refNo"},
    "consultations": {
        "path": "consultation",
        "date": "cpIssueDate",
        "sort": "cpIssueDate",
        "key": "cpRefNo",
    },
    "news": {"path": "news", "date": "issueDate", "sort": "issueDate", "key": "newsRefNo"},
}
PAGES = ("codes", "guidelines")  # listings that are www.sfc.hk pages, not API searches
# postDocType: the circular's category as the UI names it (A1, read from its locale files).
CATEGORIES = {
    100: "Product authorization",
    110: "Intermediaries supervision",
    120: "Licensing",
    130: "External relations",
    140: "Listings & takeovers",
    150: "Market infrastructure & trading",
    160: "Takeovers",
    170: "Enforcement",
    180: "Disclosure of interests",
    190: "Unlisted shares & debentures",
    200: "Virtual asset trading platforms",
    900: "Others",
}
MAX_PAGES = 100  # of one stream and year: a pager that never ends stops here, unhealthy
REF_NO = re.compile(r"^[0-9A-Z]{2,12}$")


def search_body(stream: str, year: int | str, page: int, page_size: int) -> dict[str, Any]:
    """The search request: `lang` is required (500 without it), `year` and `category` too
    (`{"lang": "EN"}` alone lists nothing)."""
    body: dict[str, Any] = {
        "lang": "EN",
        "category": "" if stream == "consultations" else "all",
        "year": year,
        "pageNo": page,
        "pageSize": page_size,
        "sort": {"field": STREAMS[stream]["sort"], "order": "desc"},
    }
    if stream == "news":
        body["month"] = "all"
    return body


def api_url(stream: str, endpoint: str, **query: str) -> str:
    return f"{API}/{STREAMS[stream]['path']}/{endpoint}?" + urlencode({"lang": "EN", **query})


def hong_kong_day(value: Any) -> str | None:
    """The Hong Kong date of an API time ("2026-02-11T16:10:23.117", no zone: read as HKT, as
    the RSS shows the same items at +0800)."""
    text = clean_text(str(value or ""))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(HONG_KONG)
    return moment.date().isoformat()


def _ref(value: Any) -> str:
    ref = clean_text(str(value or "")).upper()
    return ref if REF_NO.match(ref) else ""


def _links(ref: str, **more: str) -> list[dict[str, str]]:
    """Keys the tracker links the document to: its reference (`rule sfc:23EC52`)."""
    found = [{"key": f"sfc:{ref}", "kind": "is", "evidence": "SFC reference number"}]
    found += [{"key": key, "kind": kind, "evidence": "SFC record"} for kind, key in more.items()]
    return found


def circular_items(listing: str, record: dict[str, Any]) -> list[DocumentItem]:
    """A circular and each of its appendices (one publication: the circular's page)."""
    ref = _ref(record.get("refNo"))
    if not ref:
        return []
    public = clean_text(str(record.get("publicUrl") or "")) or f"doc?refNo={ref}"
    url = normalize_url(public, f"{GATEWAY}/circular/")
    day = hong_kong_day(record.get("releasedDate"))
    appendices = [a for a in record.get("appendixDocList") or [] if isinstance(a, dict)]
    captions = [clean_text(str(a.get("caption") or "")) for a in appendices]
    code = record.get("postDocType")
    category = CATEGORIES.get(code, str(code or "")) if isinstance(code, int) else str(code or "")
    items = [
        DocumentItem(
            source="sfc",
            listing=listing,
            key=ref,
            title=clean_text(record.get("title")),
            url=url,
            date=day,
            extra={
                "feed": "circulars",
                "ref_no": ref,
                # The category is tag evidence, as BRDR's topics are (taxonomy `brdr_topics`).
                "topics": [category] if category else [],
                "appendices": captions,
                "document_url": api_url("circulars", "openFile", refNo=ref),
                "links": _links(ref),
            },
        )
    ]
    for index, caption in enumerate(captions):
        items.append(
            DocumentItem(
                source="sfc",
                listing=listing,
                key=f"{ref}/appendix-{index + 1}",
                title=caption or f"Appendix {index + 1} to circular {ref}",
                url=url,
                date=day,
                extra={
                    "feed": "circulars",
                    "appendix_of": ref,
                    "document_url": api_url(
                        "circulars", "openAppendix", refNo=ref, appendix=str(index)
                    ),
                    "links": [
                        {
                            "key": f"sfc:{ref}",
                            "kind": "appendix-of",
                            "evidence": "SFC appendixDocList",
                        }
                    ],
                },
            )
        )
    return items


def consultation_items(listing: str, record: dict[str, Any]) -> list[DocumentItem]:
    """A consultation paper and, once published, its conclusions (a document of its own,
    numbered apart, `25CP11` -> `25CC7`, and in the paper's record)."""
    cp = _ref(record.get("cpRefNo"))
    if not cp:
        return []
    closes = hong_kong_day(record.get("commentActualDeadline") or record.get("commentDeadline"))
    cc = _ref(record.get("ccRefNo"))
    status = "concluded" if cc else ("closed" if record.get("commentPeriodClosed") else "open")
    items = [
        DocumentItem(
            source="sfc",
            listing=listing,
            key=cp,
            title=clean_text(record.get("cpTitle")),
            url=f"{GATEWAY}/consultation/doc?refNo={cp}",
            date=hong_kong_day(record.get("cpIssueDate")),
            extra={
                "feed": "consultations",
                "ref_no": cp,
                "consultation": {
                    "opens": hong_kong_day(record.get("cpIssueDate")),
                    "closes": closes,
                    "status": status,
                    "stated_in": "SFC consultation record",
                },
                "document_url": api_url("consultations", "openFile", refNo=cp),
                "links": _links(cp),
            },
        )
    ]
    if cc:
        items.append(
            DocumentItem(
                source="sfc",
                listing=listing,
                key=cc,
                title=clean_text(record.get("ccTitle")) or f"Consultation conclusions {cc}",
                url=f"{GATEWAY}/consultation/doc?refNo={cp}&type=conclusion",
                date=hong_kong_day(record.get("ccIssueDate")),
                extra={
                    "feed": "consultations",
                    "ref_no": cc,
                    "conclusions_of": cp,
                    # The conclusions PDF is asked for by the paper's number (A1: 25CP6 gives
                    # the 25CC7 PDF).
                    "document_url": api_url(
                        "consultations", "openFile", refNo=cp, type="conclusion"
                    ),
                    # `doc:sfc:<cp>`: the paper's own key, so both are one rule record.
                    "links": _links(
                        cc, **{"conclusions-of": f"sfc:{cp}", "names": f"doc:sfc:{cp}"}
                    ),
                },
            )
        )
    return items


def news_item(listing: str, record: dict[str, Any]) -> list[DocumentItem]:
    """A press release; an enforcement one names the parties (`targetCeList`). News has no
    PDF: its title is what is tracked."""
    ref = _ref(record.get("newsRefNo") or record.get("refNo"))
    if not ref:
        return []
    parties = [
        clean_text(str(t.get("ceName") or ""))
        for t in record.get("targetCeList") or []
        if isinstance(t, dict) and not t.get("masked")
    ]
    return [
        DocumentItem(
            source="sfc",
            listing=listing,
            key=ref,
            title=clean_text(record.get("title")),
            url=f"{GATEWAY}/news-and-announcements/news/doc?refNo={ref}",
            date=hong_kong_day(record.get("issueDate")),
            extra={
                "feed": "news",
                "ref_no": ref,
                "news_type": clean_text(str(record.get("newsType") or "")),
                "parties": [p for p in parties if p],
                "links": _links(ref),
            },
        )
    ]


ITEMS = {"circulars": circular_items, "consultations": consultation_items, "news": news_item}


def parse_search(body: bytes, stream: str) -> tuple[list[dict[str, Any]], int]:
    """The records of one search page and the announced total."""
    try:
        data = json.loads(body)
    except ValueError as error:
        raise ListingError(f"not JSON: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ListingError(f"no items in the {stream} search response")
    total = data.get("total")
    return [r for r in data["items"] if isinstance(r, dict)], int(total or 0)


def rss_times(body: bytes) -> list[datetime]:
    """The publication times of an RSS feed's items (the SFC's carry HKT to the second)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        raise ListingError(f"the probe feed is not XML: {error}") from error
    times = []
    for node in root.iter("pubDate"):
        try:
            times.append(parsedate_to_datetime(clean_text(node.text)))
        except (TypeError, ValueError):
            continue
    return times


def page_day(text: str) -> str | None:
    """A date as the codes and guidelines pages write it: "2 Jan 2026", or a month alone,
    "Apr 2013" (its first day)."""
    found = parse_listing_date(text)
    if found is None:
        found = parse_listing_date(f"1 {clean_text(text)}")
    return found.isoformat() if found else None


def strip_rev(url: str) -> str:
    """A PDF link without its `?rev=` republication hash (a sign, not identity)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=""))


def guideline_items(body: bytes, listing: str, kind: str) -> list[DocumentItem]:
    """Rows of a codes or guidelines page: only rows with `data-code-guideline-id` (a naive
    table parse finds twice as many rows); the latest PDF, and the earlier versions listed in
    the row's popup, as the rule's timeline."""
    soup = BeautifulSoup(body, "lxml")
    items = []
    for row in soup.select("tr[data-code-guideline-id]"):
        key = clean_text(str(row.get("data-code-guideline-id") or ""))
        cells = row.find_all("td")
        if not key or not cells:
            continue
        link = cells[1].find("a", href=True) if len(cells) > 1 else None
        href = normalize_url(str(link["href"]), listing) if link else ""
        previous = []
        popup = row.select_one("[data-popup-id]")
        target = str(popup.get("data-popup-id") or "").lstrip("#") if popup else ""
        block = soup.find(id=target) if target else None
        for old in block.find_all("a", href=True) if block else []:
            previous.append(
                {
                    "dates": clean_text(old.get_text()),
                    "from": page_day(str(old.get("title") or "")),
                    "url": strip_rev(normalize_url(str(old["href"]), listing)),
                }
            )
        items.append(
            DocumentItem(
                source="sfc",
                listing=listing,
                key=f"{kind}/{key}",
                title=clean_text(cells[0].get_text(" ")),
                url=strip_rev(href) or listing,
                date=page_day(str(link.get("title") or "")) if link else None,
                extra={
                    "feed": kind,
                    "topics": [
                        clean_text(topic.replace("_", " "))
                        for topic in str(row.get("data-code-guideline-topics") or "").split()
                    ],
                    "document_url": href,
                    "pdf_rev": dict(parse_qsl(urlsplit(href).query)).get("rev", ""),
                    "previous_versions": previous,
                    "links": [
                        {"key": f"sfc:{kind}/{key}", "kind": "is", "evidence": "SFC page row id"}
                    ],
                },
            )
        )
    if not items:
        raise ListingError(f"no rows with data-code-guideline-id on the {kind} page")
    return items


class SfcSpider(HkmaSpider):
    """Listings: `circulars`, `consultations`, `news` (API searches) and `codes`, `guidelines`
    (pages). Options: `page_size` (100), `years` (how many years back a full read goes, this
    one included), `since` (an ISO time: an incremental run, which reads a stream only when its
    probe feed has an item at or after it, and then only the years since), `probes` (stream ->
    its RSS feed URL)."""

    name = "sfc"
    removals_allowed = False  # the API lists history; a page's rows are checked by their count

    def __init__(self, listings: dict[str, str], options: dict[str, Any] | None = None) -> None:
        super().__init__(listings, options)
        self.page_size = int(self.options.get("page_size", 100))
        self.since: str | None = self.options.get("since")
        self.probes: dict[str, str] = dict(self.options.get("probes") or {})
        this_year = datetime.now(HONG_KONG).year
        first = this_year - int(self.options.get("years", 3)) + 1
        if self.since:
            first = max(first, date.fromisoformat(self.since[:10]).year)
        self.years = list(range(this_year, first - 1, -1))
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.comparable = self.since is None

    def reads_whole(self, listing: str) -> bool:
        # Pages are read whole every time; an incremental API read is a slice.
        return self.since is None or listing.startswith("https://www.sfc.hk/")

    def first_request(self, name: str, listing: str) -> scrapy.Request:
        if name in PAGES:
            return self.listing_request(name, listing, listing)
        probe = self.probes.get(name)
        if self.since and probe:
            return scrapy.Request(
                probe,
                callback=self.parse_probe,
                errback=self.probe_failed,
                cb_kwargs={"name": name, "listing": listing},
                meta={"listing": listing},
                dont_filter=True,
            )
        return self.search(name, listing, 0, 0)

    def search(self, name: str, listing: str, year_index: int, page: int) -> scrapy.Request:
        body = search_body(name, self.years[year_index], page, self.page_size)
        return self.listing_request(
            name,
            listing,
            listing,
            method="POST",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
            meta={
                "year_index": year_index,
                "page": page,
                "page_name": f"{self.years[year_index]}, page {page + 1}",
            },
        )

    def parse_probe(self, response: Response, name: str, listing: str) -> Iterable[Any]:
        """Read the stream only if its feed shows an item at or after `since`; a feed that
        cannot be read probes nothing, and the stream is read."""
        try:
            times = rss_times(response.body)
        except ListingError as error:
            self.logger.info("sfc: probe %s: %s; reading the API", response.url, error)
            yield self.search(name, listing, 0, 0)
            return
        since = datetime.fromisoformat(str(self.since))
        if since.tzinfo is None:
            since = since.replace(tzinfo=HONG_KONG)
        if not times or any(t >= since for t in times):
            yield self.search(name, listing, 0, 0)
            return
        self.crawler.stats.inc_value("sfc/probe_nothing_new")
        yield self.outcome(listing, True, status=response.status, items=0)

    def probe_failed(self, failure: Any) -> Iterable[scrapy.Request]:
        request = failure.request
        self.logger.info("sfc: probe %s failed; reading the API", request.url)
        name, listing = request.cb_kwargs["name"], request.cb_kwargs["listing"]
        yield self.search(name, listing, 0, 0)

    def extract(self, response: Response, name: str) -> Iterable[DocumentItem | scrapy.Request]:
        listing = response.meta["listing"]
        if name in PAGES:
            return guideline_items(response.body, listing, name)
        year_index, page = response.meta["year_index"], response.meta["page"]
        records, total = parse_search(response.body, name)
        year = self.years[year_index]
        if not records and total > 0:
            raise ListingError(f"{year}: page {page} has no items while the total is {total}")
        collected = self.records.setdefault(listing, [])
        collected.extend(records)
        if len(records) >= self.page_size:
            if page + 1 >= MAX_PAGES:
                raise ListingError(f"{year}: still full pages after {MAX_PAGES} pages (page cap)")
            return [self.search(name, listing, year_index, page + 1)]
        if year_index + 1 < len(self.years):
            return [self.search(name, listing, year_index + 1, 0)]
        items: list[DocumentItem] = []
        for record in self.records.pop(listing):
            items += ITEMS[name](listing, record)
        return items
