"""Behaviour every HKMA spider shares: one request per configured listing, each with an outcome."""

from __future__ import annotations

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


class HkmaSpider(scrapy.Spider):
    """Base spider: `listings` maps a listing name to its real HKMA URL.

    Subclasses implement `extract(response, name)`. Whatever happens to a listing, exactly one
    ListingOutcome is yielded for it, so the tracker can judge each listing's health.
    """

    removals_allowed: ClassVar[bool] = True

    def __init__(self, listings: dict[str, str], options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.listings = dict(listings)
        self.options = options or {}

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for name, url in self.listings.items():
            yield scrapy.Request(
                url,
                callback=self.parse_listing,
                errback=self.listing_failed,
                cb_kwargs={"name": name},
                meta={"listing": url},
                dont_filter=True,
            )

    def extract(self, response: Response, name: str) -> Iterable[DocumentItem]:
        raise NotImplementedError

    def outcome(self, listing: str, ok: bool, **fields: Any) -> ListingOutcome:
        return ListingOutcome(
            source=self.name,
            listing=listing,
            ok=ok,
            removals_allowed=self.removals_allowed,
            **fields,
        )

    def parse_listing(
        self, response: Response, name: str
    ) -> Iterable[DocumentItem | ListingOutcome]:
        listing = response.meta["listing"]
        try:
            if not response.body.strip():
                raise ListingError("empty body")
            items = list(self.extract(response, name))
        except ListingError as error:
            yield self.outcome(listing, False, reason=str(error), status=response.status)
            return
        except Exception as error:
            logger.exception("parsing %s failed", listing)
            reason = f"parse error: {type(error).__name__}: {error}"
            yield self.outcome(listing, False, reason=reason, status=response.status)
            return
        yield from items
        yield self.outcome(listing, True, status=response.status, items=len(items))

    def listing_failed(self, failure: Failure) -> Iterable[ListingOutcome]:
        request = failure.request  # type: ignore[attr-defined]
        listing = request.meta["listing"]
        status = None
        error = failure.value
        if isinstance(error, HttpError):
            status = error.response.status
            reason = f"HTTP {status}"
        elif failure.check(CannotResolveHostError, twisted_errors.DNSLookupError):
            reason = "unreachable: DNS lookup failed"
        elif failure.check(DownloadTimeoutError, twisted_errors.TimeoutError):
            reason = "unreachable: timed out"
        elif failure.check(DownloadConnectionRefusedError, twisted_errors.ConnectionRefusedError):
            reason = "unreachable: connection refused"
        elif failure.check(DownloadCancelledError) and "max size" in failure.getErrorMessage():
            limit = self.settings.getint("DOWNLOAD_MAXSIZE")
            reason = f"dropped: response larger than the {limit}-byte limit"
        elif failure.check(IgnoreRequest):
            reason = f"refused: {failure.getErrorMessage()}"
        else:
            reason = f"fetch failed: {type(error).__name__}: {failure.getErrorMessage()}"
        logger.error("%s: %s: %s", self.name, listing, reason)
        yield self.outcome(listing, False, reason=reason, status=status)
