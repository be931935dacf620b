"""HKMA Open API press releases: `GET https://api.hkma.gov.hk/public/press-releases`.

Paged with `offset`/`pagesize` until a short page. With the `since` option (an ISO date), paging
stops after the first page that reaches back before it: an incremental run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import scrapy
from scrapy.http import Response

from spiders.base import HkmaSpider, ListingError
from spiders.items import DocumentItem
from spiders.normalize import clean_text, normalize_url, parse_listing_date


def page_url(listing: str, offset: int, page_size: int) -> str:
    parts = urlsplit(listing)
    query = {k: v for k, v in parse_qsl(parts.query) if k not in ("offset", "pagesize")}
    query.update(pagesize=str(page_size), offset=str(offset))
    return urlunsplit(parts._replace(query=urlencode(query)))


def parse_page(body: bytes, listing: str) -> tuple[list[DocumentItem], int]:
    """Items of one API page and its record count; ListingError when the API reports an error."""
    try:
        data = json.loads(body)
    except ValueError as error:
        raise ListingError(f"not JSON: {error}") from error
    header = data.get("header") if isinstance(data, dict) else None
    if not isinstance(header, dict) or header.get("success") is not True:
        detail = header if isinstance(header, dict) else {}
        raise ListingError(
            f"API error {detail.get('err_code', '?')}: {detail.get('err_msg', 'no header')}"
        )
    records = (data.get("result") or {}).get("records")
    if not isinstance(records, list):
        raise ListingError("no result.records in the API response")
    items = []
    for record in records:
        if not isinstance(record, dict) or not record.get("link"):
            continue
        url = normalize_url(str(record["link"]), listing)
        day = parse_listing_date(record.get("date"))
        items.append(
            DocumentItem(
                source="press_releases",
                listing=listing,
                key=url,
                title=clean_text(record.get("title")),
                url=url,
                date=day.isoformat() if day else None,
                extra={"document_url": url},
            )
        )
    return items, len(records)


class PressReleasesSpider(HkmaSpider):
    """Options: `page_size` (default 100), `since` (ISO date: stop paging once past it),
    `newest_page` (a page size: read that page of the newest releases and no further, as the
    fast poll does)."""

    name = "press_releases"
    removals_allowed = False  # the API lists history; nothing is ever withdrawn from it here

    def __init__(self, listings: dict[str, str], options: dict[str, Any] | None = None) -> None:
        super().__init__(listings, options)
        self.newest_page = int(self.options.get("newest_page") or 0)
        self.page_size = self.newest_page or int(self.options.get("page_size", 100))
        self.since: str | None = self.options.get("since")
        self.comparable = self.since is None and not self.newest_page

    def first_request(self, name: str, listing: str) -> scrapy.Request:
        return self.listing_request(
            name, listing, page_url(listing, 0, self.page_size), meta={"offset": 0}
        )

    def extract(self, response: Response, name: str) -> Iterable[DocumentItem | scrapy.Request]:
        listing, offset = response.meta["listing"], response.meta["offset"]
        items, records = parse_page(response.body, listing)
        if offset == 0 and not records:
            raise ListingError("the API returned no press releases at all")
        reached_since = self.since is not None and any(
            i.date is not None and i.date < self.since for i in items
        )
        if records == self.page_size and not reached_since and not self.newest_page:
            following = offset + self.page_size
            next_page = self.listing_request(
                name,
                listing,
                page_url(listing, following, self.page_size),
                meta={"offset": following},
            )
            return [*items, next_page]
        return items
