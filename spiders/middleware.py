"""Downloader middleware owning where requests may go: regulators' hosts only (HKMA, SFC, IA),
through configured mirrors.

Spiders and stored data always speak of the real HKMA URLs. A mirror mapping
(`https://www.hkma.gov.hk` -> `http://127.0.0.1:8000`) is applied on the way out and undone on
the way back, so responses, redirects and every link resolved from them carry the real origin.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import CannotResolveHostError, IgnoreRequest
from scrapy.http import Response
from scrapy.statscollectors import StatsCollector
from twisted.internet.error import DNSLookupError

from spiders.normalize import is_loopback_host, is_regulator_host

logger = logging.getLogger(__name__)

MIRROR_META = "hkma_mirrored_from"
LOOPBACK_SLOT = "loopback-mirror"
# Set by the test suite: any request that would leave 127.0.0.0/8 is refused, whatever the
# config says, so that no test can reach a real host by mistake.
LOOPBACK_ONLY_ENV = "HKMA_TRACKER_LOOPBACK_ONLY"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_loopback(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


class MirrorMap:
    """Origin rewriting in both directions. Keys and values are origins or base URLs."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.forward = {origin_of(k): v.rstrip("/") for k, v in mapping.items()}
        self.backward = {v: k for k, v in self.forward.items()}

    def to_mirror(self, url: str) -> str | None:
        base = self.forward.get(origin_of(url))
        if base is None:
            return None
        parts = urlsplit(url)
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        return base + rest

    def to_real(self, url: str) -> str | None:
        for base, origin in self.backward.items():
            if url == base or url.startswith(base + "/") or url.startswith(base + "?"):
                return origin + url[len(base) :]
        return None

    def is_mirror(self, url: str) -> bool:
        return self.to_real(url) is not None


class HkmaOnlyMirrorMiddleware:
    """Refuses hosts not a regulator's, rewrites their origins to their mirrors and back."""

    def __init__(self, mirrors: MirrorMap, stats: StatsCollector, throttled: bool = False) -> None:
        self.mirrors = mirrors
        self.stats = stats
        self.throttled = throttled  # loopback mirrors keep their real hosts' delays
        self.loopback_only = os.environ.get(LOOPBACK_ONLY_ENV) == "1"
        # Hosts whose name did not resolve in this crawl: their other requests fail at once
        # instead of each waiting its turn, its delays and its retries (offline: seconds, not
        # minutes). The next run looks them up again.
        self.unresolved: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HkmaOnlyMirrorMiddleware:
        assert crawler.stats is not None
        settings = crawler.settings
        return cls(
            MirrorMap(settings.getdict("HKMA_MIRRORS")),
            crawler.stats,
            settings.getbool("HKMA_THROTTLE_MIRRORS"),
        )

    def process_request(self, request: Request) -> Request | None:
        host = urlsplit(request.url).hostname or ""
        if host in self.unresolved:
            raise CannotResolveHostError(f"{host}: no address (already failed in this crawl)")
        if self.mirrors.is_mirror(request.url):
            return None  # already rewritten by us
        if not is_regulator_host(host):
            self.stats.inc_value("hkma/offsite_blocked")
            raise IgnoreRequest(f"{request.url} is not a regulator's host")
        if self.loopback_only and not is_loopback(self.mirrors.to_mirror(request.url) or ""):
            raise IgnoreRequest(f"{request.url}: {LOOPBACK_ONLY_ENV}=1 allows loopback only")
        mirrored = self.mirrors.to_mirror(request.url)
        if mirrored is None:
            return None
        # robots.txt was already checked for the real URL before we got here.
        meta = {**request.meta, MIRROR_META: request.url, "dont_obey_robotstxt": True}
        if is_loopback(mirrored) and self.throttled:
            meta["download_slot"] = host  # the real host's slot, delay and concurrency
        elif is_loopback(mirrored):
            # A local mirror is not HKMA: no politeness delay, no throttling.
            meta["download_slot"] = LOOPBACK_SLOT
            meta["autothrottle_dont_adjust_delay"] = True
        return request.replace(url=mirrored, meta=meta, dont_filter=True)

    def process_exception(self, request: Request, exception: Exception) -> None:
        if isinstance(exception, CannotResolveHostError | DNSLookupError):
            self.unresolved.add(urlsplit(request.url).hostname or "")

    def process_response(self, request: Request, response: Response) -> Response:
        real = self.mirrors.to_real(response.url)
        if real is None:
            return response
        headers = response.headers.copy()
        location = headers.get(b"Location")
        if location:
            real_location = self.mirrors.to_real(location.decode("latin-1"))
            if real_location:
                headers[b"Location"] = real_location.encode("latin-1")
        return response.replace(url=real, headers=headers)
