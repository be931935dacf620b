"""Behaviour every HKMA spider shares: one request per configured listing, each with an outcome."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar

import scrapy
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet import error as twisted_errors
from twisted.python.failure import Failure

from spiders.items import DocumentItem, ListingOutcome

logger = logging.getLogger(__name__)


class ListingError(Exception):
    """The listing was fetched but is not what we expected (empty, not RSS, layout changed)."""


class ScheduledArguments:
    """What a spider is given, however it is started: the crawl process passes `listings` and
    `options` as they are; a scrapyd job passes every argument as a string (`-a
    listings=<JSON>`) and adds its own (`_job`), which are read and dropped."""

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        listings = kwargs.pop("listings", args[0] if args else {})
        options = kwargs.pop("options", args[1] if len(args) > 1 else None)
        if isinstance(listings, str):
            listings = json.loads(listings)
        if isinstance(options, str):
            options = json.loads(options)
        return super().from_crawler(crawler, listings, options)  # type: ignore[misc]


class HkmaSpider(ScheduledArguments, scrapy.Spider):
    """Base spider: `listings` maps a listing name to its real HKMA URL.

    Subclasses implement `extract(response, name)`, which yields documents and, for a listing
    of several pages, the request for the next page (built with `listing_request`). Whatever
    happens to a listing, exactly one ListingOutcome is yielded for it once its last page is
    parsed or a page fails, so the tracker can judge each listing's health.
    """

    removals_allowed: ClassVar[bool] = True
    # False where a listing's size varies by design (incremental queries): the tracker then
    # does not judge it by comparing item counts with earlier runs.
    comparable: bool = True

    def __init__(self, listings: dict[str, str], options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.listings = dict(listings)
        self.options = options or {}

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for name, url in self.listings.items():
            yield self.first_request(name, url)

    def first_request(self, name: str, listing: str) -> scrapy.Request:
        return self.listing_request(name, listing, listing)

    def listing_request(self, name: str, listing: str, url: str, **kwargs: Any) -> scrapy.Request:
        """A request for (a page of) a listing, routed to parse_listing / listing_failed."""
        meta = {"listing": listing, **kwargs.pop("meta", {})}
        return scrapy.Request(
            url,
            callback=self.parse_listing,
            errback=self.listing_failed,
            cb_kwargs={"name": name},
            meta=meta,
            dont_filter=True,
            **kwargs,
        )

    def extract(self, response: Response, name: str) -> Iterable[DocumentItem | scrapy.Request]:
        raise NotImplementedError

    def reads_whole(self, listing: str) -> bool:
        """Whether this crawl reads `listing` whole (else a recent slice of it)."""
        return self.comparable

    def outcome(self, listing: str, ok: bool, **fields: Any) -> ListingOutcome:
        return ListingOutcome(
            source=self.name,
            listing=listing,
            ok=ok,
            removals_allowed=self.removals_allowed,
            comparable=self.reads_whole(listing),
            **fields,
        )

    def parse_listing(
        self, response: Response, name: str
    ) -> Iterable[DocumentItem | ListingOutcome | scrapy.Request]:
        listing = response.meta["listing"]
        try:
            if not response.body.strip():
                raise ListingError("empty body")
            results = list(self.extract(response, name))
        except ListingError as error:
            yield self.outcome(listing, False, reason=str(error), status=response.status)
            return
        except Exception as error:
            logger.exception("parsing %s failed", listing)
            reason = f"parse error: {type(error).__name__}: {error}"
            yield self.outcome(listing, False, reason=reason, status=response.status)
            return
        documents = [r for r in results if isinstance(r, DocumentItem)]
        next_pages = [r for r in results if isinstance(r, scrapy.Request)]
        so_far = response.meta.get("listing_items", 0) + len(documents)
        yield from documents
        for page in next_pages:
            page.meta["listing_items"] = so_far
            yield page
        if not next_pages:
            yield self.outcome(listing, True, status=response.status, items=so_far)

    def listing_failed(self, failure: Failure) -> Iterable[ListingOutcome]:
        request = failure.request  # type: ignore[attr-defined]
        listing = request.meta["listing"]
        limit = request.meta.get("download_maxsize", self.settings.getint("DOWNLOAD_MAXSIZE"))
        reason, status = failure_reason(failure, limit)
        if page := request.meta.get("page_name"):  # one page of a listing kept under one name
            reason = f"{reason} ({page})"
        # Detail only: the tracker reports each failed listing once, with its verdict.
        logger.info("%s: %s: %s", self.name, listing, reason)
        yield self.outcome(listing, False, reason=reason, status=status)


def failure_reason(failure: Failure, size_limit: int | None) -> tuple[str, int | None]:
    """A one-line reason for a failed download, and the HTTP status if there was one."""
    error = failure.value
    if isinstance(error, HttpError):
        return f"HTTP {error.response.status}", error.response.status
    if failure.check(CannotResolveHostError, twisted_errors.DNSLookupError):
        return "unreachable: DNS lookup failed", None
    if failure.check(DownloadTimeoutError, twisted_errors.TimeoutError):
        return "unreachable: timed out", None
    if failure.check(DownloadConnectionRefusedError, twisted_errors.ConnectionRefusedError):
        return "unreachable: connection refused", None
    # Scrapy cancels a response of announced size with a message naming the "max size", and
    # one of unannounced size (chunked, or read until close) once it passes the limit, with
    # no message at all.
    if failure.check(DownloadCancelledError) and (
        "max size" in failure.getErrorMessage() or not failure.getErrorMessage()
    ):
        return f"dropped: response larger than the {size_limit}-byte limit", None
    if failure.check(IgnoreRequest):
        return f"refused: {failure.getErrorMessage()}", None
    return f"fetch failed: {type(error).__name__}: {failure.getErrorMessage()}", None
